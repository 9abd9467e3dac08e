// The certificate authority that certifies card public keys at personalisation (node-forge X.509).
// The authentication server seals tickets only to card keys whose certificate chains to this CA.

import forge from 'node-forge';
import { hex, toBuffer } from '../bytes.js';
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
  return forge.asn1.fromDer(forge.util.createBuffer(toBuffer(der).toString('binary')));
}

function forgeToDer(asn1: forge.asn1.Asn1): Uint8Array {
  return new Uint8Array(Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary'));
}

function serialNumber(): string {
  // Positive, 16 random bytes (RFC 5280 allows up to 20 octets).
  const b = forge.random.getBytesSync(16);
  return '01' + forge.util.bytesToHex(b).slice(2);
}

/** The operator's CA (RSA suite): certifies the keys cards generate, so that the authority seals tickets only to genuine cards. */
export class CertificateAuthority {
  private readonly forgeKey: forge.pki.rsa.PrivateKey;
  // Private: forge types stay out of the package's declarations (consumers need no @types/node-forge).
  private readonly certificate: forge.pki.Certificate;

  private constructor(readonly key: RsaPrivateKey, certificateDer: Uint8Array) {
    this.forgeKey = forge.pki.privateKeyFromPem(key.keyObject().export({ format: 'pem', type: 'pkcs8' }) as string) as forge.pki.rsa.PrivateKey;
    this.certificate = forge.pki.certificateFromAsn1(derToForge(certificateDer));
  }

  /** A new self-signed CA (RSA key from node:crypto: forge's key generation is 13× slower). */
  static create(name = 'eticket CA', validityYears = 10, key: RsaPrivateKey = RsaPrivateKey.generate(2048)): CertificateAuthority {
    const forgeKey = forge.pki.privateKeyFromPem(key.keyObject().export({ format: 'pem', type: 'pkcs8' }) as string) as forge.pki.rsa.PrivateKey;
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
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
    cert.sign(forgeKey, forge.md.sha256.create());
    return new CertificateAuthority(key, forgeToDer(forge.pki.certificateToAsn1(cert)));
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
    return forgeToDer(forge.pki.certificateToAsn1(this.certificate));
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
      publicKey = forge.pki.publicKeyFromAsn1(derToForge(publicKeySpki));
    } catch (e) {
      throw new InvalidInputError('card public key is not an RSA SubjectPublicKeyInfo', { cause: e });
    }
    const cert = forge.pki.createCertificate();
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
    cert.sign(this.forgeKey, forge.md.sha256.create());
    return forgeToDer(forge.pki.certificateToAsn1(cert));
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
    publicKey = forge.pki.publicKeyFromAsn1(derToForge(publicKeySpki));
  } catch (e) {
    throw new InvalidInputError('client public key is not an RSA SubjectPublicKeyInfo', { cause: e });
  }
  const cert = forge.pki.createCertificate();
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
  cert.sign(forgeKey, forge.md.sha256.create());
  return forgeToDer(forge.pki.certificateToAsn1(cert));
}

/** Check a client certificate: issued by the CA, valid now, for this role and client id. Throws CryptoError. */
export function verifyClientCertificate(caCertificateDer: Uint8Array, certificateDer: Uint8Array, role: ClientRole, clientId: string, now = new Date(), usage: CardKeyUsage = 'signature'): CertifiedClientKey {
  let ca: forge.pki.Certificate;
  let cert: forge.pki.Certificate;
  try {
    ca = forge.pki.certificateFromAsn1(derToForge(caCertificateDer));
    cert = forge.pki.certificateFromAsn1(derToForge(certificateDer));
  } catch (e) {
    throw new CryptoError('not an X.509 certificate', { cause: e });
  }
  let signed = false;
  try {
    signed = ca.verify(cert);
  } catch {
    signed = false;
  }
  if (!signed) throw new CryptoError('client certificate was not issued by the operator CA');
  if (now < cert.validity.notBefore || now > cert.validity.notAfter) throw new CryptoError('client certificate is not valid now');
  const ou = usage === 'encryption' ? TERMINAL_ENCRYPTION_OU : CLIENT_OU[role];
  if (cert.subject.getField('OU')?.value !== ou) throw new CryptoError(`certificate is not for a ${role}${usage === 'encryption' ? "'s encryption key" : ''}`);
  if (cert.subject.getField('CN')?.value !== clientId) throw new CryptoError(`certificate names ${cert.subject.getField('CN')?.value}, not ${clientId}`);
  return { clientId, role, publicKey: forgeToDer(forge.pki.publicKeyToAsn1(cert.publicKey)), notAfter: cert.validity.notAfter };
}

/**
 * Check that `certificateDer` was issued by `caCertificateDer` for a card key of `usage`, is valid
 * now, and return what it certifies. Throws CryptoError otherwise.
 */
export function verifyCardCertificate(caCertificateDer: Uint8Array, certificateDer: Uint8Array, usage: CardKeyUsage, now = new Date()): CertifiedCardKey {
  let ca: forge.pki.Certificate;
  let cert: forge.pki.Certificate;
  try {
    ca = forge.pki.certificateFromAsn1(derToForge(caCertificateDer));
    cert = forge.pki.certificateFromAsn1(derToForge(certificateDer));
  } catch (e) {
    throw new CryptoError('not an X.509 certificate', { cause: e });
  }
  let signed = false;
  try {
    signed = ca.verify(cert);
  } catch {
    signed = false;
  }
  if (!signed) throw new CryptoError('card certificate was not issued by the trusted CA');
  if (now < cert.validity.notBefore || now > cert.validity.notAfter) throw new CryptoError('card certificate is not valid now');
  const ou = cert.subject.getField('OU')?.value;
  const expected = usage === 'encryption' ? 'eticket card encryption' : 'eticket card signature';
  if (ou !== expected) throw new CryptoError(`certificate is for "${ou}", not ${expected}`);
  const cn = String(cert.subject.getField('CN')?.value ?? '');
  if (!/^[0-9A-F]{16}$/.test(cn)) throw new CryptoError('certificate subject is not a card serial');
  const spki = forgeToDer(forge.pki.publicKeyToAsn1(cert.publicKey));
  return { serial: new Uint8Array(Buffer.from(cn, 'hex')), usage, publicKey: spki, notAfter: cert.validity.notAfter };
}
