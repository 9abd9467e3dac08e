// A card image whose NVM stops once, at a chosen point of a command's commit, and says so with a marker file,
// so a test can pull the card (kill its vpcd process) in the middle of a transaction at a point it can name.

import { writeFileSync } from 'node:fs';
import { EticketCard } from '../../card/applet.js';
import { FileBackend, type Region } from '../../card/nvm.js';

/**
 * Where the commit stops:
 * - 'before-journal': the command is done computing but nothing is written yet (expect the old image back);
 * - 'after-journal': the journal is complete, the image untouched (recovery rolls it forward: the new image);
 * - 'after-image-write': the first image page is written, the rest not (a torn image the journal repairs).
 */
export type PausePoint = 'before-journal' | 'after-journal' | 'after-image-write';

/** Marker the card process creates the moment it stops: the test kills it then, never on a timer. */
export function pauseMarker(path: string): string {
  return `${path}.paused`;
}

class PausingFileBackend extends FileBackend {
  private done = false;
  /**
   * Set once the card is open: opening replays the journal an earlier process left (records are kept until a
   * checkpoint, card/nvm.ts), and those writes are recovery, not the command the test stops.
   */
  armed = false;

  constructor(path: string, private readonly at: PausePoint, private readonly pauseMs: number) {
    super(path);
  }

  override write(region: Region, offset: number, bytes: Uint8Array): void {
    if (!this.armed) return super.write(region, offset, bytes);
    if (this.at === 'before-journal' && region === 'journal') this.pause();
    super.write(region, offset, bytes);
    if ((this.at === 'after-journal' && region === 'journal') || (this.at === 'after-image-write' && region === 'image')) this.pause();
  }

  private pause(): void {
    if (this.done) return;
    this.done = true;
    writeFileSync(pauseMarker(this.path), String(process.pid));
    // Block the whole card process, as a chip busy writing EEPROM would; the test pulls it meanwhile.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, this.pauseMs);
  }
}

/** Factory for startVpcdChild: the card in `path`, stopping once at `at` (for at most `pauseMs`). */
export function openPausingCardImage(path: string, at: PausePoint, pauseMs = 20_000): EticketCard {
  const backend = new PausingFileBackend(path, at, pauseMs);
  const card = EticketCard.open(backend);
  backend.armed = true;
  return card;
}

/**
 * Factory for startVpcdChild: the card in `path`, which stops answering (blocks its whole process, as a dead
 * chip holds its reader) from the first command with instruction byte `ins` on, for `stallMs` each time.
 * It says so with the same marker file. pcscd's reader is frozen meanwhile: kill the card process to end it.
 */
export function openStallingCardImage(path: string, ins: number, stallMs = 120_000): EticketCard {
  const card = EticketCard.open(path);
  const transmit = card.transmit.bind(card);
  card.transmit = (command: Uint8Array): Uint8Array => {
    if (command.length >= 4 && command[1] === ins) {
      writeFileSync(pauseMarker(path), String(process.pid));
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, stallMs);
    }
    return transmit(command);
  };
  return card;
}
