// The certificate authority that certifies card public keys at personalisation (node-forge X.509), and the checks
// of the certificates it issued (node:crypto's X509Certificate: a verifier never loads node-forge).
// The authentication server seals tickets only to card keys whose certificate chains to this CA.

import { X509Certificate } from 'node:crypto';
import type forge from 'node-forge';
import { hex, toBuffer } from '../bytes.js';
import { nodeForge } from '../forge.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { RsaPrivateKey } from '../crypto/rsa.js';

/** Which of a card's two key pairs a certificate certifies. */
export type CardKeyUsage = 'encryption' | 'signature';

/** What a card key certificate says, once checked. */
export interface CertifiedCardKey {
  serial: Uint8Array;
  usage: CardKeyUsage;
  /** SubjectPublicKeyInfo DER of the certified key. */
  publicKey: Uint8Array;
  notAfter: Date;
}

function derToForge(der: Uint8Array): forge.asn1.Asn1 {
  return nodeForge().asn1.fromDer(nodeForge().util.createBuffer(toBuffer(der).toString('binary')));
}

function forgeToDer(asn1: forge.asn1.Asn1): Uint8Array {
  return new Uint8Array(Buffer.from(nodeForge().asn1.toDer(asn1).getBytes(), 'binary'));
}

function serialNumber(): string {
  // Positive, 16 random bytes (RFC 5280 allows up to 20 octets).
  const b = nodeForge().random.getBytesSync(16);
  return '01' + nodeForge().util.bytesToHex(b).slice(2);
}

/** The operator's CA (RSA suite): certifies the keys cards generate, so that the authority seals tickets only to genuine cards. */
export class CertificateAuthority {
  private readonly forgeKey: forge.pki.rsa.PrivateKey;
  // Private: forge types stay out of the package's declarations (consumers need no @types/node-forge).
  private readonly certificate: forge.pki.Certificate;

  private constructor(readonly key: RsaPrivateKey, certificateDer: Uint8Array) {
    this.forgeKey = nodeForge().pki.privateKeyFromPem(key.keyObject().export({ format: 'pem', type: 'pkcs8' }) as string) as forge.pki.rsa.PrivateKey;
    this.certificate = nodeForge().pki.certificateFromAsn1(derToForge(certificateDer));
  }

  /** A new self-signed CA (RSA key from node:crypto: forge's key generation is 13× slower). */
  static create(name = 'eticket CA', validityYears = 10, key: RsaPrivateKey = RsaPrivateKey.generate(2048)): CertificateAuthority {
    const forgeKey = nodeForge().pki.privateKeyFromPem(key.keyObject().export({ format: 'pem', type: 'pkcs8' }) as string) as forge.pki.rsa.PrivateKey;
    const cert = nodeForge().pki.createCertificate();
    cert.publicKey = nodeForge().pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
    cert.serialNumber = serialNumber();
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + validityYears * 365 * 86400_000);
    const attrs = [{ name: 'commonName', value: name }, { name: 'organizationName', value: 'eticket' }];
    cert.setSubject(attrs);
    cert.setIssuer(attrs);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    cert.sign(forgeKey, nodeForge().md.sha256.create());
    return new CertificateAuthority(key, forgeToDer(nodeForge().pki.certificateToAsn1(cert)));
  }

  /** A CA from its private key and certificate. */
  static load(key: RsaPrivateKey, certificateDer: Uint8Array): CertificateAuthority {
    const ca = new CertificateAuthority(key, certificateDer);
    const pub = ca.certificate.publicKey as forge.pki.rsa.PublicKey;
    if (pub.n.compareTo(ca.forgeKey.n) !== 0) throw new InvalidInputError('CA key does not match the CA certificate');
    return ca;
  }

  /** The CA certificate, DER. */
  get certificateDer(): Uint8Array {
    return forgeToDer(nodeForge().pki.certificateToAsn1(this.certificate));
  }

  /** Certify an API client's signing key (seller or terminal): CN is its client id, OU its role. */
  certifyClientKey(clientId: string, role: ClientRole, publicKeySpki: Uint8Array, validityYears = 2): Uint8Array {
    return issueClientCertificate(this.forgeKey, this.certificate, clientId, role, publicKeySpki, validityYears, 'signature');
  }

  /** Certify a checking terminal's encryption key (real-name holder answers are sealed to it): OU "eticket terminal encryption". */
  certifyTerminalEncryptionKey(clientId: string, publicKeySpki: Uint8Array, validityYears = 2): Uint8Array {
    return issueClientCertificate(this.forgeKey, this.certificate, clientId, 'terminal', publicKeySpki, validityYears, 'encryption');
  }

  /** Certify a card public key (SPKI DER) for one usage; subject CN is the card serial in hex. */
  certifyCardKey(serial: Uint8Array, usage: CardKeyUsage, publicKeySpki: Uint8Array, validityYears = 5): Uint8Array {
    let publicKey: forge.pki.PublicKey;
    try {
      publicKey = nodeForge().pki.publicKeyFromAsn1(derToForge(publicKeySpki));
    } catch (e) {
      throw new InvalidInputError('card public key is not an RSA SubjectPublicKeyInfo', { cause: e });
    }
    const cert = nodeForge().pki.createCertificate();
    cert.publicKey = publicKey;
    cert.serialNumber = serialNumber();
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + validityYears * 365 * 86400_000);
    cert.setSubject([
      { name: 'commonName', value: hex(serial) },
      { name: 'organizationalUnitName', value: usage === 'encryption' ? 'eticket card encryption' : 'eticket card signature' },
    ]);
    cert.setIssuer(this.certificate.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      usage === 'encryption'
        ? { name: 'keyUsage', keyEncipherment: true, critical: true }
        : { name: 'keyUsage', digitalSignature: true, nonRepudiation: true, critical: true },
    ]);
    cert.sign(this.forgeKey, nodeForge().md.sha256.create());
    return forgeToDer(nodeForge().pki.certificateToAsn1(cert));
  }
}

export type ClientRole = 'seller' | 'terminal';
const CLIENT_OU: Record<ClientRole, string> = { seller: 'eticket seller', terminal: 'eticket terminal' };
const TERMINAL_ENCRYPTION_OU = 'eticket terminal encryption';

export interface CertifiedClientKey {
  clientId: string;
  role: ClientRole;
  publicKey: Uint8Array;
  notAfter: Date;
}

function issueClientCertificate(forgeKey: forge.pki.rsa.PrivateKey, issuer: forge.pki.Certificate, clientId: string, role: ClientRole, publicKeySpki: Uint8Array, validityYears: number, usage: CardKeyUsage): Uint8Array {
  let publicKey: forge.pki.PublicKey;
  try {
    publicKey = nodeForge().pki.publicKeyFromAsn1(derToForge(publicKeySpki));
  } catch (e) {
    throw new InvalidInputError('client public key is not an RSA SubjectPublicKeyInfo', { cause: e });
  }
  const cert = nodeForge().pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + validityYears * 365 * 86400_000);
  cert.setSubject([
    { name: 'commonName', value: clientId },
    { name: 'organizationalUnitName', value: usage === 'encryption' ? TERMINAL_ENCRYPTION_OU : CLIENT_OU[role] },
  ]);
  cert.setIssuer(issuer.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    usage === 'encryption' ? { name: 'keyUsage', keyEncipherment: true, critical: true } : { name: 'keyUsage', digitalSignature: true, critical: true },
  ]);
  cert.sign(forgeKey, nodeForge().md.sha256.create());
  return forgeToDer(nodeForge().pki.certificateToAsn1(cert));
}

/** The last CA certificates parsed: a verifier checks many certificates against the same one or two. */
const caCertificates = new Map<string, X509Certificate>();

/**
 * `certificateDer` parsed, checked to be issued by `caCertificateDer` (the issuer names the CA's subject and the CA's
 * key signed it), valid at `now`, and its subject's attributes (RFC 4514 short names, each with its values). Throws
 * CryptoError(`notIssued`) when it does not chain to the CA.
 */
function checkedCertificate(caCertificateDer: Uint8Array, certificateDer: Uint8Array, now: Date, notIssued: string, notValid: string): { cert: X509Certificate; subject: Map<string, string[]> } {
  const caKey = Buffer.from(caCertificateDer.buffer, caCertificateDer.byteOffset, caCertificateDer.byteLength).toString('base64');
  let ca = caCertificates.get(caKey);
  let cert: X509Certificate;
  try {
    if (!ca) {
      ca = new X509Certificate(toBuffer(caCertificateDer));
      if (caCertificates.size >= 8) caCertificates.clear();
      caCertificates.set(caKey, ca);
    }
    cert = new X509Certificate(toBuffer(certificateDer));
  } catch (e) {
    throw new CryptoError('not an X.509 certificate', { cause: e });
  }
  let signed = false;
  try {
    // checkIssued: the issuer name is the CA's subject (and the CA may sign certificates); verify: its signature.
    signed = cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    signed = false;
  }
  if (!signed) throw new CryptoError(notIssued);
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (!(now >= notBefore && now <= notAfter)) throw new CryptoError(notValid);
  // The CA certifies RSA keys only (forge, which parsed certificates before, refused any other key).
  if (cert.publicKey.asymmetricKeyType !== 'rsa') throw new CryptoError(`certificate key is not RSA (${cert.publicKey.asymmetricKeyType})`);
  return { cert, subject: subjectAttributes(cert.subject) };
}

/**
 * The attributes of an X509Certificate's subject string (one `NAME=value` a line), each value decoded to what was
 * certified: OpenSSL escapes special characters with a backslash and bytes as `\\HH` (Node 20), newer Node writes
 * such a value as a JSON string literal (CVE-2021-44532).
 */
function subjectAttributes(subject: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const name = line.slice(0, eq);
    const value = unescapeDnValue(line.slice(eq + 1));
    out.set(name, [...(out.get(name) ?? []), value]);
  }
  return out;
}

function unescapeDnValue(v: string): string {
  if (v.startsWith('"')) {
    try {
      return String(JSON.parse(v));
    } catch {
      throw new CryptoError('certificate subject is not readable');
    }
  }
  if (!v.includes('\\')) return v;
  const parts: Buffer[] = [];
  for (const [, byte, escaped, plain] of v.matchAll(/\\([0-9A-Fa-f]{2})|\\(.?)|([^\\]+)/gsu)) {
    parts.push(byte !== undefined ? Buffer.from([parseInt(byte, 16)]) : Buffer.from(escaped ?? plain ?? '', 'utf8'));
  }
  return Buffer.concat(parts).toString('utf8');
}

/** The one value of a subject attribute; undefined when it is absent or given more than once. */
function single(subject: Map<string, string[]>, name: string): string | undefined {
  const v = subject.get(name);
  return v?.length === 1 ? v[0] : undefined;
}

function spkiOf(cert: X509Certificate): Uint8Array {
  return new Uint8Array(cert.publicKey.export({ format: 'der', type: 'spki' }));
}

/** Check a client certificate: issued by the CA, valid now, for this role and client id. Throws CryptoError. */
export function verifyClientCertificate(caCertificateDer: Uint8Array, certificateDer: Uint8Array, role: ClientRole, clientId: string, now = new Date(), usage: CardKeyUsage = 'signature'): CertifiedClientKey {
  const { cert, subject } = checkedCertificate(caCertificateDer, certificateDer, now, 'client certificate was not issued by the operator CA', 'client certificate is not valid now');
  const ou = usage === 'encryption' ? TERMINAL_ENCRYPTION_OU : CLIENT_OU[role];
  if (single(subject, 'OU') !== ou) throw new CryptoError(`certificate is not for a ${role}${usage === 'encryption' ? "'s encryption key" : ''}`);
  const cn = single(subject, 'CN');
  if (cn !== clientId) throw new CryptoError(`certificate names ${cn}, not ${clientId}`);
  return { clientId, role, publicKey: spkiOf(cert), notAfter: new Date(cert.validTo) };
}

/**
 * Check that `certificateDer` was issued by `caCertificateDer` for a card key of `usage`, is valid
 * now, and return what it certifies. Throws CryptoError otherwise.
 */
export function verifyCardCertificate(caCertificateDer: Uint8Array, certificateDer: Uint8Array, usage: CardKeyUsage, now = new Date()): CertifiedCardKey {
  const { cert, subject } = checkedCertificate(caCertificateDer, certificateDer, now, 'card certificate was not issued by the trusted CA', 'card certificate is not valid now');
  const ou = single(subject, 'OU');
  const expected = usage === 'encryption' ? 'eticket card encryption' : 'eticket card signature';
  if (ou !== expected) throw new CryptoError(`certificate is for "${ou}", not ${expected}`);
  const cn = single(subject, 'CN') ?? '';
  if (!/^[0-9A-F]{16}$/.test(cn)) throw new CryptoError('certificate subject is not a card serial');
  return { serial: new Uint8Array(Buffer.from(cn, 'hex')), usage, publicKey: spkiOf(cert), notAfter: new Date(cert.validTo) };
}
