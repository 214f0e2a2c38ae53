import { describe, expect, it } from 'vitest';
import { nodesPartition, partitionOf } from '#core/partition.ts';

describe('partitions', () => {
  // Regression: with FNV-1a alone, keys of one changes partition reached only the node
  // groups congruent to it (mod 4), so each transform record fanned out to a quarter of them.
  it('a changes partition spreads its nodes over every node group', () => {
    const groups = new Map<number, Set<number>>();
    for (let id = 100_000_000; id < 100_004_000; id++) {
      const p = partitionOf('public.orders', `{"id":"${id}"}`, 4);
      let set = groups.get(p);
      if (!set) groups.set(p, (set = new Set()));
      set.add(nodesPartition(`orders:${id}`, 4));
    }
    expect(groups.size).toBe(4);
    for (const set of groups.values()) expect(set.size).toBe(4);
  });

  it('spreads keys evenly', () => {
    const counts = new Array(16).fill(0);
    for (let id = 1; id <= 16_000; id++) counts[partitionOf('public.t', `{"id":${id}}`, 16)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });
});
