// A gate that works offline (docs/gates.md): it decides on the card, its keys and the denylist it holds, writes
// every tap to its journal and waits for the journal to be durable before it answers PASS; it never waits for
// the network (uploads and denylist updates run beside it, host/journal-uploader.ts).

import { sha256 } from '../sdk/crypto/suite.js';
import type { RealNameCheck, TapRecord } from '../sdk/gate-journal.js';
import type { RealNameCheck as HolderCheck } from './realname.js';
import { CheckingTerminal, checkTerminalConfig, type CheckingTerminalConfig, type Receipt, type TicketView } from './checking.js';
import type { DenylistCache } from './denylist.js';
import { reject, type Direction, type GateDecision } from './gate.js';
import { JournalFailedError, JournalPowerCut, type GateJournal } from './journal.js';
import type { CardSession } from './session.js';

export interface OfflineGateConfig {
  terminal: CheckingTerminalConfig;
  journal: GateJournal;
  denylist: DenylistCache;
  /**
   * Real-name tickets: whether the holder was checked at this tap (recorded in the journal). The real-name gate
   * logic provides it; absent, records carry no real-name field.
   */
  realName?: (ticket: TicketView) => RealNameCheck | undefined;
}

export interface TapOutcome {
  decision: GateDecision;
  ticket?: TicketView;
  receipt?: Receipt;
  /** Real-name tickets: the holder check the checking terminal made at this tap (CheckingTerminal.passGate). */
  realName?: HolderCheck;
  /** The journal record (absent only when the journal could not take one: journal_full). */
  record?: TapRecord;
}

export class OfflineGate {
  constructor(readonly config: OfflineGateConfig) {
    checkTerminalConfig(config.terminal);
  }

  get gateId(): string {
    return this.config.terminal.gateId;
  }

  get station(): string {
    return this.config.terminal.station;
  }

  private get clockMs(): number {
    const c = this.config.terminal.clock;
    return c ? c() * 1000 : Date.now();
  }

  /**
   * One tap. The journal's room is reserved first: a gate whose journal is full (or failed) refuses without
   * touching the card, so nothing the card records goes unjournalled. A denylisted card is refused before any
   * write. The answer comes once the record is durable; a PASS whose record cannot be written is turned into a
   * REJECT journal_full (the card then shows the entry: staff resolve it, the gate goes out of service).
   */
  async tap(session: CardSession, direction: Direction, options: { date?: number; train?: string; auditVerificationCode?: boolean } = {}): Promise<TapOutcome> {
    const { journal, denylist } = this.config;
    if (!journal.reserve()) return { decision: reject('journal_full', journal.failed ? `journal failed: ${journal.failed.message}` : undefined) };
    const denylistVersion = denylist.version;
    let outcome: { decision: GateDecision; ticket?: TicketView; receipt?: Receipt; realName?: HolderCheck };
    try {
      const terminal = new CheckingTerminal(session, this.config.terminal);
      outcome = await terminal.passGate(direction, { ...options, screen: (t) => (denylist.has(t.cardSerial) ? reject('denylisted') : undefined) });
    } catch (e) {
      journal.release();
      throw e;
    }
    const { decision, ticket, receipt } = outcome;
    try {
      const record = await journal.append({
        gateId: this.gateId,
        time: this.clockMs,
        direction,
        pass: decision.pass,
        reason: decision.reason,
        station: this.station,
        mode: this.config.terminal.mode ?? 'pki',
        operator: ticket?.face.operator,
        tid: ticket?.face.tid,
        cardSerial: ticket?.cardSerial,
        counter: ticket ? (receipt ? receipt.counter - 1 : ticket.usage.counter) : undefined,
        faceDigest: ticket ? sha256(ticket.faceEncoded) : undefined,
        receipt: receipt?.encoded,
        transaction: receipt?.sym,
        denylistVersion,
        realName: outcome.realName?.status ?? (ticket ? this.config.realName?.(ticket) : undefined),
      });
      return { ...outcome, record };
    } catch (e) {
      if (!(e instanceof JournalFailedError) && !(e instanceof JournalPowerCut)) throw e;
      return { decision: reject('journal_full', `journal failed: ${(e as Error).message}`), ticket, receipt };
    }
  }
}
