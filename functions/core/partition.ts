/**
 * Node → partition. A node always maps to the same FIFO message group, so its changes stay
 * in commit order; many nodes share a group, so one SQS message carries many changes.
 * FNV-1a (32 bit) over UTF-16 code units: tiny, fast, and identical in every process.
 */
export const FNV_OFFSET = 0x811c9dc5;

/** FNV-1a of `text`, continuing from `h` (FNV_OFFSET to start). */
export function fnv1a(text: string, h = FNV_OFFSET): number {
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
  return fnv1a(keyJson, tablePrefixHash(tableRef)) % partitions;
}

/** The hash state after `schema.table` and the separator: computed once per table. */
export function tablePrefixHash(tableRef: string): number {
  return fnv1a(`${tableRef}\u0000`);
}

export function messageGroupId(partition: number): string {
  return `p${partition}`;
}
