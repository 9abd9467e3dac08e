// The emulated e-ticket card: ISO/IEC 7816-4 framing (chaining, 61XX/GET RESPONSE, 6CXX, extended length,
// selection and life cycle), then dispatch by table to one handler per command. Any bytes in give a status word out.

import { randomBytes } from 'node:crypto';
import { ApduFormatError, encodeResponse, parseCommand, type CommandApdu } from '../sdk/apdu.js';
import { concat } from '../sdk/bytes.js';
import { ATR, commandForIns, LIFECYCLE, LIMITS, protocol, SUITE, SW, type CommandDef } from '../sdk/spec.js';
import { TlvError } from '../sdk/tlv.js';
import type { Icc } from '../sdk/icc.js';
import { CardRefusal, type CardContext, type VolatileState } from './commands/context.js';

// What a handler sees is defined with the handlers (card/commands/context.ts); the emulator's users find it here too.
export { CardRefusal, type ShownView, type SymSession, type VolatileState } from './commands/context.js';
import { HANDLERS } from './commands/table.js';
import { FaultInjector, FileBackend, MemoryBackend, NvmStore, NvmWriteError, PowerCutError, type NvmBackend } from './nvm.js';
import { adoptImagePatch, adoptUsagePatch, decodeState, encodeState, planImagePatch, planUsagePatch, rebaseState, type CardState } from './state.js';

/** How a card is manufactured: NVM capacity, serial, crypto suite. */
export interface CreateCardOptions {
  suite?: 'rsa' | 'sm9';
  /** NVM bytes available to the application (default from the spec's limits). */
  capacity?: number;
  /** 8-byte serial; random when absent. */
  serial?: Uint8Array;
}

/**
 * How many cards keep their decoded state between commands. A card holds its image; its decoded state (keys,
 * records, tombstones: small objects and views of the image, about 5 KB for a personalised card) is a cache of it,
 * kept for the cards that decoded last. So a process with a million opened cards holds a million images and a few
 * decoded states, and a card tapped again and again (a bench, a test, a gate's queue) decodes once.
 */
export const DECODED_CARDS = 64;
/** The cards whose decoded state is kept, oldest first (insertion order: a card is added when it decodes). */
const decodedCards = new Set<EticketCard>();

/** The emulated e-ticket card: APDUs in, status words out; never throws to its caller, and a failed command leaves its NVM as it was. */
export class EticketCard implements Icc {
  /** The decoded state, or null when another card's decoding evicted it (decodedCards): decoded again from the image. */
  private decoded: CardState | null = null;
  private readonly store: NvmStore;
  private readonly ram: VolatileState = { selected: false, challenge: null, shown: null, session: null, issuerAuthenticated: false, readCursor: null };
  /** Whether the command being processed committed NVM: its answer must then never be lost to a short Le. */
  private committed = false;
  private pending: { data: Uint8Array; offset: number } | null = null;
  private chain: { cla: number; ins: number; p1: number; p2: number; parts: Uint8Array[]; size: number } | null = null;
  /** All a command handler sees of the card (card/commands/context.ts). */
  private readonly context: CardContext;

  private constructor(store: NvmStore, state?: CardState) {
    this.store = store;
    // Decoded (and so checked: magic, version, checksums) when opened, whether or not it is kept.
    this.state = state ?? decodeState(store.current);
    this.context = new EticketCard.Context(this);
  }

  /** What a handler sees of one card: its accessors on the prototype, so a card pays one small object for it, not closures. */
  private static readonly Context = class implements CardContext {
    constructor(private readonly card: EticketCard) {}
    get state(): CardState {
      return this.card.state;
    }
    get ram(): VolatileState {
      return this.card.ram;
    }
    get usedBytes(): number {
      return this.card.usedBytes;
    }
    commit(next: CardState): void {
      this.card.commit(next);
    }
  };

  /** The decoded persistent state: kept, or decoded again from the image (which it always equals). */
  private get state(): CardState {
    return this.decoded ?? (this.state = decodeState(this.store.current));
  }

  private set state(s: CardState) {
    if (!this.decoded) {
      decodedCards.add(this);
      if (decodedCards.size > DECODED_CARDS) {
        const oldest = decodedCards.values().next().value!;
        decodedCards.delete(oldest);
        oldest.decoded = null;
      }
    }
    this.decoded = s;
  }

  /** Manufacture a new card on `backend` (or a file path): serial, suite and capacity are fixed here. */
  static create(target: NvmBackend | string, options: CreateCardOptions = {}): EticketCard {
    const state: CardState = {
      serial: options.serial ?? new Uint8Array(randomBytes(8)),
      suite: SUITE[options.suite ?? 'rsa'],
      lifecycle: LIFECYCLE.PERSONALIZING,
      capacity: options.capacity ?? LIMITS.defaultCapacity,
      authorityKeys: [],
      terminalKeys: [],
      symKeys: [],
      tombstones: [],
      tombstoneFloor: 0,
      nextSeq: 1,
      tickets: [],
      cardTime: 0,
    };
    const image = encodeState(state);
    if (image.length > state.capacity) throw new RangeError(`capacity ${state.capacity} is below the ${image.length} bytes a blank card needs`);
    if (typeof target === 'string') {
      FileBackend.createImage(target, image);
      return EticketCard.open(target);
    }
    target.write('image', 0, image);
    return new EticketCard(new NvmStore(target));
  }

  /** Open an existing card image (recovering from an interrupted command if needed). */
  static open(target: NvmBackend | string, faults?: FaultInjector): EticketCard {
    const backend = typeof target === 'string' ? new FileBackend(target) : target;
    return new EticketCard(new NvmStore(backend, 256, faults));
  }

  /** A new blank card whose NVM lives in memory only (tests, card farms). */
  static inMemory(options: CreateCardOptions = {}): EticketCard {
    return EticketCard.create(new MemoryBackend(), options);
  }

  /**
   * A second card in RAM in exactly this card's condition: the same NVM image and the same volatile state
   * (selection, challenge, shown view, sym session, pending chain or response). For fuzzing and tests (a mutant
   * is sent to a fork in the state that accepts the original); a real card cannot be copied.
   */
  fork(): EticketCard {
    const backend = new MemoryBackend();
    backend.write('image', 0, this.store.current);
    // The fork decodes its own state: decoded states are views of the image they came from (card/state.ts).
    const copy = new EticketCard(new NvmStore(backend));
    Object.assign(copy.ram, structuredClone(this.ram));
    copy.pending = this.pending ? { data: this.pending.data.slice(), offset: this.pending.offset } : null;
    copy.chain = this.chain ? { ...this.chain, parts: this.chain.parts.map((p) => p.slice()) } : null;
    return copy;
  }

  /** The card's decoded persistent state (keys, tickets, tombstones): for tests and tools, never sent to a terminal. */
  get persistent(): CardState {
    return this.state;
  }

  /** Bytes of NVM the state uses now. */
  get usedBytes(): number {
    return this.store.current.length;
  }

  /**
   * The committed NVM image (tests compare it byte for byte). This is the card's one buffer (a memory backend's
   * image, or the store's copy of an image file), which later commands change in place: copy it (`slice()`) to
   * keep a snapshot.
   */
  get image(): Uint8Array {
    return this.store.current;
  }

  /**
   * Make the image durable and empty its journal (NvmStore.checkpoint): what a program does before it lets go of an
   * image file, so that the file alone is the card until its next command.
   */
  checkpoint(): void {
    this.store.checkpoint();
  }

  /**
   * Group commit (NvmStore.deferBarriers): commands keep their atomicity and order, and their barrier is flush()'s.
   * For a host that records elsewhere what the card took, and flushes before it does (`eticket issue`).
   */
  deferBarriers(on: boolean): void {
    this.store.deferBarriers(on);
  }

  /** The barrier for the commands since the last one, under deferBarriers(true). */
  flush(): void {
    this.store.flush();
  }

  /** Power-cut injection for tearing tests: counts NVM write points and cuts at the chosen one. */
  get faults(): FaultInjector | undefined {
    return this.store.faults;
  }

  /** Arm (or disarm, with undefined) power-cut injection. */
  set faults(f: FaultInjector | undefined) {
    this.store.faults = f;
  }

  /**
   * Commit a new persistent state atomically, or refuse with NOT_ENOUGH_MEMORY if it does not fit. A usage update
   * of the same length rewrites its A3 and the checksum in place; a command that keeps the length of the body before
   * the records (LOAD, DELETE, any usage update, LOCK) writes what changed of the header and that body and the records
   * from the first it changed on; anything else (personalisation), and a command the image would not hold (refused
   * there), re-encodes the image, whose parts the state then points into (one buffer per card).
   */
  private commit(next: CardState): void {
    const prev = this.state;
    const usage = planUsagePatch(prev, next, this.store.current);
    if (usage) {
      this.store.patch(usage);
      adoptUsagePatch(prev, next);
    } else {
      const patch = planImagePatch(prev, next, this.store.current);
      if (patch) {
        this.store.patch(patch.writes, patch.length);
        adoptImagePatch(next, patch, this.store.current);
      } else {
        const image = encodeState(next);
        if (image.length > next.capacity) throw new CardRefusal(SW.NOT_ENOUGH_MEMORY, 'NVM full');
        this.store.commit(image);
        rebaseState(next, this.store.current);
      }
    }
    this.state = next;
    this.committed = true;
  }

  atr(): Uint8Array {
    return ATR.slice();
  }

  powerOn(): void {
    this.clearVolatile();
  }

  powerOff(): void {
    this.clearVolatile();
  }

  reset(): void {
    this.clearVolatile();
  }

  private clearVolatile(): void {
    this.ram.selected = false;
    this.ram.challenge = null;
    this.ram.shown = null;
    this.ram.session = null;
    this.ram.issuerAuthenticated = false;
    this.ram.readCursor = null;
    this.pending = null;
    this.chain = null;
  }

  transmit(bytes: Uint8Array): Uint8Array {
    try {
      return this.process(bytes);
    } catch (e) {
      // A simulated power cut is the one thing that may escape: a real card would give no answer at all.
      if (e instanceof PowerCutError) throw e;
      return encodeResponse(new Uint8Array(0), SW.UNKNOWN_ERROR);
    }
  }

  private process(bytes: Uint8Array): Uint8Array {
    let apdu: CommandApdu;
    try {
      apdu = parseCommand(bytes);
    } catch (e) {
      if (e instanceof ApduFormatError) return this.fail(SW.WRONG_LENGTH);
      throw e;
    }
    const { cla, ins } = apdu;
    // CLA: 0x00 interindustry or 0x80 proprietary, bit 0x10 chaining; channels and SM are not offered.
    if (cla === 0xff || (cla & 0x60) !== 0) return this.fail(SW.CLA_NOT_SUPPORTED);
    if ((cla & 0x03) !== 0) return this.fail(SW.LOGICAL_CHANNEL_NOT_SUPPORTED);
    if ((cla & 0x0c) !== 0) return this.fail(SW.SECURE_MESSAGING_NOT_SUPPORTED);
    const chained = (cla & 0x10) !== 0;

    if (this.chain) {
      const c = this.chain;
      if ((cla & 0xef) !== c.cla || ins !== c.ins || apdu.p1 !== c.p1 || apdu.p2 !== c.p2) {
        this.chain = null;
        return this.fail(SW.LAST_COMMAND_EXPECTED);
      }
    }

    const def = commandForIns(cla & 0xef, ins);
    if (!def) {
      this.chain = null;
      const insKnown = protocol.commands.some((c) => parseInt(c.ins, 16) === ins);
      return this.fail(insKnown ? SW.CLA_NOT_SUPPORTED : SW.INS_NOT_SUPPORTED);
    }

    if (def.name === 'GET RESPONSE') return this.getResponse(apdu);
    this.pending = null;

    const rules = dispatchRules(def);
    if (!rules.p1.has(apdu.p1) || !rules.p2.has(apdu.p2)) {
      this.chain = null;
      return this.fail(SW.INCORRECT_P1P2);
    }

    if (chained) {
      if (!def.chaining) return this.fail(SW.CHAINING_NOT_SUPPORTED);
      if (apdu.ne !== undefined || apdu.data.length === 0) {
        this.chain = null;
        return this.fail(SW.WRONG_LENGTH);
      }
      const c = this.chain ?? { cla: cla & 0xef, ins, p1: apdu.p1, p2: apdu.p2, parts: [], size: 0 };
      c.parts.push(apdu.data.slice());
      c.size += apdu.data.length;
      if (c.size > LIMITS.maxChainedData) {
        this.chain = null;
        return this.fail(SW.CHAINING_NOT_SUPPORTED);
      }
      this.chain = c;
      return encodeResponse(new Uint8Array(0), SW.SUCCESS);
    }

    let data = apdu.data;
    if (this.chain) {
      data = concat(...this.chain.parts, apdu.data);
      this.chain = null;
      if (data.length > LIMITS.maxChainedData) return this.fail(SW.CHAINING_NOT_SUPPORTED);
    } else if (data.length > LIMITS.maxCommandData) {
      return this.fail(SW.WRONG_LENGTH);
    }

    // The command's ISO case: whether it takes command data (3, 4) and whether Le is meaningful (2, 4).
    if (rules.takesData !== data.length > 0) return this.fail(SW.WRONG_LENGTH);
    if (rules.case1 && apdu.ne !== undefined) return this.fail(SW.WRONG_LENGTH);

    if (def.requiresSelection && !this.ram.selected) return this.fail(SW.COMMAND_NOT_ALLOWED);
    if (def.lifecycle === 'PERSONALIZING' && this.state.lifecycle !== LIFECYCLE.PERSONALIZING) return this.fail(SW.CONDITIONS_NOT_SATISFIED);
    if (def.lifecycle === 'OPERATIONAL' && this.state.lifecycle !== LIFECYCLE.OPERATIONAL) return this.fail(SW.CONDITIONS_NOT_SATISFIED);

    const handler = HANDLERS[def.name];
    if (!handler) return this.fail(SW.INS_NOT_SUPPORTED);
    let result: Uint8Array;
    this.committed = false;
    try {
      result = handler(this.context, data === apdu.data ? apdu : { ...apdu, data });
    } catch (e) {
      if (e instanceof CardRefusal) return this.fail(e.sw);
      if (e instanceof TlvError) return this.fail(SW.INCORRECT_DATA);
      if (e instanceof PowerCutError) throw e;
      if (e instanceof NvmWriteError) {
        // Disk full or I/O error: whatever recovery finds in NVM (old state, or the new one rolled
        // forward from a complete journal) becomes the card's state again.
        try {
          this.state = decodeState(this.store.resync());
        } catch {
          // NVM unreadable: keep the last good RAM copy; every later write fails the same way.
        }
        return this.fail(SW.MEMORY_FAILURE);
      }
      throw e;
    }
    return this.respond(result, apdu.ne, apdu.extended, this.committed);
  }

  /**
   * Apply the Le rules of apdu-spec 1: whole, 6CXX for a short response asked with the wrong Le, or 61XX chunks.
   * A command that changed NVM never answers 6CXX: reissuing it would be refused, so its answer would be lost;
   * it gives what fits Ne (nothing without Le) with 61XX, and the rest waits for GET RESPONSE.
   */
  private respond(data: Uint8Array, ne: number | undefined, extended: boolean, committed: boolean): Uint8Array {
    if (data.length === 0) return encodeResponse(data, SW.SUCCESS);
    if (ne === undefined) {
      this.pending = { data, offset: 0 };
      return encodeResponse(new Uint8Array(0), SW.BYTES_REMAINING | remainingByte(data.length));
    }
    if (data.length <= ne) return encodeResponse(data, SW.SUCCESS);
    if (!extended && data.length <= 256 && !committed) return encodeResponse(new Uint8Array(0), SW.WRONG_LE_EXACT | (data.length & 0xff));
    this.pending = { data, offset: ne };
    return encodeResponse(data.subarray(0, ne), SW.BYTES_REMAINING | remainingByte(data.length - ne));
  }

  private getResponse(apdu: CommandApdu): Uint8Array {
    const p = this.pending;
    if (apdu.p1 !== 0 || apdu.p2 !== 0) return this.fail(SW.INCORRECT_P1P2);
    if (apdu.data.length > 0) return this.fail(SW.WRONG_LENGTH);
    if (!p) return this.fail(SW.CONDITIONS_NOT_SATISFIED);
    const ne = apdu.ne ?? 256;
    const rest = p.data.length - p.offset;
    const n = Math.min(ne, rest);
    const chunk = p.data.subarray(p.offset, p.offset + n);
    p.offset += n;
    if (p.offset >= p.data.length) {
      this.pending = null;
      return encodeResponse(chunk, SW.SUCCESS);
    }
    return encodeResponse(chunk, SW.BYTES_REMAINING | remainingByte(p.data.length - p.offset));
  }

  private fail(sw: number): Uint8Array {
    this.pending = null;
    return encodeResponse(new Uint8Array(0), sw);
  }
}

function remainingByte(n: number): number {
  return n >= 256 ? 0 : n;
}

/** What dispatch checks of a command's definition, as numbers: read once per definition, not per APDU. */
interface DispatchRules {
  p1: Set<number>;
  p2: Set<number>;
  /** ISO case 3 or 4: the command takes data. */
  takesData: boolean;
  case1: boolean;
}

const rulesByDef = new WeakMap<CommandDef, DispatchRules>();

function dispatchRules(def: CommandDef): DispatchRules {
  let r = rulesByDef.get(def);
  if (!r) {
    r = { p1: new Set(def.p1.map((h) => parseInt(h, 16))), p2: new Set(def.p2.map((h) => parseInt(h, 16))), takesData: /3|4/.test(def.case), case1: def.case === '1' };
    rulesByDef.set(def, r);
  }
  return r;
}

/** Factory for out-of-process runners (vpcd child): open the card image at `path`. */
export function openCardImage(path: string): EticketCard {
  return EticketCard.open(path);
}
