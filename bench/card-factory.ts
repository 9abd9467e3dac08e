// Card factories for benchmark card processes (vpcd-child loads them by name): the applet on an image file,
// with or without fsync, so a benchmark can time the stack rather than the disk.

import { EticketCard } from '../card/applet.js';
import { FileBackend } from '../card/nvm.js';

/** The card image at `path`; `durable` false skips fsync (same journal protocol, page-cache writes only). */
export function openBenchCardImage(path: string, durable = true): EticketCard {
  return EticketCard.open(new FileBackend(path, durable));
}
