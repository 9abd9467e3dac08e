// A transport decorator for tests: records every command APDU and can tamper with responses,
// so a test can replay a recorded WRITE USAGE or flip a bit in a second ciphertext.

import type { CardEvent, Transport } from '../../host/transport/transport.js';

export class CapturingTransport implements Transport {
  readonly sent: Uint8Array[] = [];
  /** Called on each response; return a replacement to tamper with it. */
  tamper?: (command: Uint8Array, response: Uint8Array) => Uint8Array | undefined;

  constructor(private readonly inner: Transport) {}

  get info() {
    return this.inner.info;
  }
  connect() {
    return this.inner.connect();
  }
  reset() {
    return this.inner.reset();
  }
  disconnect() {
    return this.inner.disconnect();
  }
  onCardEvent(l: (e: CardEvent) => void) {
    return this.inner.onCardEvent?.(l) ?? (() => undefined);
  }
  async transmit(command: Uint8Array): Promise<Uint8Array> {
    this.sent.push(command.slice());
    const r = await this.inner.transmit(command);
    return this.tamper?.(command, r) ?? r;
  }
  /** The last command APDU with this INS. */
  last(ins: number): Uint8Array {
    for (let i = this.sent.length - 1; i >= 0; i--) if (this.sent[i][1] === ins) return this.sent[i];
    throw new Error(`no command with INS ${ins.toString(16)} was sent`);
  }
}
