// Cards an adversary would build: a genuine applet behind an answer layer that lies. They attack the host's
// session and gate: 61XX forever (with or without data), or WRITE USAGE answered 9000 with a malformed receipt.

import { EticketCard } from '../../card/applet.js';
import { concat } from '../../sdk/bytes.js';
import type { Icc } from '../../sdk/icc.js';
import { T } from '../../sdk/spec.js';
import { decodeAll, template, tlv } from '../../sdk/tlv.js';

/** Malformed receipts a card could send after committing a WRITE USAGE. */
export const GARBAGE_RECEIPTS = {
  empty: () => new Uint8Array(0),
  'random bytes': () => Uint8Array.from({ length: 40 }, (_, i) => (i * 73 + 11) & 0xff),
  'truncated TLV': (genuine: Uint8Array) => genuine.subarray(0, genuine.length - 3),
  'another template': () => template(T.SESSION_VIEW, tlv(T.CARD_SERIAL, new Uint8Array(8))),
  'a TID that is not UTF-8': () =>
    template(T.RECEIPT, tlv(T.CARD_SERIAL, new Uint8Array(8)), tlv(T.TID, Uint8Array.of(0xff, 0xfe)), tlv(T.USAGE_EVENT, Uint8Array.of(1)), tlv(T.COUNTER, Uint8Array.of(0, 1)), tlv(T.MAC, new Uint8Array(8))),
  'the authenticator before the fields': (genuine: Uint8Array) => {
    const items = decodeAll(decodeAll(genuine)[0].value).map((i) => tlv(i.tag, i.value));
    return template(T.RECEIPT, items[items.length - 1], ...items.slice(0, -1));
  },
} as const;

export type GarbageReceipt = keyof typeof GARBAGE_RECEIPTS;

export type Hostility =
  /** Every command answered 61 00 with no data, GET RESPONSE included, for ever. */
  | { kind: 'get-response-forever' }
  /** Every command answered 255 bytes and 61 00, for ever. */
  | { kind: 'get-response-forever-with-data' }
  /** WRITE USAGE reaches the applet (which commits it), but the answer is this malformed receipt and 9000. */
  | { kind: 'garbage-receipt'; receipt: GarbageReceipt };

const WRITE_USAGE_INS = 0x56;

export class HostileIcc implements Icc {
  /** Command APDUs received. */
  received = 0;

  constructor(readonly inner: Icc, readonly hostility: Hostility) {}

  atr(): Uint8Array {
    return this.inner.atr();
  }
  powerOn(): void {
    this.inner.powerOn();
  }
  powerOff(): void {
    this.inner.powerOff();
  }
  reset(): void {
    this.inner.reset();
  }

  transmit(command: Uint8Array): Uint8Array {
    this.received++;
    const h = this.hostility;
    if (h.kind === 'get-response-forever') return Uint8Array.of(0x61, 0x00);
    if (h.kind === 'get-response-forever-with-data') return concat(new Uint8Array(255).fill(0xee), Uint8Array.of(0x61, 0x00));
    const answer = this.inner.transmit(command);
    if (command[1] !== WRITE_USAGE_INS || answer[answer.length - 2] !== 0x90) return answer;
    return concat(GARBAGE_RECEIPTS[h.receipt](answer.subarray(0, answer.length - 2)), Uint8Array.of(0x90, 0x00));
  }
}

/** Factory for startVpcdChild: the card image at `path`, behind `hostility`. */
export function openHostileCardImage(path: string, hostility: Hostility): HostileIcc {
  return new HostileIcc(EticketCard.open(path), hostility);
}
