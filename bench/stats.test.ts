// The benchmarks' one percentile rule (nearest rank), on samples where each rank is known.

import { describe, expect, it } from 'vitest';
import { latency, percentile } from './stats.js';

describe('percentile (nearest rank)', () => {
  const ranks = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
  it.each([
    [1, 0.5, 1],
    [2, 0.5, 1],
    [4, 0.5, 2],
    [5, 0.5, 3],
    [100, 0.99, 99],
    [200, 0.99, 198],
    [200, 1, 200],
    [3, 0, 1],
  ])('of %i samples at q=%f is the sample of rank %i', (n, q, rank) => {
    expect(percentile(ranks(n), q)).toBe(rank);
  });

  it('latency sorts a copy and reports median and p99', () => {
    const samples = [5, 1, 4, 2, 3];
    expect(latency(samples)).toEqual({ medianMs: 3, p99Ms: 5 });
    expect(samples).toEqual([5, 1, 4, 2, 3]);
  });

  it('refuses to make a figure from no samples', () => {
    expect(() => percentile([], 0.5)).toThrow(RangeError);
  });
});
