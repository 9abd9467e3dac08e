// Files that hold secrets (key stores, card images, APDU dumps of personalisation): owner-only modes when
// created, and an existing file or directory that other users can read is tightened, or refused if it cannot be.

import { chmodSync, closeSync, fchmodSync, openSync, statSync } from 'node:fs';
import { InvalidInputError } from './errors.js';

/** Mode of private files: read and write for the owner only. */
export const PRIVATE_FILE_MODE = 0o600;
/** Mode of directories of private files. */
export const PRIVATE_DIR_MODE = 0o700;

/** A secret-holding file or directory other users can reach, and whose mode we could not tighten. */
export class InsecurePermissionsError extends InvalidInputError {
  constructor(
    readonly path: string,
    readonly mode: number,
    directory: boolean,
    cause: unknown,
  ) {
    const want = directory ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE;
    super(
      `${path} holds secrets but other users can access it (mode ${octal(mode)}), and its mode cannot be changed ` +
        `(${cause instanceof Error ? cause.message : String(cause)}): as its owner, run \`chmod ${octal(want)} ${path}\``,
      { cause },
    );
  }
}

function octal(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0');
}

/**
 * If `path` exists and group or others have any access to it, chmod it to owner-only (0600 for a file,
 * 0700 for a directory). Returns true when it had to tighten. Throws InsecurePermissionsError when it cannot.
 */
export function tightenMode(path: string): boolean {
  let st;
  try {
    st = statSync(path);
  } catch {
    return false; // not there (yet): whoever creates it sets the mode
  }
  if ((st.mode & 0o077) === 0) return false;
  const want = st.isDirectory() ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE;
  try {
    chmodSync(path, want);
  } catch (cause) {
    throw new InsecurePermissionsError(path, st.mode, st.isDirectory(), cause);
  }
  return true;
}

/**
 * Create or truncate `path` for writing secrets: created 0600; an existing file is chmod-ed to 0600 before
 * anything is written to it (writeFileSync's `mode` applies only to new files). Returns the open descriptor.
 */
export function openPrivateFile(path: string, flags = 'w'): number {
  const fd = openSync(path, flags, PRIVATE_FILE_MODE);
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE);
  } catch (cause) {
    const mode = statSync(path).mode;
    closeSync(fd);
    throw new InsecurePermissionsError(path, mode, false, cause);
  }
  return fd;
}
