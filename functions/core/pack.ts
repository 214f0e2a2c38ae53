/**
 * Greedy packing in input order, as every AWS batch call needs it: a new group starts when
 * the next item would exceed the item count or the byte budget. An item larger than the
 * budget on its own still gets a group (the caller decides what to do with it).
 */
export function packInOrder<T>(
  items: Iterable<T>,
  limits: { maxBytes: number; maxItems?: number; baseBytes?: number },
  sizeOf: (item: T) => number,
): T[][] {
  const { maxBytes, maxItems = Infinity, baseBytes = 0 } = limits;
  const groups: T[][] = [];
  let current: T[] = [];
  let bytes = baseBytes;
  for (const item of items) {
    const size = sizeOf(item);
    if (current.length === maxItems || (current.length > 0 && bytes + size > maxBytes)) {
      groups.push(current);
      current = [];
      bytes = baseBytes;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
