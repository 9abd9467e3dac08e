// A farm of distinct cards derived from a seed, for metro-scale simulations: each card has its own serial and
// its own diversified sym key (K_card from the operator's master key, with the operator's K_priv), an authority
// and terminal key grant, and one metro pass (a protocol v2 face bound to the card) as LOAD would have stored it.
// A dormant card is only its NVM image; it is opened per tap.

import { createHash } from 'node:crypto';
import { EticketCard } from '../card/applet.js';
import { MemoryBackend } from '../card/nvm.js';
import { encodeState, makeRecord, type CardState } from '../card/state.js';
import { u32, utf8 } from '../sdk/bytes.js';
import { keyId } from '../sdk/crypto/suite.js';
import { diversify, masterKeyId, privacyKey } from '../sdk/crypto/symmetric.js';
import type { SignedTicket } from '../sdk/roles/authority.js';
import type { OperatorMasterKey } from '../sdk/roles/sym-receipts.js';
import { LIFECYCLE, LIMITS, SUITE, type SuiteName } from '../sdk/spec.js';
import { newUsageRecord } from '../sdk/ticket.js';

/** What every card of a farm shares: the keys personalisation installs, by grant. */
export interface FarmProfile {
  suite: SuiteName;
  masterKey: OperatorMasterKey;
  /** Authority public key (key 6 on the card) and its operator scopes. */
  authority: { publicKey: Uint8Array; scopes: string[] };
  /** Terminal key bundle (keys 4) and scopes, as personalisation installs it. */
  terminal?: { publicKey: Uint8Array; scopes: string[] };
}

/** Card `i` of the farm `seed`: 8 bytes of SHA-256("ETKT FARM 1" ‖ seed ‖ i). Distinct seeds give distinct farms. */
export function farmSerial(seed: string, i: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update(utf8('ETKT FARM 1')).update(utf8(seed)).update(u32(i)).digest().subarray(0, 8));
}

/**
 * The persistent state a card personalised with `profile` and holding `ticket` (loaded into slot 1) has, minus
 * its own RSA key pairs and certificates: a sym gate never uses them, and generating two RSA-2048 pairs costs
 * about 0.3 s a card. bench/card-farm.test.ts checks this against a card personalised through the real commands.
 */
export function farmState(serial: Uint8Array, profile: FarmProfile, ticket?: SignedTicket): CardState {
  const mk = profile.masterKey;
  return {
    serial,
    suite: SUITE[profile.suite],
    lifecycle: LIFECYCLE.OPERATIONAL,
    capacity: LIMITS.defaultCapacity,
    authorityKeys: [{ id: keyId(profile.authority.publicKey), scopes: profile.authority.scopes, key: profile.authority.publicKey }],
    terminalKeys: profile.terminal ? [{ id: keyId(profile.terminal.publicKey), scopes: profile.terminal.scopes, key: profile.terminal.publicKey }] : [],
    symKeys: [{ id: masterKeyId(mk.key, mk.operator), operator: mk.operator, key: diversify(mk.key, serial, mk.operator), privacyKey: privacyKey(mk.key, mk.operator) }],
    tombstones: [],
    tombstoneFloor: 0,
    nextSeq: ticket ? 2 : 1,
    tickets: ticket ? [makeRecord(1, ticket.faceEncoded, ticket.verificationCodeEncoded, newUsageRecord())] : [],
    // LOAD raises the card's time to the issue time of the ticket it accepts.
    cardTime: ticket ? ticket.face.issuedAt : 0,
  };
}

/** Cards `first` .. `first + count - 1` of a farm, each kept as its NVM image between taps. */
export class CardFarm {
  private readonly images: Uint8Array[] = [];

  constructor(
    readonly seed: string,
    readonly profile: FarmProfile,
    readonly first = 0,
  ) {}

  get size(): number {
    return this.images.length;
  }

  serial(i: number): Uint8Array {
    return farmSerial(this.seed, i);
  }

  /** Make card `i` (the next one) with its ticket (signed for this card: its face names `serial(i)`). */
  add(i: number, ticket: SignedTicket): void {
    if (i !== this.first + this.images.length) throw new RangeError(`farm cards are added in order: expected ${this.first + this.images.length}, got ${i}`);
    this.images.push(encodeState(farmState(this.serial(i), this.profile, ticket)));
  }

  /** Card `i` powered up for a tap (its image on a memory backend); save it back with `save`. */
  open(i: number): EticketCard {
    const backend = new MemoryBackend();
    backend.write('image', 0, this.image(i));
    return EticketCard.open(backend);
  }

  /**
   * Card `i` powered up over its stored image, not a copy: an in-place usage update writes into the farm's own
   * array (nothing new to allocate or keep per tap); anything else gives the card a new image, kept by `save`.
   * A copy of `image(i)` taken before is then no snapshot unless sliced.
   */
  openInPlace(i: number): EticketCard {
    return EticketCard.open(MemoryBackend.over(this.image(i)));
  }

  save(i: number, card: EticketCard): void {
    this.images[i - this.first] = card.image;
  }

  image(i: number): Uint8Array {
    const img = this.images[i - this.first];
    if (!img) throw new RangeError(`card ${i} is not in this farm`);
    return img;
  }

  /** Put an image back (a rollback: the card's memory restored from a copy). */
  restore(i: number, image: Uint8Array): void {
    this.image(i);
    this.images[i - this.first] = image.slice();
  }

  bytes(): number {
    return this.images.reduce((n, b) => n + b.byteLength, 0);
  }
}
