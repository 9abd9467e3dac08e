// SELECT by AID and the FCI it answers: 6F { 84 AID, A5 { C6 card serial, D1 suite, D7 life cycle, DA protocol
// version } }. The card encodes it; issuing terminals and the vector runner learn the card from it.

import { hex } from '../bytes.js';
import { decodeSequenceField, specField } from '../fields.js';
import { AID, command, protocol, T, type SuiteName } from '../spec.js';
import { TlvError, TlvMap, template, tlv } from '../tlv.js';

export const SELECT = command('SELECT');

/** P2: 00 answers the FCI, 0C answers nothing (a gate learns the serial elsewhere). */
export const SELECT_P2 = { FCI: 0x00, NO_FCI: 0x0c } as const;

/** What the card says about itself at SELECT (its FCI). */
export interface CardInfo {
  serial: Uint8Array;
  serialHex: string;
  suite: SuiteName;
  lifecycle: 'PERSONALIZING' | 'OPERATIONAL';
  protocolVersion: number;
}

export function encodeFci(f: { serial: Uint8Array; suite: number; lifecycle: number }): Uint8Array {
  return template(
    T.FCI,
    tlv(T.DF_NAME, AID),
    template(
      T.FCI_PROPRIETARY,
      tlv(T.CARD_SERIAL, f.serial),
      tlv(T.SUITE, new Uint8Array([f.suite])),
      tlv(T.LIFECYCLE, new Uint8Array([f.lifecycle])),
      tlv(T.PROTOCOL_VERSION, new Uint8Array([protocol.version])),
    ),
  );
}

const CARD_SERIAL = specField('serial', 'CARD_SERIAL');
const ONE_BYTE = (name: string) => specField(name, name);

/** Throws TlvError when the FCI is malformed or names a suite this SDK does not know. */
export function parseFci(fci: Uint8Array): CardInfo {
  const outer = TlvMap.parse(fci, { allowed: [T.FCI] });
  const m = TlvMap.parse(outer.require(T.FCI), { allowed: [T.DF_NAME, T.FCI_PROPRIETARY] });
  const p = TlvMap.parse(m.require(T.FCI_PROPRIETARY, 'FCI proprietary template'));
  const serial = (decodeSequenceField(CARD_SERIAL, p.require(T.CARD_SERIAL, 'card serial')) as Uint8Array).slice();
  const byte = (name: string, tag: number) => decodeSequenceField(ONE_BYTE(name), p.require(tag, name)) as number;
  const suiteId = byte('SUITE', T.SUITE);
  const suite = protocol.suites.find((s) => s.id === suiteId)?.name as SuiteName | undefined;
  if (!suite) throw new TlvError(`card uses unknown suite ${suiteId}`);
  const lc = protocol.lifecycle.find((l) => l.value === byte('LIFECYCLE', T.LIFECYCLE))?.name;
  return {
    serial,
    serialHex: hex(serial),
    suite,
    lifecycle: (lc ?? 'PERSONALIZING') as CardInfo['lifecycle'],
    protocolVersion: byte('PROTOCOL_VERSION', T.PROTOCOL_VERSION),
  };
}
