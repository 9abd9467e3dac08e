// Benchmark of the raw SM9 operations (median and p99 wall time per call, warm caches), for
// `npm run bench`; keys are fixed so per-key precomputation is paid once, outside the timings.

import {
  decapsulate, decrypt, encapsulate, encrypt, extractEncPrivateKey, extractSignPrivateKey,
  generateEncMasterKey, generateSignMasterKey, pairing, sign, verify,
} from '../sdk/crypto/sm9/index.js';
import { g1FromBytes, g2FromBytes } from '../sdk/crypto/sm9/curves.js';
import { pair, prepareG2 } from '../sdk/crypto/sm9/pairing.js';
import { latency, type Latency } from './stats.js';

function measure(iterations: number, fn: () => unknown): Latency {
  fn(); // warm caches and JIT
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return latency(times);
}

export async function benchSm9(iterations: number): Promise<Record<string, Latency>> {
  const n = Math.max(1, Math.floor(iterations));
  const id = new TextEncoder().encode('gate-0042@metro.example');
  const msg = new TextEncoder().encode('ticket 0001 valid 2025-01-01..2025-12-31 zone A');
  const sm = generateSignMasterKey();
  const ds = extractSignPrivateKey(sm.privateKey, id);
  const em = generateEncMasterKey();
  const de = extractEncPrivateKey(em.privateKey, id);
  const sig = sign(ds, sm.publicKey, msg);
  const ct = encrypt(em.publicKey, id, msg);
  const { encapsulation } = encapsulate(em.publicKey, id, 32);
  const P1 = ds; // any G1 point
  const Q = sm.publicKey; // any G2 point
  const out: Record<string, Latency> = {};
  out.sign = measure(n, () => sign(ds, sm.publicKey, msg));
  out.verify = measure(n, () => {
    if (!verify(sm.publicKey, id, msg, sig)) throw new Error('bench: verify failed');
  });
  let k = 0;
  const fresh = Array.from({ length: n + 1 }, (_, i) => new TextEncoder().encode(`signer-${i}`));
  const freshSigs = fresh.map((fid) => sign(extractSignPrivateKey(sm.privateKey, fid), sm.publicKey, msg));
  // Each call a new signer identity: no cached line table for [H1(ID‖hid)]P2 + Ppub-s.
  out.verifyNewIdentity = measure(n, () => {
    const i = k++ % fresh.length;
    if (!verify(sm.publicKey, fresh[i]!, msg, freshSigs[i]!)) throw new Error('bench: verify failed');
  });
  out.encrypt = measure(n, () => encrypt(em.publicKey, id, msg));
  out.decrypt = measure(n, () => decrypt(de, id, ct));
  out.encapsulate = measure(n, () => encapsulate(em.publicKey, id, 32));
  out.decapsulate = measure(n, () => decapsulate(de, id, encapsulation, 32));
  // pairing() from bytes includes the on-curve and G2 subgroup checks (ψ(Q) = [6t²]Q, ≈ 3 ms).
  out.pairing = measure(n, () => pairing(P1, Q));
  const p1 = g1FromBytes(P1);
  const q2 = g2FromBytes(Q);
  out.pairingUnchecked = measure(n, () => pair(p1, prepareG2(q2)));
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 50);
  benchSm9(n).then((r) => {
    for (const [k, v] of Object.entries(r)) console.log(`${k.padEnd(12)} median ${v.medianMs.toFixed(2)} ms  p99 ${v.p99Ms.toFixed(2)} ms`);
  });
}
