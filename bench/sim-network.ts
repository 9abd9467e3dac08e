// The simulated metro network: lines of stations crossing at interchanges, running times between neighbours, and
// a fare table by station pair that grows with the fastest journey; plus the seeded random numbers every part of
// a simulation draws from, so a run is reproducible from its seed.

import { createHash } from 'node:crypto';
import type { NetworkInput } from '../backoffice/trips.js';

/** Small, fast, seedable PRNG (mulberry32): the simulation's only source of randomness. */
export function prng(seed: string): () => number {
  return mulberry32(createHash('sha256').update(seed).digest().readUInt32BE(0));
}

/** mulberry32 from a 32-bit seed: numbers in [0, 1), the same sequence for the same seed (a trial replays by it). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SimNetwork {
  stations: string[];
  links: { from: string; to: string; seconds: number }[];
  /** Fastest journey between two stations, seconds (0 for the same station). */
  travel: (from: string, to: string) => number;
  /** The fare table as `eticket fares load` takes it. */
  input: NetworkInput;
  fare: (from: string, to: string) => number;
}

/**
 * `stations` stations on `lines` lines (each a chain); line k crosses line k+1 at a shared station, so the
 * network is connected. Running times 90-240 s per link. Fare: 200 + 100 per started 10 minutes, capped at 900.
 */
export function metroNetwork(stations: number, lines = 3, seed = 'network'): SimNetwork {
  if (stations < 4 || lines < 1 || lines > stations / 2) throw new RangeError('a network needs at least 4 stations and 2 per line');
  const rnd = prng(seed);
  const names = Array.from({ length: stations }, (_, i) => `S${String(i + 1).padStart(3, '0')}`);
  const per = Math.ceil(stations / lines);
  const chains: string[][] = [];
  for (let l = 0; l < lines; l++) chains.push(names.slice(l * per, (l + 1) * per));
  const links: SimNetwork['links'] = [];
  for (const chain of chains) for (let i = 1; i < chain.length; i++) links.push({ from: chain[i - 1], to: chain[i], seconds: 90 + Math.floor(rnd() * 150) });
  // Interchanges: the middle of each line meets the middle of the next one.
  for (let l = 0; l + 1 < chains.length; l++) links.push({ from: chains[l][chains[l].length >> 1], to: chains[l + 1][chains[l + 1].length >> 1], seconds: 120 });
  const idx = new Map(names.map((n, i) => [n, i]));
  const n = names.length;
  const d = Array.from({ length: n }, (_, i) => Float64Array.from({ length: n }, (_, j) => (i === j ? 0 : Infinity)));
  for (const l of links) {
    const a = idx.get(l.from)!;
    const b = idx.get(l.to)!;
    d[a][b] = d[b][a] = Math.min(d[a][b], l.seconds);
  }
  for (let k = 0; k < n; k++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (d[i][k] + d[k][j] < d[i][j]) d[i][j] = d[i][k] + d[k][j];
  const travel = (a: string, b: string) => d[idx.get(a)!][idx.get(b)!];
  const fare = (a: string, b: string) => (a === b ? 200 : Math.min(900, 200 + 100 * Math.ceil(travel(a, b) / 600)));
  const fares: NetworkInput['fares'] = [];
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) fares.push({ from: names[i], to: names[j], fare: fare(names[i], names[j]) });
  return { stations: names, links, travel, fare, input: { basis: 'station', currency: 'CNY', fares, links, maxFare: 900, source: `simulated network of ${stations} stations` } };
}
