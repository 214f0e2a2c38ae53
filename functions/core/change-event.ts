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

export const changeOp = z.enum(['insert', 'update', 'delete', 'truncate', 'snapshot']);
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
