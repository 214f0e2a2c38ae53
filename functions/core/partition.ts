/**
 * Node → partition. A node always maps to the same FIFO message group, so its changes stay
 * in commit order; many nodes share a group, so one SQS message carries many changes.
 * FNV-1a (32 bit) over UTF-16 code units: tiny, fast, and identical in every process.
 */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * `tableRef` is `schema.table`, `keyJson` the key object as serialized in the event.
 * Both sides of the pipeline call this, so the rule lives in one place.
 */
export function partitionOf(tableRef: string, keyJson: string, partitions: number): number {
  return fnv1a(`${tableRef}\u0000${keyJson}`) % partitions;
}

export function messageGroupId(partition: number): string {
  return `p${partition}`;
}
