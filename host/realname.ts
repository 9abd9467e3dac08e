// The checking terminal's real-name step (docs/realname.md "At the gate"): after the card has proven the ticket,
// fetch the holder from the back office and prove it belongs to this ticket; offline, say "holder not checked".

import { readFileSync } from 'node:fs';
import { writeFileDurably } from '../sdk/durable-file.js';
import { CryptoError } from '../sdk/errors.js';
import { HolderBindingError, type HolderRecord } from '../sdk/roles/realname.js';
import type { TicketFace } from '../sdk/ticket.js';
import { BackofficeHttpError, BackofficeUnreachableError, type BackofficeClient, type TotpStepStore } from './backoffice-client.js';

/**
 * What the real-name step found, for staff and for the gate journal's `realName` field:
 * checked (the holder shown belongs to this ticket), not_checked (offline, refused, too slow: `reason` says),
 * mismatch (the record does not belong to this ticket: a swapped or altered record).
 */
export type RealNameStatus = 'checked' | 'not_checked' | 'mismatch';

/** The real-name step's answer: a tap's `realName`, `CheckingTerminal.checkHolder`'s result. */
export interface RealNameCheck {
  status: RealNameStatus;
  /** checked only: the holder to compare with the person and the ID shown. */
  holder?: HolderRecord;
  readsLeft?: number;
  /** not_checked / mismatch: unreachable, timeout, no_service, the service's refusal (not_permitted, expired, ...), bad_answer, binding. */
  reason?: string;
  message?: string;
}

/** Where a checking terminal gets a ticket's holder; BackofficeHolderChecker is the one over the API. */
export interface RealNameChecker {
  /** The holder of the ticket with this face, or why it is not shown. */
  check(face: TicketFace): Promise<RealNameCheck>;
}

/** The real-name outcome of an error from the back-office client; anything else is a bug and propagates. */
export function realNameCheckFor(e: unknown): RealNameCheck {
  if (e instanceof BackofficeUnreachableError) return { status: 'not_checked', reason: 'unreachable', message: e.message };
  if (e instanceof BackofficeHttpError) return { status: 'not_checked', reason: e.error, message: e.message };
  if (e instanceof HolderBindingError) return { status: 'mismatch', reason: 'binding', message: e.message };
  if (e instanceof CryptoError) return { status: 'not_checked', reason: 'bad_answer', message: e.message };
  throw e;
}

/**
 * The holder check over the back office's API: a signed request with a TOTP code, the answer opened with the
 * terminal's key and proven against the face's binding. Refusals, an unreachable service and a record that does
 * not belong to the ticket come back as a {@link RealNameCheck}, never as an exception.
 *
 * @example
 * const client = BackofficeClient.fromCredential('https://bo.example', 'gate-7.json', process.env.GATE_CLIENT_PASSPHRASE!);
 * const gate = new CheckingTerminal(session, { ...config, realName: new BackofficeHolderChecker(client) });
 * const { decision, realName } = await gate.passGate('entry');
 */
export class BackofficeHolderChecker implements RealNameChecker {
  /** Over a client made from a gate's or inspector's credential file (one that carries its real-name keys). */
  constructor(private readonly client: BackofficeClient) {}

  /** Fetch and prove the holder of this real-name ticket. */
  async check(face: TicketFace): Promise<RealNameCheck> {
    try {
      const r = await this.client.holder(face);
      return { status: 'checked', holder: r.holder, readsLeft: r.readsLeft };
    } catch (e) {
      return realNameCheckFor(e);
    }
  }
}

/** The check, or not_checked/timeout after `ms`: a gate does not wait for a slow back office (the card decided). */
export async function checkWithin(checker: RealNameChecker, face: TicketFace, ms: number): Promise<RealNameCheck> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<RealNameCheck>((resolve) => {
    timer = setTimeout(() => resolve({ status: 'not_checked', reason: 'timeout', message: `no answer from the back office within ${ms} ms` }), ms);
  });
  try {
    return await Promise.race([checker.check(face), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The last TOTP step a terminal spent, in a small file (mode 0600) next to its credential, for terminals that run
 * one process per check (`eticket inspect`): two checks within one time step take two different steps.
 */
export function totpStepFile(path: string): TotpStepStore {
  return {
    last: () => {
      try {
        const n = Number(readFileSync(path, 'utf8').trim());
        return Number.isSafeInteger(n) ? n : -1;
      } catch {
        return -1;
      }
    },
    spent: (step) => writeFileDurably(path, `${step}\n`, { mode: 0o600 }),
  };
}
