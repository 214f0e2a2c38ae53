/**
 * The contracts, defined once: ChangeEvent (what the streamer puts on the changes queue)
 * and GraphNodeEvent (what the transform delivers). Types are inferred from the zod schemas so the
 * JSON Schema we publish and the TypeScript users compile against cannot drift.
 */
import { z } from 'zod';

export const jsonValue = z.json();
export type JsonValue = z.infer<typeof jsonValue>;

/** Column name → lossless JSON value (see values/registry.ts and the README's type table). */
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

export const changeOp = z.enum(['insert', 'update', 'delete', 'truncate', 'gap', 'snapshot', 'bootstrap.started', 'bootstrap.completed', 'message']);
export type ChangeOp = z.infer<typeof changeOp>;

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

/**
 * A logical decoding message an application wrote with `pg_logical_emit_message(transactional,
 * prefix, content)`, delivered when its prefix is configured (`messages.prefixes`).
 */
export const logicalMessage = z.object({
  prefix: z.string(),
  /** The content: its UTF-8 text when it is valid UTF-8, else base64 (see `encoding`). */
  content: z.string(),
  encoding: z.enum(['utf8', 'base64']),
  /**
   * Written inside a transaction that committed (at that transaction's position), or
   * non-transactional: delivered whether or not its transaction committed, at its own position.
   */
  transactional: z.boolean(),
});
export type LogicalMessage = z.infer<typeof logicalMessage>;

/**
 * A bootstrap: one load of a table's existing rows, read in key-ordered chunks while the
 * stream goes on, each chunk reconciled against the stream (see the README, Bootstrap).
 */
export const bootstrapLoad = z.object({
  /** Names the load; every snapshot row and every change of the table during it carries it as `load`. */
  id: z.string(),
  /** `initial` (never loaded), `gap` (re-read to repair lost changes), `operator` (pgrelay bootstrap). */
  reason: z.enum(['initial', 'gap', 'operator']),
  /** For `gap`: changes after `afterLsn` and before `untilLsn` were lost; the load repairs them. */
  gap: z.object({ afterLsn: z.string().nullable(), untilLsn: z.string().nullable() }).optional(),
  /**
   * On completion: `complete` (every row was read: nodes of the table not seen during the load no
   * longer exist), `cancelled` or `failed` (the load stopped early: sweep nothing).
   */
  outcome: z.enum(['complete', 'cancelled', 'failed']).optional(),
  /** On completion: rows read. */
  rows: z.number().int().nonnegative().optional(),
});
export type BootstrapLoad = z.infer<typeof bootstrapLoad>;

const rowChangeEvent = z.object({
  v: z.literal(1),
  op: changeOp.extract(['insert', 'update', 'delete', 'truncate', 'gap']),
  schema: z.string(),
  table: z.string(),
  /** Key columns → values (tableKeys, replica identity index or primary key); null for truncate and gap. */
  key: row.nullable(),
  /**
   * On the insert half of a key change: the key before it. An UPDATE that changes a row's key
   * arrives as two changes, a delete of the old key (in the old key's message group) and an
   * insert of the new one (in the new key's group), at consecutive positions.
   */
  oldKey: row.optional(),
  /** On the delete half of a key change: the key the row has from now on. */
  newKey: row.optional(),
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
  /** The bootstrap load of this table under way when the change was streamed (its id). */
  load: z.string().optional(),
  position,
  tx: transaction,
});

/** A row read by a bootstrap: an upsert of the row as it was in the chunk's snapshot. */
const snapshotChangeEvent = z.object({
  v: z.literal(1),
  op: z.literal('snapshot'),
  schema: z.string(),
  table: z.string(),
  key: row,
  after: row,
  before: z.null(),
  jsonNulls: z.object({ after: z.array(z.string()).optional() }).optional(),
  /** The load that read it. */
  load: z.string(),
  /** `commitLsn` is the LSN of the chunk's marker in the WAL, `seq` the row's index in the chunk. */
  position,
  /** No transaction wrote it: always null. */
  tx: z.null(),
});

/**
 * The start and the end of a table's load, sent to every partition (like a truncate) at the
 * position of its marker in the WAL, so each is ordered against every row of the table.
 */
const bootstrapMarkerEvent = z.object({
  v: z.literal(1),
  op: changeOp.extract(['bootstrap.started', 'bootstrap.completed']),
  schema: z.string(),
  table: z.string(),
  key: z.null(),
  after: z.null(),
  before: z.null(),
  bootstrap: bootstrapLoad,
  position,
  tx: z.null(),
});

const messageChangeEvent = z.object({
  v: z.literal(1),
  op: z.literal('message'),
  message: logicalMessage,
  /** A transactional message: its transaction's commit LSN and its index in it. Otherwise the message's own LSN, seq 0. */
  position,
  /** The transaction of a transactional message; null for a non-transactional one. */
  tx: transaction.nullable(),
});

/** One change: a row change (or truncate, gap) of a table, a bootstrap read or marker, or a logical message. */
export const changeEvent = z.discriminatedUnion('op', [rowChangeEvent, snapshotChangeEvent, bootstrapMarkerEvent, messageChangeEvent]);
export type ChangeEvent = z.infer<typeof changeEvent>;
/** A change the stream carried from a transaction: insert, update, delete, truncate, gap. */
export type RowChangeEvent = z.infer<typeof rowChangeEvent>;
export type SnapshotChangeEvent = z.infer<typeof snapshotChangeEvent>;
export type BootstrapMarkerEvent = z.infer<typeof bootstrapMarkerEvent>;
export type MessageChangeEvent = z.infer<typeof messageChangeEvent>;

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

export const graphEventType = z.enum([
  'node.inserted',
  'node.updated',
  'node.deleted',
  'label.truncated',
  'label.gap',
  'label.snapshot.started',
  'label.snapshot.completed',
  'message.emitted',
]);
export type GraphEventType = z.infer<typeof graphEventType>;

export const graphNode = z.object({
  /** `{label}:{key}`, composite keys joined with ':' in key order (see node-id.ts). Null for label.truncated and label.gap. */
  id: z.string().nullable(),
  /** The table name; schema-qualified (`sales.orders`) only where two published tables share a name. */
  label: z.string(),
  /** The row's columns (lossless values). Empty for label.truncated and label.gap. */
  properties: row,
});

/** The nodes-queue message group a copy of a label-wide event was sent to: `n{index}` of `count`. */
/** A nodes-queue message group's index: group `n{index}` carries the events of changes partition `index`. */
export const nodesGroup = z.number().int().nonnegative();

const nodeEvent = z.object({
  v: z.literal(1),
  type: graphEventType.exclude(['message.emitted']),
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
  /** The bootstrap load of this label under way (snapshot rows, and live changes during it): see `bootstrap`. */
  load: z.string().optional(),
  /** On label.snapshot.started / label.snapshot.completed: the load, its reason, and at completion its outcome. */
  bootstrap: bootstrapLoad.optional(),
  /**
   * On the nodes queue: the message group the event travels in (`n{group}`). Label-wide events
   * (label.*) come once per group, each copy speaking for the nodes of its group; nodeHandler
   * sets it on every event it hands over. Absent on EventBridge, which gets one copy, unordered.
   */
  group: nodesGroup.optional(),
  truncate: z.object({ cascade: z.boolean(), restartIdentity: z.boolean() }).optional(),
  /** On label.gap: changes of every node of this label in a WAL range were lost (see `gap`). */
  gap: gap.optional(),
  /**
   * An UPDATE changed the row's key: its node `oldId` ends (node.deleted, ordered with oldId's
   * events) and node `newId` begins (node.inserted, ordered with newId's events).
   */
  keyChange: z.object({ oldId: z.string(), newId: z.string() }).optional(),
  position,
  /** Null for a bootstrap read (snapshot: true) and for label.snapshot.* : no transaction wrote them. */
  tx: transaction.nullable(),
});

const messageEvent = z.object({
  v: z.literal(1),
  type: z.literal('message.emitted'),
  source: z.string(),
  message: logicalMessage,
  position,
  /** Null for a non-transactional message. */
  tx: transaction.nullable(),
});

/** What subscribers receive: a node event, or (type message.emitted) a logical message. */
export const graphNodeEvent = z.discriminatedUnion('type', [nodeEvent, messageEvent]);
export type GraphNodeEvent = z.infer<typeof graphNodeEvent>;
export type NodeEvent = z.infer<typeof nodeEvent>;
export type MessageEvent = z.infer<typeof messageEvent>;

/** The label an event concerns; null for a logical message, which has none (label filters let it through). */
export function labelOf(event: GraphNodeEvent | GraphNodeEventRef): string | null {
  return event.type === 'message.emitted' ? null : event.node.label;
}

/**
 * An event whose full form is in S3 (too large for its channel). It keeps the fields
 * subscribers route and filter on; `nodeHandler` fetches the rest.
 */
export const graphNodeEventRef = z.discriminatedUnion('type', [
  z.object({
    v: z.literal(1),
    type: nodeEvent.shape.type,
    source: z.string(),
    node: z.object({ id: z.string().nullable(), label: z.string() }),
    /** As on the event: the copy's group, for a label-wide event on the nodes queue. */
    group: nodesGroup.optional(),
    position,
    tx: transaction.nullable(),
    payloadRef,
  }),
  z.object({
    v: z.literal(1),
    type: z.literal('message.emitted'),
    source: z.string(),
    message: logicalMessage.pick({ prefix: true, transactional: true }),
    position,
    tx: transaction.nullable(),
    payloadRef,
  }),
]);
export type GraphNodeEventRef = z.infer<typeof graphNodeEventRef>;
