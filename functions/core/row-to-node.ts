/**
 * ChangeEvent → GraphNodeEvent: a table is a label, a row is a node (see node-id.ts).
 *
 * Rules, per `op` (each change gives at most one event):
 * - insert   → `node.inserted`, properties = `after`.
 * - update   → `node.updated`, properties = `after`. When the old row is known (`before`,
 *              REPLICA IDENTITY FULL) it becomes `previous`, and `changed` lists the properties
 *              whose value differs (see `changedProperties`). Without `before`, neither is set:
 *              we cannot tell what changed, and guessing would be worse than saying nothing.
 * - delete   → `node.deleted`, properties = `before` when known, else the key columns.
 * - a key change arrives from the streamer as two changes, a delete carrying `newKey` (in the
 *              old key's partition) and an insert carrying `oldKey` (in the new key's), so each
 *              event is ordered with its own node's other events; both get `keyChange`.
 * - truncate → `label.truncated` with node {id: null, label, properties: {}} and the
 *              `truncate` flags, for each partition's copy (see below).
 * - gap      → `label.gap` the same way, with the `gap` (which changes were lost, and whether
 *              a re-read was requested).
 * - snapshot → `node.updated` with `snapshot: true` and `tx: null`: a bootstrap read of an
 *              existing row, which subscribers apply as an upsert. properties = `after`.
 * - bootstrap.started / bootstrap.completed → `label.snapshot.started` / `.completed` with the
 *              load (`bootstrap`), for each partition's copy like a truncate.
 * - `load` (the bootstrap of the table under way) is copied to the node events.
 * - message  → `message.emitted` with the logical message (prefix, content, encoding).
 *
 * Every event carries `v`, `source`, and the change's `position` and `tx` unchanged (the same
 * objects, not copies). `unchanged` and `jsonNulls` describe the event's `properties`: the
 * `after` lists for events built from the new row, the `before` list for a deleted node built
 * from the old row. Optional fields are omitted, never set to undefined.
 *
 * Runs once per change in the transform, so it does no zod parsing: input is parsed once per
 * batch by the caller, and the output is shaped to pass `graphNodeEvent.parse` by construction
 * (the unit tests check that).
 */
import type { ChangeEvent, GraphNodeEvent, NodeEvent, Row, RowChangeEvent } from './change-event.ts';
import { PgRelayError } from './errors.ts';
import { tableKey } from './identifiers.ts';
import { nodeId } from './node-id.ts';

export interface GraphEventContext {
  /** The pgrelay source (database) id, copied to every event. */
  source: string;
  /** `schema.table` → label, from `labelsFor(config.tables)`. */
  labels: ReadonlyMap<string, string>;
}

/** The graph event of one change. */
export function toGraphEvent(change: ChangeEvent, ctx: GraphEventContext): GraphNodeEvent {
  if (change.op === 'message') {
    return { v: 1, type: 'message.emitted', source: ctx.source, message: change.message, position: change.position, tx: change.tx };
  }
  // A table missing from the labels map (config lists fewer tables than the publication
  // streams, or a config change raced a deploy) still gets a usable label: its bare name,
  // which is what labelsFor gives every table whose name is unique.
  const label = ctx.labels.get(tableKey(change)) ?? change.table;

  switch (change.op) {
    case 'insert': {
      const key = requireKey(change, change.key);
      const event = fromAfter('node.inserted', change, ctx, label, key);
      if (change.oldKey !== undefined) event.keyChange = { oldId: nodeId(label, change.oldKey), newId: event.node.id as string };
      return event;
    }

    case 'snapshot': {
      const event: NodeEvent = {
        v: 1,
        type: 'node.updated',
        source: ctx.source,
        node: { id: nodeId(label, change.key), label, properties: change.after },
        snapshot: true,
        load: change.load,
        position: change.position,
        tx: null,
      };
      const jsonNulls = change.jsonNulls?.after;
      if (jsonNulls !== undefined && jsonNulls.length > 0) event.jsonNulls = jsonNulls;
      return event;
    }

    case 'bootstrap.started':
    case 'bootstrap.completed': {
      // Sent to every partition, like a truncate (see below).
      return {
        v: 1,
        type: change.op === 'bootstrap.started' ? 'label.snapshot.started' : 'label.snapshot.completed',
        source: ctx.source,
        node: { id: null, label, properties: {} },
        bootstrap: change.bootstrap,
        position: change.position,
        tx: null,
      };
    }

    case 'update': {
      const event = fromAfter('node.updated', change, ctx, label, requireKey(change, change.key));
      if (change.before !== null) {
        event.previous = change.before;
        event.changed = changedProperties(change.before, event.node.properties, change.unchanged, change.jsonNulls);
      }
      return event;
    }

    case 'delete': {
      const key = requireKey(change, change.key);
      const event = fromBefore(change, ctx, label, nodeId(label, key), key);
      if (change.newKey !== undefined) event.keyChange = { oldId: event.node.id as string, newId: nodeId(label, change.newKey) };
      return event;
    }

    case 'truncate':
    case 'gap': {
      // The streamer sends a truncate (and a gap notice) to every partition of the changes
      // queue, each copy with the same position, so that it is ordered against every row of the
      // table whichever partition the row lives in. Each copy becomes an event: on the nodes queue
      // it goes to its partition's group (ordered against that group's nodes); EventBridge gets
      // partition 0's only (the transform picks).
      const event: NodeEvent = {
        v: 1,
        type: change.op === 'truncate' ? 'label.truncated' : 'label.gap',
        source: ctx.source,
        node: { id: null, label, properties: {} },
        position: change.position,
        tx: change.tx,
      };
      if (change.truncate !== undefined) event.truncate = change.truncate;
      if (change.gap !== undefined) event.gap = change.gap;
      return event;
    }

    default: {
      const unknown: never = change;
      throw new PgRelayError('MALFORMED_CHANGE', `unknown op ${String((unknown as { op?: unknown }).op)}`);
    }
  }
}

/** An event whose node is the new row. */
function fromAfter(type: 'node.inserted' | 'node.updated', change: RowChangeEvent, ctx: GraphEventContext, label: string, key: Row): NodeEvent {
  if (change.after === null) {
    throw new PgRelayError('MALFORMED_CHANGE', `${change.op} on ${tableKey(change)} at ${positionText(change)} has no "after" row`);
  }
  const event: NodeEvent = {
    v: 1,
    type,
    source: ctx.source,
    node: { id: nodeId(label, key), label, properties: change.after },
    position: change.position,
    tx: change.tx,
  };
  if (change.unchanged !== undefined && change.unchanged.length > 0) event.unchanged = change.unchanged;
  const jsonNulls = change.jsonNulls?.after;
  if (jsonNulls !== undefined && jsonNulls.length > 0) event.jsonNulls = jsonNulls;
  if (change.load !== undefined) event.load = change.load;
  return event;
}

/** A `node.deleted` for `id`: the old row when PostgreSQL sent it, else just its key columns. */
function fromBefore(change: RowChangeEvent, ctx: GraphEventContext, label: string, id: string, key: Row): NodeEvent {
  const event: NodeEvent = {
    v: 1,
    type: 'node.deleted',
    source: ctx.source,
    node: { id, label, properties: change.before ?? key },
    position: change.position,
    tx: change.tx,
  };
  const jsonNulls = change.before !== null ? change.jsonNulls?.before : undefined;
  if (jsonNulls !== undefined && jsonNulls.length > 0) event.jsonNulls = jsonNulls;
  if (change.load !== undefined) event.load = change.load;
  return event;
}

function requireKey(change: RowChangeEvent, key: Row | null): Row {
  if (key === null) {
    throw new PgRelayError('MALFORMED_CHANGE', `${change.op} on ${tableKey(change)} at ${positionText(change)} has no key`);
  }
  return key;
}

function positionText(change: RowChangeEvent): string {
  return `(${change.position.commitLsn}, ${change.position.seq})`;
}

/**
 * Properties of an update whose value differs between the old and the new row, in the order
 * of `after` then of `before`. Two values are equal when their JSON text is equal: for json
 * columns key order is part of the value, for jsonb PostgreSQL already normalised it. A
 * property named in `unchanged` kept its value by definition (it is absent from `after`), and
 * a property present on one side only counts as changed. SQL NULL and the JSON literal null
 * are both `null`, so a json column moving between them shows only in `jsonNulls`, and counts.
 */
export function changedProperties(
  before: Row,
  after: Row,
  unchanged?: readonly string[],
  jsonNulls?: { after?: readonly string[] | undefined; before?: readonly string[] | undefined },
): string[] {
  const changed: string[] = [];
  for (const name in after) {
    if (unchanged?.includes(name)) continue;
    if (!Object.hasOwn(before, name)) {
      changed.push(name);
      continue;
    }
    const a = after[name];
    const b = before[name];
    if (a === b) {
      if (a === null && (jsonNulls?.after?.includes(name) ?? false) !== (jsonNulls?.before?.includes(name) ?? false)) changed.push(name);
      continue;
    }
    // Distinct primitives differ; only two objects (json, arrays) need their text compared.
    if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || JSON.stringify(a) !== JSON.stringify(b)) {
      changed.push(name);
    }
  }
  for (const name in before) {
    if (!Object.hasOwn(after, name) && !unchanged?.includes(name)) changed.push(name);
  }
  return changed;
}
