import { describe, expect, it } from 'vitest';
import { partitionOf } from '#core/partition.ts';

describe('partitions', () => {
  // Regression: with FNV-1a alone, sequential keys fell into a few partitions (their low bits
  // depended on the low bits of the input only); mixed, they spread over every partition.
  it('sequential keys of a wide range reach every partition of a power of two', () => {
    const seen = new Set<number>();
    for (let id = 100_000_000; id < 100_000_064; id++) seen.add(partitionOf('public.orders', `{"id":"${id}"}`, 16));
    expect(seen.size).toBe(16);
  });

  it('spreads keys evenly', () => {
    const counts = new Array(16).fill(0);
    for (let id = 1; id <= 16_000; id++) counts[partitionOf('public.t', `{"id":${id}}`, 16)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });
});
