// The README's main job on the embedded emulator: keys, a card, three tickets issued, a gate passed
// in and out, the used ticket deleted, and a replayed LOAD refused; each step printed readably.

import { formatServiceDate, toServiceDate } from '../../sdk/fields.js';
import { hex } from '../../sdk/bytes.js';
import { CardStatusError } from '../../sdk/errors.js';
import type { SuiteName } from '../../sdk/spec.js';
import { World } from '../../testing/world.js';

export interface DemoStep {
  step: string;
  ok: boolean;
  detail: Record<string, unknown>;
}

/** `now` (Unix seconds) pins the demo's clock: the tests run it at every hour that could trip a date. */
export async function runDemo(options: { suite?: SuiteName; log?: (line: string) => void; now?: number } = {}): Promise<DemoStep[]> {
  const log = options.log ?? (() => undefined);
  const steps: DemoStep[] = [];
  const record = (step: string, ok: boolean, detail: Record<string, unknown>, line: string) => {
    steps.push({ step, ok, detail });
    log(`${ok ? '✔' : '✘'} ${line}`);
  };

  const world = World.create(options.suite ?? 'rsa', 'CR');
  if (options.now !== undefined) world.now = options.now;
  record('keys', true, { suite: world.suite }, `back office ready (${world.suite}): ${world.keys.ca ? 'CA, ' : 'KGC, '}authority key 1/6, gate keys 4/5`);

  const { card, session, issuing, credentials } = await world.newCard();
  record('card', true, { serial: hex(credentials.serial) }, `card ${hex(credentials.serial)} manufactured, keys ${world.suite === 'rsa' ? 'generated on the card and certified' : 'extracted by the KGC'}, locked`);

  const today = toServiceDate(new Date(world.now * 1000));
  const tomorrow = toServiceDate(new Date((world.now + 86400) * 1000));
  const requests = [
    { serviceDate: today, train: 'G1', origin: 'BJS', destination: 'SHH', departure: 9 * 60, coach: '05', seat: '12A', travelClass: '2', fare: 55300, currency: 'CNY', passenger: 'Li Wei', kind: 1 },
    { serviceDate: today, train: 'L2', origin: 'SHH', destination: 'PDX', fare: 700, currency: 'CNY', kind: 2 },
    { serviceDate: tomorrow, train: 'EXPO', origin: 'HALL1', fare: 12000, currency: 'CNY', kind: 4 },
  ];
  const issued = [];
  for (const req of requests) {
    const face = world.ticketServer.createTicket(req);
    const { sealed } = world.authority.issue(face, credentials);
    const loaded = await issuing.load(sealed);
    issued.push({ face, sealed });
    record('issue', true, { tid: face.tid, bytes: sealed.length, seq: loaded.sequenceNumber }, `issued ${face.tid} ${face.train} ${face.origin}→${face.destination ?? ''} ${formatServiceDate(face.serviceDate)} (${sealed.length}-byte first ciphertext, slot ${loaded.sequenceNumber})`);
  }
  const cap = await issuing.capacity();
  record('capacity', true, { ...cap }, `card NVM: ${cap.totalBytes - cap.freeBytes}/${cap.totalBytes} bytes used, ${cap.tickets} tickets`);

  const entryGate = world.checkingTerminal(session, { station: 'BJS', gateId: 'BJS-G07' });
  const listed = await entryGate.readTickets({ date: today });
  record('read', listed.length === 3, { tids: listed.map((t) => t.face.tid) }, `gate reads ${listed.length} tickets for ${formatServiceDate(today)} or later`);

  const verified = await entryGate.verifyTicket({ date: today, train: 'G1' });
  record('verify', true, { tid: verified.face.tid }, `verify ${verified.face.tid}: TF_V checked against the authority key, seat ${verified.face.coach}/${verified.face.seat}`);

  world.now += 60;
  const entry = await entryGate.passGate('entry', { train: 'G1' });
  record('entry', entry.decision.pass, { decision: entry.decision, counter: entry.receipt?.counter }, `entry gate BJS: ${entry.decision.pass ? 'PASS' : 'REJECT'} (${entry.decision.message}); card receipt verified, counter ${entry.receipt?.counter}`);

  const again = await entryGate.passGate('entry', { train: 'G1' });
  record('entry-again', !again.decision.pass, { decision: again.decision }, `same ticket at the entry again: ${again.decision.pass ? 'PASS' : 'REJECT'} (${again.decision.message})`);

  // Three hours later: past midnight when the demo starts late in the day (the exit gate then finds the ticket of
  // the day before), and always within the ticket's validity (until 04:00 the day after its service date).
  world.now += 3 * 3600;
  const exitGate = world.checkingTerminal(session, { station: 'SHH', gateId: 'SHH-G02' });
  const exit = await exitGate.passGate('exit', { train: 'G1' });
  record('exit', exit.decision.pass, { decision: exit.decision }, `exit gate SHH: ${exit.decision.pass ? 'PASS' : 'REJECT'} (${exit.decision.message})`);

  const used = await exitGate.verifyTicket({ tid: issued[0].face.tid });
  const deletion = await exitGate.deleteTicket(used);
  record('delete', true, { tid: deletion.tid }, `used ticket ${deletion.tid} deleted; deletion receipt signed by the card (${deletion.signature.length}-byte signature)`);

  try {
    await issuing.load(issued[0].sealed);
    record('replay', false, {}, 'replayed LOAD of the deleted ticket was accepted (this must not happen)');
  } catch (e) {
    const sw = e instanceof CardStatusError ? e.swName : String(e);
    record('replay', e instanceof CardStatusError, { refused: sw }, `replayed LOAD of the deleted ticket refused: ${sw}`);
  }
  const after = await issuing.capacity();
  record('final', true, { ...after }, `card now holds ${after.tickets} tickets, ${after.tombstones} tombstone(s); ${session.stats.apdus} APDUs exchanged`);
  void card;
  return steps;
}
