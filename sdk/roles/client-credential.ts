// An API client's credential file (seller or terminal): its id, role, certificate or SM9 identity, and its
// private signing key sealed under the client's own passphrase. `eticket seller add` / `terminal add` write it.

import { readFileSync } from 'node:fs';
import { fromHex, hex } from '../bytes.js';
import { InvalidInputError } from '../errors.js';
import { suiteProvider } from '../crypto/suites.js';
import type { Signer } from '../crypto/suite.js';
import type { SuiteName } from '../spec.js';
import { openSecret, sealSecret, type SealedSecret } from './keystore.js';

export const CLIENT_FORMAT = 'eticket-client/1';
const KEY_KIND = 'eticket-client-signing-key';

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
}

export function makeCredential(c: Omit<ClientCredentialFile, 'format' | 'key'>, privateKey: Uint8Array, passphrase: string): ClientCredentialFile {
  return { format: CLIENT_FORMAT, ...c, key: sealSecret(privateKey, passphrase, KEY_KIND) };
}

/** An opened credential: who the client is and the key that signs its requests. */
export interface ClientIdentity {
  clientId: string;
  role: 'seller' | 'terminal';
  operator: string;
  signer: Signer;
  certificate?: Uint8Array;
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
  const signer = suiteProvider(c.suite).signer(openSecret(c.key, passphrase, KEY_KIND));
  return { clientId: c.clientId, role: c.role, operator: c.operator, signer, certificate: c.certificate ? fromHex(c.certificate) : undefined };
}

/** One line naming a credential (role, id, operator, suite and certificate or identity) without opening its key. */
export function credentialSummary(c: ClientCredentialFile): string {
  return `${c.role} ${c.clientId} of ${c.operator} (${c.suite}${c.certificate ? `, certificate ${hex(fromHex(c.certificate)).slice(0, 16)}…` : `, identity ${c.identity}`})`;
}
