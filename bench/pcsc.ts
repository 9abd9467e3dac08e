// APDU round-trip cost through the whole PC/SC stack (pcsclite → pcscd → vpcd → bridge in a child process)
// versus calling the same Icc in process; the harness in bench/ decides when to run it and how to print it.

import { pathToFileURL } from 'node:url';
import type { Icc } from '../card/icc.ts';
import { startVpcdChild, type IccFactorySpec } from '../card/vpcd-child.ts';
import { PcscTransport, waitForCard } from '../host/transport/pcsc.ts';

export interface LatencyStats {
  medianMs: number;
  p99Ms: number;
}

export interface PcscBenchOptions {
  /** vpcd port the card is put on; its reader must be empty. Default 35963 ("Virtual PCD 00 00"). */
  port?: number;
  /** Reader to connect to; default derived from the port. */
  reader?: string;
  /** Hex command APDU; default a SELECT of an absent AID (6A82 on any ISO 7816-4 card: cheap, no state). */
  apdu?: string;
  /** Untimed round trips first (JIT, pcscd's caches). Default 50. */
  warmup?: number;
}

function stats(samples: number[]): LatencyStats {
  const sorted = samples.slice().sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { medianMs: at(0.5), p99Ms: at(0.99) };
}

async function timeLoop(n: number, once: () => unknown): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    await once();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return samples;
}

/**
 * One short APDU, `iterations` times, in process and over PC/SC. Needs pcscd running with vpcd; the
 * sub-millisecond figure needs pcscd started with the TCP_NODELAY preload (tools/pcscd-start.sh), else
 * Nagle on vpcd's two writes costs ~44 ms per APDU.
 */
export async function benchPcscRoundTrip(
  spec: IccFactorySpec,
  iterations: number,
  options: PcscBenchOptions = {},
): Promise<{ inProcess: LatencyStats; pcsc: LatencyStats }> {
  const command = Uint8Array.from(Buffer.from(options.apdu ?? '00A4040005A000000000', 'hex'));
  const warmup = options.warmup ?? 50;
  const port = options.port ?? 35963;
  const reader = options.reader ?? `Virtual PCD 00 ${String(port - 35963).padStart(2, '0')}`;

  const moduleUrl = spec.module instanceof URL ? spec.module.href : spec.module.startsWith('file:') ? spec.module : pathToFileURL(spec.module).href;
  const mod = (await import(moduleUrl)) as Record<string, (...args: unknown[]) => Icc | Promise<Icc>>;
  const icc = await mod[spec.export]!(...(spec.args ?? []));
  icc.powerOn();
  for (let i = 0; i < warmup; i++) icc.transmit(command);
  const inProcess = stats(await timeLoop(iterations, () => icc.transmit(command)));

  const card = await startVpcdChild(spec, { port });
  const transport = new PcscTransport({ reader });
  try {
    await waitForCard(reader, { timeoutMs: 10_000 });
    await transport.connect();
    for (let i = 0; i < warmup; i++) await transport.transmit(command);
    const pcsc = stats(await timeLoop(iterations, () => transport.transmit(command)));
    return { inProcess, pcsc };
  } finally {
    await transport.disconnect().catch(() => undefined);
    await card.stop();
  }
}
