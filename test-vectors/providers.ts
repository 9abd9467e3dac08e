// Card providers for the vector runner: a fresh emulated image per group (personalised in process with
// the TEST ONLY profile), or the one card in a PC/SC reader (blank, or already personalised with that profile).

import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EticketCard } from '../card/applet.js';
import { FileBackend } from '../card/nvm.js';
import { decodeState, encodeState, makeRecord } from '../card/state.js';
import { decodeTicketFace, encodeTicketFace } from '../sdk/ticket.js';
import { hex } from '../sdk/bytes.js';
import { writeFileDurably } from '../sdk/durable-file.js';
import type { Icc } from '../sdk/icc.js';
import { T } from '../sdk/spec.js';
import { CheckingTerminal } from '../host/checking.js';
import { encodeIssuerAuthorization, issuerAuthorizationMessage } from '../sdk/commands/external-authenticate.js';
import { CardStatusError } from '../sdk/errors.js';
import { IssuingTerminal } from '../host/issuing.js';
import { personalizeCard } from '../host/personalize.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { PcscTransport, type PcscTransportOptions } from '../host/transport/pcsc.js';
import type { Transport } from '../host/transport/transport.js';
import type { Fixture } from './format.js';
import type { Acquired, CardProvider, Preset } from './runner.js';
import { authority, personalizationProfile, terminal, type TestKeys } from './testkeys.js';

// A fixed serial keeps fresh images reproducible; each group still gets its own card.
const IMAGE_SERIAL = Uint8Array.from([0xe7, 0x1c, 0x4e, 0x70, 0x00, 0x00, 0x00, 0x01]);

/** Makes card image files in a folder: blank, or personalised with the profile (keys generated once, then copied). */
export class ImageFactory {
  readonly dir: string;
  private readonly templates = new Map<string, string>();
  private n = 0;

  constructor(dir?: string, private readonly keep = false) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'eticket-vectors-'));
  }

  /** A new image file in the fixture's state. */
  async make(fixture: Fixture, keys: TestKeys): Promise<string> {
    const path = join(this.dir, `card-${++this.n}.img`);
    const capacity = fixture.capacity;
    if (fixture.state === 'blank') {
      EticketCard.create(path, { suite: keys.suite, capacity, serial: IMAGE_SERIAL });
      return path;
    }
    // On-card RSA key generation is the slow part of personalisation: do it once per capacity and copy.
    const key = `${keys.profileName}/${capacity ?? 'default'}`;
    let template = this.templates.get(key);
    if (!template) {
      template = join(this.dir, `template-${this.templates.size + 1}.img`);
      const card = EticketCard.create(template, { suite: keys.suite, capacity, serial: IMAGE_SERIAL });
      await personalizeCard(new CardSession(new EmulatorTransport(card)), personalizationProfile(keys));
      this.templates.set(key, template);
    }
    copyFileSync(template, path);
    return path;
  }

  /** Delete the images (unless kept). */
  close(): void {
    if (!this.keep) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Set a card image's state directly (a vector `preset`): a ticket's usage counter, or its ticket table filled with
 * copies of its first ticket. What thousands of APDUs would do, in one write; only for images made for the test.
 */
export function presetImage(path: string, p: Preset): void {
  // The image file alone must be the card before it is rewritten: its journal's records (already applied to the
  // image) are cut first, or the next open would replay them over the preset state.
  const backend = new FileBackend(path);
  try {
    EticketCard.open(backend).checkpoint();
  } finally {
    backend.close();
  }
  const s = decodeState(new Uint8Array(readFileSync(path)));
  if (p.what === 'usage-counter') {
    const t = s.tickets.find((x) => x.tid === p.tid);
    if (!t) throw new Error(`preset: no ticket ${p.tid} on the card`);
    s.tickets = s.tickets.map((x) => (x === t ? { ...t, usage: { ...t.usage, counter: p.counter } } : x));
  } else {
    const first = s.tickets[0];
    if (!first) throw new Error('preset: the ticket table needs one ticket to copy');
    // Copies under their own TIDs, placed before the tickets already there: a later DELETE of those (the last
    // records of the image) rewrites a few NVM pages, not the whole table.
    const face = decodeTicketFace(first.face);
    const used = new Set(s.tickets.map((t) => t.seq));
    const copies: typeof s.tickets = [];
    let seq = 1;
    for (let i = 0; s.tickets.length + copies.length < p.count; i++) {
      while (used.has(seq)) seq++;
      used.add(seq);
      copies.push(makeRecord(seq, encodeTicketFace({ ...face, tid: `COPY-${i}` }), first.tfv, first.usage));
    }
    s.tickets = [...copies, ...s.tickets];
    s.nextSeq = seq + 1;
  }
  writeFileDurably(path, encodeState(s));
}

/** An Icc over an image file that can be reopened after the file was changed (presets): like a power cycle. */
class ImageIcc implements Icc {
  private backend: FileBackend;
  private card: EticketCard;
  constructor(private readonly path: string) {
    this.backend = new FileBackend(path);
    this.card = EticketCard.open(this.backend);
  }
  /** Let go of the image file (its journal cut): the file alone is the card, ready for a preset. */
  release(): void {
    this.card.checkpoint();
    this.backend.close();
  }
  reopen(): void {
    this.backend = new FileBackend(this.path);
    this.card = EticketCard.open(this.backend);
  }
  atr(): Uint8Array {
    return this.card.atr();
  }
  powerOn(): void {
    this.card.powerOn();
  }
  powerOff(): void {
    this.card.powerOff();
  }
  reset(): void {
    this.card.reset();
  }
  transmit(command: Uint8Array): Uint8Array {
    return this.card.transmit(command);
  }
}

/** A fresh image per group, driven in process (the embedded emulator). */
export function imageProvider(options: { dir?: string; keep?: boolean; extendedLength?: boolean } = {}): CardProvider {
  const images = new ImageFactory(options.dir, options.keep);
  return {
    label: `emulator (fresh image per group in ${images.dir})`,
    reusesCards: false,
    async acquire(fixture, keys) {
      const path = await images.make(fixture, keys);
      const icc = new ImageIcc(path);
      const transport = new EmulatorTransport(icc, `emulator:${path}`, { extendedLength: options.extendedLength });
      return {
        transport,
        release: () => transport.disconnect(),
        async preset(p: Preset) {
          icc.release();
          presetImage(path, p);
          icc.reopen();
          await transport.reset();
        },
      };
    },
    async close() {
      images.close();
    },
  };
}

type CardState = 'blank' | 'profile' | 'other' | 'used';

/** Key ids GET DATA D9 lists on a card personalised with the profile: 01 authority, 02 terminal, 03 sym. */
export function profileKeyIds(keys: TestKeys): string[] {
  return [
    ...[...keys.authorities.values()].filter((a) => a.installed).map((a) => '01' + hex(a.keyId)),
    ...[...keys.terminals.values()].filter((t) => t.installed).map((t) => '02' + hex(t.keys.keyId)),
    ...[...keys.masterKeys.values()].filter((m) => m.installed).map((m) => '03' + hex(m.keyId)),
  ];
}

/**
 * The one card in a reader. A blank card runs the blank, non-disposable groups (personalisation), is then
 * personalised with the profile if still blank, and runs the rest; a card already personalised with the
 * profile (its installed key ids say so) runs every personalised group. Between groups the runner's tickets
 * are deleted, so the card can run the vectors again and again.
 */
export function readerProvider(options: PcscTransportOptions & { transport?: () => Transport; spendCard?: boolean } = {}): CardProvider {
  const make = options.transport ?? (() => new PcscTransport(options));
  if (options.spendCard) return spendingProvider(options, make);
  let state: CardState | undefined;
  let suite: string | undefined;
  let cleanNeeded = false;
  let cleanupKeys: TestKeys | undefined;
  return {
    label: `reader ${options.reader ?? '(first with a card)'}`,
    reusesCards: true,
    async acquire(fixture: Fixture, keys: TestKeys): Promise<Acquired> {
      const transport = make();
      const release = () => transport.disconnect().catch(() => undefined);
      try {
        const session = new CardSession(transport);
        // One card is one suite: the other suite's files are skipped, not failed.
        suite ??= (await new IssuingTerminal(session).select()).suite;
        if (suite !== keys.suite) {
          await release();
          return { skip: `vectors for ${keys.suite} cards; this card is ${suite}` };
        }
        state ??= await inspect(session, keys);
        if (fixture.capacity !== undefined) {
          await release();
          return { skip: `needs a card with exactly ${fixture.capacity} bytes of NVM; only an emulated image can be made to order` };
        }
        if (fixture.presets) {
          await release();
          return { skip: 'sets the card state directly (a counter at its limit, a full ticket table); only an emulated image can be set so' };
        }
        if (fixture.freshCard) {
          await release();
          return { skip: 'needs a card that never accepted a later ticket (its time high-water mark decides key retirement); run it on emulated images (without --reader)' };
        }
        if (fixture.state === 'blank') {
          await release();
          if (fixture.disposable) return { skip: 'leaves the card unusable for the test profile; run it on a second blank card with --spend-card' };
          if (state !== 'blank') return { skip: 'needs a blank card; this card is already personalised' };
          state = 'used';
          const fresh = make();
          return { transport: fresh, release: () => fresh.disconnect().catch(() => undefined) };
        }
        if (state === 'blank' || state === 'used') {
          const lc = await lifecycle(session);
          if (lc === 'PERSONALIZING') {
            if (state === 'used') {
              await release();
              return { skip: 'the blank-card groups left this card half personalised; use a new blank card' };
            }
            await personalizeCard(session, personalizationProfile(keys));
          }
          state = (await inspect(session, keys)) === 'profile' ? 'profile' : 'other';
        }
        if (state !== 'profile') {
          await release();
          return { skip: 'this card is not personalised with the test profile (GET DATA D9 lacks its key ids)' };
        }
        if (cleanNeeded) await deleteAllTickets(session, keys);
        cleanNeeded = true;
        cleanupKeys = keys;
        await session.close();
        return { transport, release };
      } catch (e) {
        await release();
        throw e;
      }
    },
    // The last group's tickets go too: the card ends the run holding what it held before (its free space back
    // where it was), so it can run the vectors again and again.
    async close() {
      if (!cleanNeeded || !cleanupKeys) return;
      const transport = make();
      try {
        await deleteAllTickets(new CardSession(transport), cleanupKeys);
      } finally {
        await transport.disconnect().catch(() => undefined);
      }
    },
  };
}

/**
 * A blank card given up for the groups that leave a card unusable for the test profile (its terminal key table
 * filled): it runs those, once, and nothing else. What needs an NVM of a given size stays for emulated images.
 */
function spendingProvider(options: PcscTransportOptions, make: () => Transport): CardProvider {
  let spent = false;
  let suite: string | undefined;
  return {
    label: `reader ${options.reader ?? '(first with a card)'} (a blank card to spend)`,
    reusesCards: true,
    async acquire(fixture: Fixture, keys: TestKeys): Promise<Acquired> {
      if (!fixture.disposable || fixture.state !== 'blank') return { skip: '--spend-card: this card runs only the groups that use a blank card up' };
      if (fixture.capacity !== undefined) return { skip: `needs a card with exactly ${fixture.capacity} bytes of NVM; only an emulated image can be made to order` };
      const transport = make();
      try {
        const session = new CardSession(transport);
        suite ??= (await new IssuingTerminal(session).select()).suite;
        if (suite !== keys.suite) {
          await transport.disconnect().catch(() => undefined);
          return { skip: `vectors for ${keys.suite} cards; this card is ${suite}` };
        }
        if (spent || (await inspect(session, keys)) !== 'blank') {
          await transport.disconnect().catch(() => undefined);
          return { skip: spent ? 'the card was spent on an earlier group; use another blank card' : 'needs a blank card; this card is already personalised' };
        }
        spent = true;
        await session.close();
        return { transport, release: () => transport.disconnect().catch(() => undefined) };
      } catch (e) {
        await transport.disconnect().catch(() => undefined);
        throw e;
      }
    },
  };
}

async function lifecycle(session: CardSession): Promise<string> {
  return (await new IssuingTerminal(session).select()).lifecycle;
}

/** EXTERNAL AUTHENTICATE data signed by the profile's test authority (a locked card then shows its installed keys). */
export function testAuthorizer(keys: TestKeys): (challenge: Uint8Array) => Uint8Array {
  const a = authority(keys);
  return (challenge) => encodeIssuerAuthorization({ keyId: a.keyId, signature: a.key.sign(issuerAuthorizationMessage(challenge)) });
}

/** Blank, personalised with the test profile (every installed key id of it present), or something else. */
async function inspect(session: CardSession, keys: TestKeys): Promise<CardState> {
  const issuing = new IssuingTerminal(session, { authorize: testAuthorizer(keys) });
  const info = await issuing.select();
  if (info.lifecycle === 'PERSONALIZING') {
    const installed = await issuing.getData(T.INSTALLED_KEYS);
    return installed && installed.length > 0 ? 'other' : 'blank';
  }
  let installed: string;
  try {
    installed = hex((await issuing.getData(T.INSTALLED_KEYS)) ?? new Uint8Array(0));
  } catch (e) {
    // The card does not hold the test authority: not a card of this profile.
    if (e instanceof CardStatusError) return 'other';
    throw e;
  }
  const ids = profileKeyIds(keys);
  return ids.every((id) => installed.match(/.{18}/g)?.includes(id)) ? 'profile' : 'other';
}

/** Leave no ticket the test terminal can see, so that the next group starts as on a fresh card. */
async function deleteAllTickets(session: CardSession, keys: TestKeys): Promise<void> {
  const gate = new CheckingTerminal(session, {
    keys: terminal(keys).keys,
    authorities: [authority(keys).key.publicKey],
    cardTrust: keys.cardTrust,
    gateId: 'VECTORS',
    station: 'CLEANUP',
  });
  await gate.select();
  // A few passes: tickets of earlier runs may share a TID (each run has its own operator code).
  for (let pass = 0; pass < 5; pass++) {
    const tickets = await gate.readTickets();
    if (tickets.length === 0) return;
    for (const t of tickets) await gate.deleteTicket(await gate.verifyTicket({ tid: t.face.tid }, { verificationCode: false }));
  }
}
