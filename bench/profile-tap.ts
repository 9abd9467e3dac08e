// A gate tap in a loop, nothing else, for `node --cpu-prof dist/bench/profile-tap.js [pki|sym] [rsa|sm9] [taps]`:
// the profile of the hot path that bench/run.ts times (the same rig, the in-process emulator).

import type { GateMode } from '../host/checking.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import type { SuiteName } from '../sdk/spec.js';
import { World } from '../testing/world.js';
import { GateRig } from './gate-rig.js';

const mode = (process.argv[2] ?? 'sym') as GateMode;
const suite = (process.argv[3] ?? 'rsa') as SuiteName;
const n = Number(process.argv[4] ?? 6000);

const w = World.create(suite);
const c = await w.newCard({ capacity: 64 * 1024 });
const rig = new GateRig(w, new EmulatorTransport(c.card), { mode });
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) {
  await rig.prepare();
  await rig.pass();
}
const wall = Number(process.hrtime.bigint() - t0) / 1e6;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`${mode}/${suite}: ${n} taps, ${(wall / n).toFixed(3)} ms wall, ${((cpu.user + cpu.system) / 1000 / n).toFixed(3)} ms CPU a tap (refills included)\n`);
