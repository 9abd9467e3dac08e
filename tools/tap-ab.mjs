#!/usr/bin/env node
// Two builds of the emulator tap in one process: `node tools/tap-ab.mjs MODE SUITE ROUNDS TAPS DIST_A DIST_B ...`
// (e.g. `node tools/tap-ab.mjs sym rsa 20 250 ../main/dist dist`). Each side has its own world, card and gate, warmed
// by WARM taps (300); batches of TAPS taps alternate between the sides for ROUNDS rounds (the order swapped every
// round), so both see the same machine. Prints each side's median tap, wall and CPU. What the bench cannot separate on
// a noisy machine (its ratio moves by ±0.2 from run to run) this can: docs/performance.md, fifth pass.
const [mode = 'sym', suite = 'rsa', R = '20', K = '200', ...roots] = process.argv.slice(2);
const sides = [];
for (const root of roots) {
  const { World } = await import(`${root}/testing/world.js`);
  const { GateRig } = await import(`${root}/bench/gate-rig.js`);
  const { EmulatorTransport } = await import(`${root}/host/transport/emulator.js`);
  const w = World.create(suite);
  const c = await w.newCard({ capacity: 64 * 1024 });
  const rig = new GateRig(w, new EmulatorTransport(c.card), { mode });
  for (let i = 0; i < +(process.env.WARM ?? 300); i++) { await rig.prepare(); await rig.pass(); }
  sides.push({ root, rig, t: [], c: [] });
}
const now = () => Number(process.hrtime.bigint()) / 1e3;
for (let r = 0; r < +R; r++) {
  for (const s of (r % 2 ? [...sides].reverse() : sides)) {
    for (let i = 0; i < +K; i++) {
      await s.rig.prepare();
      const c0 = process.cpuUsage(); const t0 = now();
      await s.rig.pass();
      const t = now() - t0; const c = process.cpuUsage(c0);
      s.t.push(t); s.c.push(c.user + c.system);
    }
  }
}
const med = (a) => { const x = [...a].sort((p, q) => p - q); return x[x.length >> 1]; };
const q = (a, f) => { const x = [...a].sort((p, q) => p - q); return x[Math.floor(x.length * f)]; };
for (const s of sides) console.log(`${mode}/${suite} ${s.root.padEnd(26)} wall median ${med(s.t).toFixed(1)} µs (p25 ${q(s.t, 0.25).toFixed(1)}), cpu median ${med(s.c).toFixed(1)} µs  n=${s.t.length}`);
