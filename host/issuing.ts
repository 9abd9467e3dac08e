// The issuing terminal (出票終端): tells who the card is and forwards first ciphertexts to it (LOAD).
// It holds no secret; a sealed ticket is only usable on the card it was sealed to.

import { hex, readUint } from '../sdk/bytes.js';
import { CardStatusError, InvalidInputError } from '../sdk/errors.js';
import { T, protocol, SW, type SuiteName } from '../sdk/spec.js';
import type { CardCredentials } from '../sdk/roles/trust.js';
import { TlvMap } from '../sdk/tlv.js';
import { fromUtf8 } from '../sdk/bytes.js';
import type { CardSession } from './session.js';

/** What the card says about itself at SELECT (its FCI). */
export interface CardInfo {
  serial: Uint8Array;
  serialHex: string;
  suite: SuiteName;
  lifecycle: 'PERSONALIZING' | 'OPERATIONAL';
  protocolVersion: number;
}

/** NVM use as the card reports it (GET DATA capacity). */
export interface CardCapacity {
  totalBytes: number;
  freeBytes: number;
  tickets: number;
  tombstones: number;
}

/** Decode the FCI that SELECT returns. */
export function parseFci(fci: Uint8Array): CardInfo {
  const outer = TlvMap.parse(fci, { allowed: [T.FCI] });
  const m = TlvMap.parse(outer.require(T.FCI), { allowed: [T.DF_NAME, T.FCI_PROPRIETARY] });
  const p = TlvMap.parse(m.require(T.FCI_PROPRIETARY));
  const serial = p.bytes(T.CARD_SERIAL, 8, 8, 'serial').slice();
  const suiteId = p.bytes(T.SUITE, 1, 1)[0];
  const suite = protocol.suites.find((s) => s.id === suiteId)?.name as SuiteName | undefined;
  if (!suite) throw new InvalidInputError(`card uses unknown suite ${suiteId}`);
  const lc = protocol.lifecycle.find((l) => l.value === p.bytes(T.LIFECYCLE, 1, 1)[0])?.name;
  return {
    serial,
    serialHex: hex(serial),
    suite,
    lifecycle: (lc ?? 'PERSONALIZING') as CardInfo['lifecycle'],
    protocolVersion: p.bytes(T.PROTOCOL_VERSION, 1, 1)[0],
  };
}

/** The issuing terminal (出票終端): learns who the card is and loads first ciphertexts onto it. It holds no secret. */
export class IssuingTerminal {
  private info?: CardInfo;

  constructor(readonly session: CardSession) {}

  /** SELECT the application and read the FCI. */
  async open(): Promise<CardInfo> {
    this.info = parseFci(await this.session.select());
    return this.info;
  }

  /** The card's FCI, selecting the application first if this terminal has not yet. */
  async cardInfo(): Promise<CardInfo> {
    return this.info ?? this.open();
  }

  /** NVM capacity, free bytes, tickets and tombstones on the card. */
  async capacity(): Promise<CardCapacity> {
    await this.cardInfo();
    const d = (await this.session.send('GET DATA', { p2: T.CAPACITY })).data;
    return { totalBytes: readUint(d.subarray(0, 4)), freeBytes: readUint(d.subarray(4, 8)), tickets: readUint(d.subarray(8, 10)), tombstones: readUint(d.subarray(10, 12)) };
  }

  /** GET DATA of one object, or undefined when the card does not hold it (6A88). */
  async getData(tag: number): Promise<Uint8Array | undefined> {
    await this.cardInfo();
    const r = await this.session.send('GET DATA', { p2: tag, accept: [SW.REFERENCED_DATA_NOT_FOUND] });
    return r.sw === SW.SUCCESS ? r.data : undefined;
  }

  /** What the authentication server needs to seal a ticket to this card. */
  async credentials(): Promise<CardCredentials> {
    const info = await this.cardInfo();
    const identity = await this.getData(T.CARD_IDENTITY);
    return {
      suite: info.suite,
      serial: info.serial,
      encryptionCertificate: await this.getData(T.CARD_ENCRYPTION_CERTIFICATE),
      signingCertificate: await this.getData(T.CARD_SIGNING_CERTIFICATE),
      identity: identity ? fromUtf8(identity) : undefined,
    };
  }

  /** LOAD a first ciphertext. Card refusals (full, duplicate, not for this card, ...) throw CardStatusError. */
  async load(sealed: Uint8Array): Promise<{ sequenceNumber: number; tid: string }> {
    await this.cardInfo();
    const r = await this.session.send('LOAD', { data: sealed });
    const m = TlvMap.parse(r.data, { allowed: [T.SEQUENCE_NUMBER, T.TID] });
    return { sequenceNumber: readUint(m.require(T.SEQUENCE_NUMBER)), tid: fromUtf8(m.require(T.TID)) };
  }
}

/** Whether `e` is the card refusing a LOAD because the ticket is already on it (ALREADY_EXISTS). */
export function isDuplicate(e: unknown): boolean {
  return e instanceof CardStatusError && e.sw === SW.ALREADY_EXISTS;
}
