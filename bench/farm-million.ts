// The issue-16 farm goal: N distinct cards (bench/card-farm.ts: own serial, own diversified key, own pass signed
// for it) in one process, their memory per card, and sym taps per second across them against one card.
// `node --max-old-space-size=8192 dist/bench/farm-million.js [cards] [taps per round]`; prints one JSON line.

import { loadavg } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { toServiceDate } from '../sdk/fields.js';
import { PRICING, TICKET_KIND } from '../sdk/ticket.js';
import { World } from '../testing/world.js';
import { CardFarm, type FarmProfile } from './card-farm.js';
import { STATION } from './gate-rig.js';

const N = Number(process.argv[2] ?? 1_000_000);
const TAPS = Number(process.argv[3] ?? 2000);
const ROUNDS = 5;
/** `--in-place`: cards opened over their stored image (CardFarm.openInPlace) instead of a copy of it. */
const IN_PLACE = process.argv.includes('--in-place');
const progress = (s: string) => process.stderr.write(`[farm] ${new Date().toISOString().slice(11, 19)} ${s}\n`);

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;
const collect = async () => {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
};
const mem = () => process.memoryUsage();

const w = World.create('rsa');
const profile: FarmProfile = { suite: 'rsa', masterKey: w.masterKey, authority: { publicKey: w.keys.authorityKey.publicKey, scopes: ['*'] }, terminal: { publicKey: w.keys.terminalKeys.publicKey, scopes: ['*'] } };
const day = toServiceDate(new Date(w.now * 1000));
await collect();
const m0 = mem();
const farm = new CardFarm('million', profile);
const t0 = Date.now();
for (let i = 0; i < N; i++) {
  const face = w.ticketServer.createTicket({ serviceDate: day, kind: TICKET_KIND.METRO, pricing: PRICING.PER_TRIP, maxEntries: 255 });
  farm.add(i, w.authority.sign(face, { serial: farm.serial(i) }));
  if ((i + 1) % 50_000 === 0) progress(`${i + 1} cards, ${((Date.now() - t0) / 1000).toFixed(0)} s, rss ${(mem().rss / 2 ** 20).toFixed(0)} MiB`);
}
const buildS = (Date.now() - t0) / 1000;
await collect();
const m1 = mem();
const perCard = {
  imageBytes: farm.bytes() / N,
  heapAndBuffers: (m1.heapUsed + m1.arrayBuffers - m0.heapUsed - m0.arrayBuffers) / N,
  rss: (m1.rss - m0.rss) / N,
};
progress(`built ${N} cards in ${buildS.toFixed(0)} s; per card ${JSON.stringify(perCard)}`);

// A tap as a gate makes it on a card the farm keeps dormant: the card powered up from its image, SELECT, VERIFY,
// WRITE USAGE (a fresh session and terminal each time, so no tap profits from the last one's), the image kept.
const inside = new Uint8Array(N);
async function tap(i: number): Promise<void> {
  const card = IN_PLACE ? farm.openInPlace(i) : farm.open(i);
  const gate = w.checkingTerminal(new CardSession(new EmulatorTransport(card)), { station: STATION, mode: 'sym' });
  const r = await gate.passGate(inside[i] ? 'exit' : 'entry');
  if (!r.decision.pass) throw new Error(`farm tap refused on card ${i}: ${r.decision.message}`);
  inside[i] ^= 1;
  farm.save(i, card);
}
// Cards in a random order (a fixed LCG: reproducible), so taps land all over the farm's memory.
let x = 12345;
const randomCard = () => {
  x = (Math.imul(x, 1103515245) + 12345) >>> 0;
  return x % N;
};
async function timed(pick: () => number): Promise<{ wallS: number; cpuS: number }> {
  const c0 = process.cpuUsage();
  const h0 = process.hrtime.bigint();
  for (let k = 0; k < TAPS; k++) await tap(pick());
  const c = process.cpuUsage(c0);
  return { wallS: Number(process.hrtime.bigint() - h0) / 1e9, cpuS: (c.user + c.system) / 1e6 };
}
// "One card": the same card tap after tap, moving to the next card every 400 taps (a pass has 255 entries).
let taps1 = 0;
const oneCard = () => Math.floor(taps1++ / 400) % N;
for (let k = 0; k < 200; k++) await tap(k % 2 === 0 ? oneCard() : randomCard()); // warm up
const one = { wallS: 0, cpuS: 0 };
const many = { wallS: 0, cpuS: 0 };
for (let r = 0; r < ROUNDS; r++) {
  const a = await timed(oneCard);
  const b = await timed(randomCard);
  one.wallS += a.wallS;
  one.cpuS += a.cpuS;
  many.wallS += b.wallS;
  many.cpuS += b.cpuS;
}
const n = ROUNDS * TAPS;
const result = {
  cards: N,
  inPlace: IN_PLACE,
  buildSeconds: buildS,
  perCard,
  taps: n,
  oneCard: { tapsPerS: n / one.wallS, tapsPerCpuS: n / one.cpuS },
  acrossCards: { tapsPerS: n / many.wallS, tapsPerCpuS: n / many.cpuS },
  ratioCpu: one.cpuS / many.cpuS,
  ratioWall: one.wallS / many.wallS,
  rssMiB: mem().rss / 2 ** 20,
  loadAverage: loadavg(),
};
process.stdout.write(JSON.stringify(result) + '\n');
