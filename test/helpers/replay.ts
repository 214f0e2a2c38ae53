/**
 * A consumer that applies what the changes queue delivered, group by group in receipt order
 * (FIFO orders only within a group), and ends with the rows it believes each table holds. What
 * bootstrap and fault tests compare with the table itself: no stale, missing or resurrected row.
 *
 * Rules, as a careful subscriber applies them: a snapshot row is an upsert; an update keeps the
 * values of columns named `unchanged`; a delete removes; a truncate removes the table's rows of
 * that group; a change whose position is not past the last one applied to its row is a redelivery
 * and is skipped. With `sweep`, a completed load with outcome `complete` removes the rows of its
 * table in that group that the load did not touch (rows deleted while changes were lost).
 */
import { comparePositions } from '#core/position.ts';
import type { ChangeEvent } from '#core/change-event.ts';
import type { ReceivedMessage } from './sqs.ts';
import { receivedOf } from './streamer.ts';

type Position = { commitLsn: string; seq: number };

export interface ReplayResult {
  /** `schema.table` → key JSON → row. */
  tables: Map<string, Map<string, Record<string, unknown>>>;
  /** Changes skipped as redeliveries (a position already applied to the row). */
  redeliveries: number;
}

export function replayChanges(messages: ReceivedMessage[], opts: { sweep?: boolean } = {}): ReplayResult {
  const byGroup = new Map<string, ChangeEvent[]>();
  for (const c of receivedOf(messages)) {
    const list = byGroup.get(c.groupId) ?? [];
    list.push(c);
    byGroup.set(c.groupId, list);
  }
  const tables = new Map<string, Map<string, Record<string, unknown>>>();
  let redeliveries = 0;
  for (const changes of byGroup.values()) {
    // Per group: rows, the last position applied to each, and which load touched each row.
    const rows = new Map<string, Map<string, Record<string, unknown>>>();
    const last = new Map<string, Position>();
    const touchedBy = new Map<string, string>();
    const seenMarks = new Set<string>();
    const table = (ref: string) => {
      let t = rows.get(ref);
      if (t === undefined) rows.set(ref, (t = new Map()));
      return t;
    };
    for (const c of changes) {
      if (c.op === 'message') continue;
      const ref = `${c.schema}.${c.table}`;
      if (c.op === 'truncate' || c.op === 'gap' || c.op === 'bootstrap.started' || c.op === 'bootstrap.completed') {
        const mark = `${c.op}@${c.position.commitLsn}/${c.position.seq}/${ref}`;
        if (seenMarks.has(mark)) {
          redeliveries++;
          continue;
        }
        seenMarks.add(mark);
        if (c.op === 'truncate') table(ref).clear();
        if (c.op === 'bootstrap.completed' && opts.sweep && c.bootstrap.outcome === 'complete') {
          for (const key of [...table(ref).keys()]) if (touchedBy.get(`${ref} ${key}`) !== c.bootstrap.id) table(ref).delete(key);
        }
        continue;
      }
      if (c.op !== 'insert' && c.op !== 'update' && c.op !== 'delete' && c.op !== 'snapshot') continue;
      const key = JSON.stringify(c.key);
      const node = `${ref} ${key}`;
      const prev = last.get(node);
      if (prev !== undefined && comparePositions(c.position, prev) <= 0) {
        redeliveries++;
        continue;
      }
      last.set(node, c.position);
      if (c.load !== undefined) touchedBy.set(node, c.load);
      const t = table(ref);
      if (c.op === 'delete') t.delete(key);
      else if (c.op === 'snapshot' || c.op === 'insert') t.set(key, c.after as Record<string, unknown>);
      else {
        const kept: Record<string, unknown> = {};
        for (const col of (c.op === 'update' ? c.unchanged : undefined) ?? []) if (t.get(key)?.[col] !== undefined) kept[col] = t.get(key)?.[col];
        t.set(key, { ...(c.after as Record<string, unknown>), ...kept });
      }
    }
    for (const [ref, t] of rows) {
      let all = tables.get(ref);
      if (all === undefined) tables.set(ref, (all = new Map()));
      for (const [k, v] of t) all.set(k, v);
    }
  }
  return { tables, redeliveries };
}
