// An API client's credential file (seller or terminal): its id, role, certificate or SM9 identity, and its
// private signing key sealed under the client's own passphrase. `eticket seller add` / `terminal add` write it.

import { readFileSync } from 'node:fs';
import { fromHex, hex } from '../bytes.js';
import { InvalidInputError } from '../errors.js';
import { suiteProvider } from '../crypto/suites.js';
import type { Decrypter, Signer } from '../crypto/suite.js';
import { checkTotpParameters, type TotpParameters } from '../crypto/totp.js';
import type { SuiteName } from '../spec.js';
import { openSecret, sealSecret, type SealedSecret } from './keystore.js';

export const CLIENT_FORMAT = 'eticket-client/1';
const KEY_KIND = 'eticket-client-signing-key';
const ENC_KIND = 'eticket-client-encryption-key';
const TOTP_KIND = 'eticket-client-totp-secret';

/** What a checking terminal (gate, inspector) also holds to read real-name holder data (docs/realname.md). */
export interface RealNameCredential {
  /** The private key holder answers are sealed to (RSA PKCS#8 or SM9 hid 03 encoding), sealed with the passphrase. */
  encryptionKey: SealedSecret;
  /** RSA: the operator CA's certificate for it, hex. */
  encryptionCertificate?: string;
  /** The TOTP shared with the service at registration (RFC 6238), its secret sealed with the passphrase. */
  totp: { algorithm: TotpParameters['algorithm']; digits: number; period: number; secret: SealedSecret };
}

/** The JSON of a credential file (`eticket seller add` / `terminal add` write it; hand it to the client). */
export interface ClientCredentialFile {
  format: typeof CLIENT_FORMAT;
  clientId: string;
  role: 'seller' | 'terminal';
  operator: string;
  suite: SuiteName;
  /** RSA: X.509 DER from the operator's CA, hex. */
  certificate?: string;
  /** SM9: the client's identity under the operator's KGC. */
  identity?: string;
  /** The private key (PKCS#8 DER or SM9 encoding), sealed with the client's passphrase. */
  key: SealedSecret;
  /** Checking terminals registered for real-name reads. */
  realName?: RealNameCredential;
}

export function makeCredential(
  c: Omit<ClientCredentialFile, 'format' | 'key' | 'realName'>,
  privateKey: Uint8Array,
  passphrase: string,
  realName?: { encryptionKey: Uint8Array; encryptionCertificate?: Uint8Array; totp: { secret: Uint8Array; parameters: TotpParameters } },
): ClientCredentialFile {
  const out: ClientCredentialFile = { format: CLIENT_FORMAT, ...c, key: sealSecret(privateKey, passphrase, KEY_KIND) };
  if (realName) {
    const p = realName.totp.parameters;
    out.realName = {
      encryptionKey: sealSecret(realName.encryptionKey, passphrase, ENC_KIND),
      ...(realName.encryptionCertificate ? { encryptionCertificate: hex(realName.encryptionCertificate) } : {}),
      totp: { algorithm: p.algorithm, digits: p.digits, period: p.period, secret: sealSecret(realName.totp.secret, passphrase, TOTP_KIND) },
    };
  }
  return out;
}

/** An opened credential: who the client is and the key that signs its requests. */
export interface ClientIdentity {
  clientId: string;
  role: 'seller' | 'terminal';
  operator: string;
  signer: Signer;
  certificate?: Uint8Array;
  /** Checking terminals: what opens holder answers and makes TOTP codes. */
  realName?: { decrypter: Decrypter; totp: { secret: Uint8Array; parameters: TotpParameters } };
}

/** Open a credential (file path or parsed JSON) with the client's passphrase. */
export function loadCredential(source: string | ClientCredentialFile, passphrase: string): ClientIdentity {
  let c: ClientCredentialFile;
  try {
    c = typeof source === 'string' ? (JSON.parse(readFileSync(source, 'utf8')) as ClientCredentialFile) : source;
  } catch (e) {
    throw new InvalidInputError(`${source as string} is not a client credential file: ${(e as Error).message}`, { cause: e });
  }
  if (c?.format !== CLIENT_FORMAT) throw new InvalidInputError(`not an ${CLIENT_FORMAT} credential`);
  const provider = suiteProvider(c.suite);
  const signer = provider.signer(openSecret(c.key, passphrase, KEY_KIND));
  const id: ClientIdentity = { clientId: c.clientId, role: c.role, operator: c.operator, signer, certificate: c.certificate ? fromHex(c.certificate) : undefined };
  if (c.realName) {
    const parameters: TotpParameters = { algorithm: c.realName.totp.algorithm, digits: c.realName.totp.digits, period: c.realName.totp.period };
    checkTotpParameters(parameters);
    id.realName = { decrypter: provider.decrypter(openSecret(c.realName.encryptionKey, passphrase, ENC_KIND)), totp: { secret: openSecret(c.realName.totp.secret, passphrase, TOTP_KIND), parameters } };
  }
  return id;
}

/** One line naming a credential (role, id, operator, suite and certificate or identity) without opening its key. */
export function credentialSummary(c: ClientCredentialFile): string {
  return `${c.role} ${c.clientId} of ${c.operator} (${c.suite}${c.certificate ? `, certificate ${hex(fromHex(c.certificate)).slice(0, 16)}…` : `, identity ${c.identity}`})`;
}
