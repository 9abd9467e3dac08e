// In-process transport: the embedded default. Drives any Icc (sdk/icc.ts; normally the emulated applet)
// directly, with no reader in between: the fastest path and the one the demo and most tests use.

import type { Icc } from '../../sdk/icc.js';
import { CardRemovedError } from '../../sdk/errors.js';
import type { CardEvent, Transport, TransportInfo } from './transport.js';

/** A Transport to an Icc in the same process (the embedded emulator): no reader, no driver. */
export class EmulatorTransport implements Transport {
  readonly info: TransportInfo;
  private connected = false;
  private present = true;
  private listeners = new Set<(e: CardEvent) => void>();

  constructor(private readonly icc: Icc, name = 'emulator', options: { extendedLength?: boolean } = {}) {
    this.info = { reader: name, extendedLength: options.extendedLength ?? true, maxResponse: 65538 };
  }

  async connect(): Promise<Uint8Array> {
    if (!this.present) throw new CardRemovedError('no card in the emulated reader', this.info.reader);
    if (!this.connected) {
      this.icc.powerOn();
      this.connected = true;
    }
    return this.icc.atr();
  }

  async transmit(command: Uint8Array): Promise<Uint8Array> {
    if (!this.present) throw new CardRemovedError('card removed', this.info.reader);
    if (!this.connected) await this.connect();
    return this.icc.transmit(command);
  }

  async reset(): Promise<Uint8Array> {
    if (!this.present) throw new CardRemovedError('card removed', this.info.reader);
    this.icc.reset();
    this.connected = true;
    return this.icc.atr();
  }

  async disconnect(): Promise<void> {
    if (this.connected) this.icc.powerOff();
    this.connected = false;
  }

  /** Simulate pulling the card out of the field (tests of removal handling). */
  remove(): void {
    this.present = false;
    this.connected = false;
    this.icc.powerOff();
    for (const l of this.listeners) l({ type: 'removed' });
  }

  /** Simulate putting the card (back) into the field. */
  insert(): void {
    this.present = true;
    for (const l of this.listeners) l({ type: 'inserted', atr: this.icc.atr() });
  }

  onCardEvent(listener: (e: CardEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
