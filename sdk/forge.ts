// node-forge, loaded on first use. Only certificate issuance (the CA at `init` and personalisation, client
// registration) and the legacy key-file check need it; a command that only verifies certificates (issuance, the
// gate) never loads its ~80 modules: the native X509Certificate verifies (sdk/roles/ca.ts).

import { createRequire } from 'node:module';
import type forge from 'node-forge';

let lib: typeof forge | undefined;

/** The node-forge module, required once. */
export function nodeForge(): typeof forge {
  return (lib ??= createRequire(import.meta.url)('node-forge') as typeof forge);
}
