// Suite registry: maps suite names/ids to implementations and loads private keys from their encodings.
// The card stores private keys in its NVM in these encodings; hosts keep them encrypted (sdk/roles/keystore.ts).

import { InvalidInputError } from '../errors.js';
import { SUITE, type SuiteName } from '../spec.js';
import { RsaPrivateKey, rsaSuite } from './rsa.js';
import type { CryptoSuite, SuiteProvider } from './suite.js';
import { sm9Provider } from './sm9-suite.js';

const providers = new Map<SuiteName, SuiteProvider>();

providers.set('rsa', {
  suite: rsaSuite,
  signer: (k) => RsaPrivateKey.fromPkcs8(k),
  decrypter: (k) => RsaPrivateKey.fromPkcs8(k),
});
providers.set('sm9', sm9Provider);


export function suiteProvider(nameOrId: SuiteName | number): SuiteProvider {
  const name = typeof nameOrId === 'number' ? (Object.keys(SUITE) as SuiteName[]).find((n) => SUITE[n] === nameOrId) : nameOrId;
  const p = name ? providers.get(name) : undefined;
  if (!p) throw new InvalidInputError(`crypto suite ${nameOrId} is not available`);
  return p;
}

export function getSuite(nameOrId: SuiteName | number): CryptoSuite {
  return suiteProvider(nameOrId).suite;
}
