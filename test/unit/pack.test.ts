import { describe, expect, it } from 'vitest';
import { packInOrder } from '#core/pack.ts';

describe('packInOrder', () => {
  it('starts a new group at the item limit or when the next item would pass the byte budget, keeping order', () => {
    const sizes = [4, 4, 4, 1, 9, 2, 2, 2, 2];
    const groups = packInOrder(sizes, { maxItems: 3, maxBytes: 10 }, (n) => n);
    expect(groups).toEqual([[4, 4], [4, 1], [9], [2, 2, 2], [2]]);
    expect(groups.flat()).toEqual(sizes);
  });

  it('counts a fixed envelope in every group, and gives an oversized item a group of its own', () => {
    expect(packInOrder([3, 3, 3, 20, 1], { maxBytes: 10, baseBytes: 4 }, (n) => n)).toEqual([[3, 3], [3], [20], [1]]);
    expect(packInOrder([], { maxBytes: 10 }, (n: number) => n)).toEqual([]);
  });
});
