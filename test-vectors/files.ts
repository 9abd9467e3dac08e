// Where the conformance vector files are: beside this module, from source and compiled alike (the build copies
// them to dist/test-vectors/, the package ships them there).

import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The directory holding the vector files (`<suite>-<area>.json`) and `schema/`. */
export const VECTOR_DIR = fileURLToPath(new URL('./', import.meta.url));

/** Absolute paths of every vector file in VECTOR_DIR, sorted by name. */
export function vectorFiles(): string[] {
  return readdirSync(VECTOR_DIR)
    .filter((f) => /^[a-z0-9]+-[a-z-]+\.json$/.test(f))
    .sort()
    .map((f) => `${VECTOR_DIR}${f}`);
}
