/**
 * The contracts, defined once: ChangeEvent (what the streamer puts on the changes queue)
 * and, in a later issue, GraphNodeEvent. Types are inferred from the zod schemas so the
 * JSON Schema we publish and the TypeScript users compile against cannot drift.
 */
import { z } from 'zod';

export const jsonValue = z.json();
export type JsonValue = z.infer<typeof jsonValue>;

/** Column name → lossless JSON value (see values.ts and the README's type table). */
export const row = z.record(z.string(), jsonValue);
export type Row = z.infer<typeof row>;

export const position = z.object({
  /** LSN of the transaction's commit record, PostgreSQL's text form ("16/B374D848"). */
  commitLsn: z.string(),
  /** Index of the change within its transaction, from 0. */
  seq: z.number().int().nonnegative(),
});

export const transaction = z.object({
  xid: z.number().int().nonnegative(),
  commitLsn: z.string(),
  /** Commit time, ISO-8601 UTC with six fractional digits. */
  commitTime: z.string(),
});

export const changeOp = z.enum(['insert', 'update', 'delete', 'truncate', 'snapshot', 'gap']);

/**
 * Changes of a table that were never streamed and never will be: the slot was invalidated or
 * dropped (and recreated), or the table had been taken out of the publication. Said in the
 * stream, at the point where streaming resumed, so no consumer mistakes silence for no change.
 */
export const gap = z.object({
  reason: z.enum(['slot-invalidated', 'slot-dropped', 'table-unpublished']),
  /** The last position acknowledged before the loss (changes after it may be missing); null when unknown. */
  afterLsn: z.string().nullable(),
  /** Where streaming resumed (changes before it may be missing); null when unknown. */
  untilLsn: z.string().nullable(),
  /** `bootstrap-requested`: the table is to be read again, as snapshot events, to repair the gap. */
  repair: z.enum(['bootstrap-requested', 'none']),
});
export type Gap = z.infer<typeof gap>;
export type ChangeOp = z.infer<typeof changeOp>;

export const changeEvent = z.object({
  v: z.literal(1),
  op: changeOp,
  schema: z.string(),
  table: z.string(),
  /** Key columns → values (primary key, replica identity index or `tableKeys`); null for truncate. */
  key: row.nullable(),
  /** The key before an update that changed it. */
  oldKey: row.optional(),
  /** The new row (insert, update, snapshot); null for delete and truncate. */
  after: row.nullable(),
  /** The complete old row, only when REPLICA IDENTITY FULL provides it; otherwise null. */
  before: row.nullable(),
  /**
   * Columns of `after` that PostgreSQL did not send because their TOASTed value did not
   * change and no old row provided it. They are absent from `after`, never null.
   */
  unchanged: z.array(z.string()).optional(),
  /** json/jsonb columns holding the JSON literal `null` (as opposed to SQL NULL). */
  jsonNulls: z
    .object({ after: z.array(z.string()).optional(), before: z.array(z.string()).optional() })
    .optional(),
  truncate: z.object({ cascade: z.boolean(), restartIdentity: z.boolean() }).optional(),
  /** For op `gap`: which changes of this table were lost (key, after and before are null). */
  gap: gap.optional(),
  position,
  tx: transaction,
});
export type ChangeEvent = z.infer<typeof changeEvent>;

/** The body of one message on the changes queue: many changes of one partition, in order. */
export const changeBatch = z.object({
  v: z.literal(1),
  partition: z.number().int().nonnegative(),
  changes: z.array(changeEvent),
});
export type ChangeBatch = z.infer<typeof changeBatch>;

/**
 * Claim check: where a payload too large for its channel (SQS 1 MiB, EventBridge 256 KB) was
 * stored. The message carries this instead, and readers fetch the object transparently.
 * The key is derived from the content's positions, so a retried upload overwrites itself.
 */
export const payloadRef = z.object({
  bucket: z.string(),
  key: z.string(),
  /** Size of the stored payload in bytes. */
  bytes: z.number().int().nonnegative(),
  /** Hex SHA-256 of the stored payload; readers check it. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type PayloadRef = z.infer<typeof payloadRef>;

/** A changes-queue message whose batch body is in S3. */
export const changeBatchRef = z.object({
  v: z.literal(1),
  partition: z.number().int().nonnegative(),
  payloadRef,
});
export type ChangeBatchRef = z.infer<typeof changeBatchRef>;

// ---------------------------------------------------------------------------------------
// GraphNodeEvent: what subscribers receive (EventBridge detail, nodes-queue message body).

export const graphEventType = z.enum(['node.inserted', 'node.updated', 'node.deleted', 'label.truncated', 'label.gap']);
export type GraphEventType = z.infer<typeof graphEventType>;

export const graphNode = z.object({
  /** `{label}:{key}`, composite keys joined with ':' in key order (see node-id.ts). Null for label.truncated and label.gap. */
  id: z.string().nullable(),
  /** The table name; schema-qualified (`sales.orders`) only where two published tables share a name. */
  label: z.string(),
  /** The row's columns (lossless values). Empty for label.truncated and label.gap. */
  properties: row,
});

export const graphNodeEvent = z.object({
  v: z.literal(1),
  type: graphEventType,
  /** The pgrelay source (database) this came from. */
  source: z.string(),
  node: graphNode,
  /** The node's properties before an update, when PostgreSQL sent the old row (REPLICA IDENTITY FULL). */
  previous: row.optional(),
  /** Properties whose value changed in an update; present only when `previous` is known. */
  changed: z.array(z.string()).optional(),
  /** TOASTed properties PostgreSQL did not resend because they did not change: absent from `properties`. */
  unchanged: z.array(z.string()).optional(),
  /** json/jsonb properties holding the JSON literal null (not SQL NULL). */
  jsonNulls: z.array(z.string()).optional(),
  /** Set on events from a bootstrap read of existing rows (type is node.updated: insert-or-update). */
  snapshot: z.literal(true).optional(),
  truncate: z.object({ cascade: z.boolean(), restartIdentity: z.boolean() }).optional(),
  /** On label.gap: changes of every node of this label in a WAL range were lost (see `gap`). */
  gap: gap.optional(),
  position,
  tx: transaction,
});
export type GraphNodeEvent = z.infer<typeof graphNodeEvent>;

/**
 * An event whose full form is in S3 (too large for its channel). It keeps the fields
 * subscribers route and filter on; `nodeHandler` fetches the rest.
 */
export const graphNodeEventRef = z.object({
  v: z.literal(1),
  type: graphEventType,
  source: z.string(),
  node: z.object({ id: z.string().nullable(), label: z.string() }),
  position,
  tx: transaction,
  payloadRef,
});
export type GraphNodeEventRef = z.infer<typeof graphNodeEventRef>;
