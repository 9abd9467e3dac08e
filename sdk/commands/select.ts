// SELECT by AID and the FCI it answers: 6F { 84 AID, A5 { D1 suite, D7 life cycle, DA protocol version } }, nothing
// that identifies the card (protocol version 2). The card encodes it; terminals and the vector runner read it.

import { decodeSequenceField, specField } from '../fields.js';
import { AID, command, protocol, T, type SuiteName } from '../spec.js';
import { TlvError, TlvMap, template, tlv } from '../tlv.js';

export const SELECT = command('SELECT');

/** P2: 00 answers the FCI, 0C answers nothing. */
export const SELECT_P2 = { FCI: 0x00, NO_FCI: 0x0c } as const;

/** What any reader learns from SELECT: that this is an e-ticket card, its suite, life cycle and protocol version. */
export interface FciInfo {
  suite: SuiteName;
  lifecycle: 'PERSONALIZING' | 'OPERATIONAL';
  protocolVersion: number;
}

export function encodeFci(f: { suite: number; lifecycle: number }): Uint8Array {
  return template(
    T.FCI,
    tlv(T.DF_NAME, AID),
    template(T.FCI_PROPRIETARY, tlv(T.SUITE, new Uint8Array([f.suite])), tlv(T.LIFECYCLE, new Uint8Array([f.lifecycle])), tlv(T.PROTOCOL_VERSION, new Uint8Array([protocol.version]))),
  );
}

const ONE_BYTE = (name: string) => specField(name, name);

/** Throws TlvError when the FCI is malformed, carries more than the spec lists, or names a suite this SDK does not know. */
export function parseFci(fci: Uint8Array): FciInfo {
  const outer = TlvMap.parse(fci, { allowed: [T.FCI] });
  const m = TlvMap.parse(outer.require(T.FCI), { allowed: [T.DF_NAME, T.FCI_PROPRIETARY] });
  const p = TlvMap.parse(m.require(T.FCI_PROPRIETARY, 'FCI proprietary template'), { allowed: [T.SUITE, T.LIFECYCLE, T.PROTOCOL_VERSION] });
  const byte = (name: string, tag: number) => decodeSequenceField(ONE_BYTE(name), p.require(tag, name)) as number;
  const suiteId = byte('SUITE', T.SUITE);
  const suite = protocol.suites.find((s) => s.id === suiteId)?.name as SuiteName | undefined;
  if (!suite) throw new TlvError(`card uses unknown suite ${suiteId}`);
  const lc = protocol.lifecycle.find((l) => l.value === byte('LIFECYCLE', T.LIFECYCLE))?.name;
  return { suite, lifecycle: (lc ?? 'PERSONALIZING') as FciInfo['lifecycle'], protocolVersion: byte('PROTOCOL_VERSION', T.PROTOCOL_VERSION) };
}
