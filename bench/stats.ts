// The one percentile rule of every benchmark, and the loop that times a call: all figures in bench/ and
// docs/performance.md are nearest-rank percentiles of per-call wall times.

export interface Latency {
  medianMs: number;
  p99Ms: number;
}

/**
 * Nearest-rank percentile: the smallest sample such that at least a fraction `q` of the samples are at or
 * below it (index ceil(q·n) − 1 of the sorted samples). The median of 4 samples is the 2nd, p99 of 200 the 198th.
 */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError('no samples');
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function latency(samples: readonly number[]): Latency {
  const sorted = [...samples].sort((a, b) => a - b);
  return { medianMs: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
}

/** Wall time of `n` calls of `fn`, in milliseconds each (awaited one after the other). */
export async function timeCalls(n: number, fn: () => unknown): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return samples;
}

/**
 * Wall time and this process's CPU time (user + system, all its threads: GC helpers included) of one call, in
 * milliseconds. On a machine shared with other work, wall time also counts the time the process waited for a core,
 * which grows faster than linearly with the length of a call; CPU time counts only the work.
 */
export async function timeOneWithCpu(fn: () => unknown): Promise<{ wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  await fn();
  const wall = Number(process.hrtime.bigint() - start) / 1e6;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

/** timeOneWithCpu of `n` calls, awaited one after the other. */
export async function timeCallsWithCpu(n: number, fn: () => unknown): Promise<{ wall: number[]; cpu: number[] }> {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = await timeOneWithCpu(fn);
    wall.push(t.wall);
    cpu.push(t.cpu);
  }
  return { wall, cpu };
}
