// LOAD cost against how full the card is (issue 13): N sealed tickets LOADed one by one onto one emulated card
// on an image file; prints wall and CPU ms per LOAD. `npx tsx bench/card-fill.ts 1000` vs `... 100`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TicketServer } from '../sdk/roles/ticket-server.js';
import { World } from '../testing/world.js';
const N = Number(process.argv[2] ?? 1000);
const world = World.create('rsa');
const dir = mkdtempSync(join(tmpdir(), 'eticket-card-fill-'));
const path = join(dir, 'c.img');
const c = await world.newCard({ backend: path, capacity: N * 700 + 65536 });
const server = new TicketServer(world.operator);
const sealed: Uint8Array[] = [];
for (let i = 0; i < N; i++) {
  const face = server.createTicket({ serviceDate: '2030-01-15', train: `G${i % 40}`, origin: 'BJS', destination: 'SHH', departure: 420, seat: `${i}A`, passenger: `PASSENGER ${i}` });
  sealed.push(world.authority.seal(world.authority.sign(face, c.credentials), c.credentials));
}
const t0 = performance.now();
const cpu0 = process.cpuUsage();
for (let i = 0; i < N; i++) await c.issuing.load(sealed[i]);
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({ N, msPerLoad: (performance.now() - t0) / N, cpuMsPerLoad: (cpu.user + cpu.system) / 1000 / N }));
rmSync(dir, { recursive: true, force: true });
