/**
 * The sweep, driven through nodeHandler with the nodes-queue messages the transform would send:
 * changes as the streamer writes them, per changes partition → toGraphEvent → packNodesMessages
 * → SQS records. A consumer store keeps each node with its sweep mark; a gap repair's load
 * re-reads the table, and at its completion the copies of label.snapshot.completed, one per
 * group, delete exactly the nodes whose rows were deleted while their changes were lost.
 */
import { describe, expect, it } from 'vitest';
import type { BootstrapLoad, ChangeBatch, ChangeEvent, GraphNodeEvent, NodeEvent } from '#core/change-event.ts';
import { labelsFor } from '#core/node-id.ts';
import { partitionOf } from '#core/partition.ts';
import { toGraphEvent } from '#core/row-to-node.ts';
import { stringifyLossless } from '#core/values/lossless-json.ts';
import { nodeHandler, snapshotSweep, sweepMark, type SweepMark } from '#consumer/index.ts';
import type { EventBridgeEvent, SqsEvent, SqsRecord } from '#shared/lambda-types.ts';
import { packNodesMessages, type NodeEventOut } from '#transform/nodes-queue-output.ts';

const CHANGES_PARTITIONS = 4;
const labels = labelsFor([{ schema: 'public', table: 'orders' }, { schema: 'public', table: 'customers' }]);

let lsn = 0x100;
const nextLsn = () => `0/${(lsn += 0x10).toString(16).toUpperCase()}`;
const tx = (commitLsn: string) => ({ xid: lsn, commitLsn, commitTime: '2026-11-21T10:22:37.671002Z' });

/** The changes-queue partition of a row, as the streamer computes it. */
const partitionOfKey = (table: string, key: Record<string, string>) => partitionOf(`public.${table}`, stringifyLossless(key), CHANGES_PARTITIONS);

/** The streamer's side: changes, each in its row's partition (markers in every one), in stream order. */
class Stream {
  readonly batches: ChangeEvent[][] = Array.from({ length: CHANGES_PARTITIONS }, () => []);
  live(op: 'insert' | 'update' | 'delete', id: number, load?: string, table = 'orders'): void {
    const at = nextLsn();
    const key = { id: String(id) };
    this.batches[partitionOfKey(table, key)]!.push({
      v: 1, op, schema: 'public', table, key, after: op === 'delete' ? null : { id: String(id), status: `s${lsn}` }, before: null,
      ...(load !== undefined ? { load } : {}), position: { commitLsn: at, seq: 0 }, tx: tx(at),
    });
  }
  snapshot(ids: number[], load: string): void {
    const at = nextLsn(); // the chunk's marker
    ids.forEach((id, seq) => {
      const key = { id: String(id) };
      this.batches[partitionOfKey('orders', key)]!.push({ v: 1, op: 'snapshot', schema: 'public', table: 'orders', key, after: { id: String(id), status: 'read' }, before: null, load, position: { commitLsn: at, seq }, tx: null });
    });
  }
  marker(op: 'bootstrap.started' | 'bootstrap.completed', bootstrap: BootstrapLoad): void {
    const at = nextLsn();
    for (const b of this.batches) b.push({ v: 1, op, schema: 'public', table: 'orders', key: null, after: null, before: null, bootstrap, position: { commitLsn: at, seq: 0 }, tx: null });
  }
  /** Take what was streamed so far, as one changes-queue record per partition. */
  take(): ChangeBatch[] {
    return this.batches.map((changes, partition) => ({ v: 1, partition, changes: changes.splice(0) }));
  }
}

let messageId = 0;
/** The transform's side, record by record: the node events of each, packed for the nodes queue. */
function nodesQueueRecords(batches: ChangeBatch[]): SqsRecord[] {
  const records: SqsRecord[] = [];
  for (const batch of batches) {
    const out: NodeEventOut[] = [];
    for (const change of batch.changes) {
      const event = toGraphEvent(change, { source: 'shop', labels });
      const json = stringifyLossless(event);
      out.push({ event, json, bytes: Buffer.byteLength(json) });
    }
    for (const m of packNodesMessages(out, batch.partition)) {
      records.push({
        messageId: `m${++messageId}`, receiptHandle: '', body: m.body,
        attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0', SenderId: 'test', ApproximateFirstReceiveTimestamp: '0', MessageGroupId: m.group, MessageDeduplicationId: m.deduplicationId },
        messageAttributes: {}, md5OfBody: '', eventSource: 'aws:sqs', eventSourceARN: '', awsRegion: 'us-east-1',
      });
    }
  }
  return records;
}

/** A user's consumer: nodes with their sweep mark; the sweep at every completed copy. */
function consumer() {
  const store = new Map<string, { label: string; properties: Record<string, unknown> } & SweepMark>();
  const swept: { group: number; id: string }[] = [];
  const completions: NodeEvent[] = [];
  const write = (e: NodeEvent) => void store.set(e.node.id!, { label: e.node.label, properties: e.node.properties, ...sweepMark(e) });
  const handler = nodeHandler({
    onInserted: write,
    onUpdated: write,
    onDeleted: (e) => void store.delete(e.node.id!),
    onSnapshotCompleted(e) {
      completions.push(e);
      const sweep = snapshotSweep(e);
      if (!sweep) return;
      for (const [id, n] of store) {
        if (n.label === e.node.label && sweep.shouldDelete({ id, ...n })) {
          store.delete(id);
          swept.push({ group: sweep.group, id });
        }
      }
    },
  });
  const deliver = async (records: SqsRecord[]) => expect(await handler({ Records: records } satisfies SqsEvent)).toEqual({ batchItemFailures: [] });
  return { store, swept, completions, handler, deliver };
}

const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const orders = (list: number[]) => list.map((id) => `orders:${id}`).sort();
const storedOrders = (store: Map<string, unknown>) => [...store.keys()].filter((id) => id.startsWith('orders:')).sort();

/**
 * 60 orders and 3 customers streamed; then the slot is lost and, unseen, 12 orders are
 * deleted; the repair's load reads the 48 left while live changes go on (an update, an insert,
 * a delete, all stamped with the load).
 */
function gapRepair(outcome: 'complete' | 'cancelled' | 'failed') {
  const stream = new Stream();
  for (const id of ids(1, 60)) stream.live('insert', id);
  for (const id of ids(1, 3)) stream.live('insert', id, undefined, 'customers');
  const before = stream.take();
  const lost = [3, 7, 11, 14, 19, 23, 28, 31, 37, 42, 49, 55];
  const load: BootstrapLoad = { id: 'L7', reason: 'gap', gap: { afterLsn: '0/200', untilLsn: '0/300' } };
  stream.marker('bootstrap.started', load);
  const rest = ids(1, 60).filter((id) => !lost.includes(id));
  stream.snapshot(rest.slice(0, 24), load.id);
  stream.live('update', 2, load.id);
  stream.live('insert', 61, load.id);
  stream.snapshot(rest.slice(24), load.id);
  stream.live('delete', 5, load.id);
  const during = stream.take();
  stream.marker('bootstrap.completed', { ...load, outcome, rows: rest.length });
  const completed = stream.take();
  const table = orders([...rest.filter((id) => id !== 5), 61]);
  return { stream, before, during, completed, lost, table };
}

describe('snapshotSweep through nodeHandler, on the nodes queue', () => {
  it('at a complete load, each group copy deletes exactly the untouched nodes of its group: together the rows lost with the slot', async () => {
    const s = gapRepair('complete');
    const c = consumer();
    await c.deliver(nodesQueueRecords(s.before));
    expect(c.store.size).toBe(63);
    await c.deliver(nodesQueueRecords(s.during));
    // Before the completion nothing is swept: the lost rows are still there.
    expect(storedOrders(c.store)).toEqual(orders(ids(1, 61).filter((id) => id !== 5)));
    await c.deliver(nodesQueueRecords(s.completed));

    expect(c.completions.map((e) => e.group).sort()).toEqual([0, 1, 2, 3]);
    expect(storedOrders(c.store)).toEqual(s.table);
    expect([...c.store.keys()].filter((id) => id.startsWith('customers:')).sort()).toEqual(['customers:1', 'customers:2', 'customers:3']);
    // Each lost node swept once, by the copy of its own group, and several groups took part.
    expect(c.swept.map((x) => x.id).sort()).toEqual(orders(s.lost));
    for (const x of c.swept) expect(x.group).toBe(partitionOfKey('orders', { id: x.id.split(':')[1] as string }));
    expect(new Set(c.swept.map((x) => x.group)).size).toBeGreaterThan(1);
  });

  it('a node written after the completion (in its group, after the copy) is not swept by that copy; one of another group is left to its own copy', async () => {
    const s = gapRepair('complete');
    const c = consumer();
    await c.deliver(nodesQueueRecords([...s.before, ...s.during, ...s.completed]));
    const completion = c.completions.find((e) => e.group === 1) as NodeEvent;
    const sweep = snapshotSweep(completion);
    const later = { commitLsn: '0/FFFF', seq: 0 };
    expect(sweep?.shouldDelete({ id: 'orders:9001', load: null, group: 1 })).toBe(true);
    expect(sweep?.shouldDelete({ id: 'orders:9001', load: null, group: 1, position: later })).toBe(false);
    expect(sweep?.shouldDelete({ id: 'orders:9001', load: null, group: 2 })).toBe(false);
    expect(sweep?.shouldDelete({ id: 'orders:9001', load: null })).toBe(false); // group unknown (from EventBridge): never swept
  });

  for (const outcome of ['cancelled', 'failed'] as const) {
    it(`a ${outcome} load sweeps nothing`, async () => {
      const s = gapRepair(outcome);
      const c = consumer();
      await c.deliver(nodesQueueRecords([...s.before, ...s.during, ...s.completed]));
      expect(c.completions).toHaveLength(CHANGES_PARTITIONS);
      for (const e of c.completions) expect(snapshotSweep(e)).toBeUndefined();
      expect(c.swept).toEqual([]);
      expect(storedOrders(c.store)).toEqual(orders([...ids(1, 60).filter((id) => id !== 5), 61])); // the live delete and insert only
    });
  }

  it('the completion from EventBridge (one event, no group) sweeps nothing', async () => {
    const s = gapRepair('complete');
    const c = consumer();
    await c.deliver(nodesQueueRecords([...s.before, ...s.during]));
    // What the transform gives EventBridge: the event of partition 0's copy, as it is.
    const events: GraphNodeEvent[] = s.completed.filter((b) => b.partition === 0).flatMap((b) => b.changes.map((ch) => toGraphEvent(ch, { source: 'shop', labels })));
    expect(events).toHaveLength(1);
    const detail = JSON.parse(stringifyLossless(events[0]!)) as NodeEvent;
    await c.handler({ version: '0', id: 'e1', 'detail-type': detail.type, source: 'pgrelay.shop', account: '1', time: '', region: 'us-east-1', resources: [], detail } satisfies EventBridgeEvent);
    expect(c.completions).toHaveLength(1);
    expect(c.completions[0]).not.toHaveProperty('group');
    expect(snapshotSweep(c.completions[0]!)).toBeUndefined();
    expect(c.swept).toEqual([]);
    expect(c.store.size).toBe(63);
  });

  it('shouldDelete: only this label, only this group, only nodes the load did not write', () => {
    const e: NodeEvent = {
      v: 1, type: 'label.snapshot.completed', source: 'shop', node: { id: null, label: 'orders', properties: {} },
      bootstrap: { id: 'L1', reason: 'operator', outcome: 'complete', rows: 0 }, group: 1, position: { commitLsn: '0/50', seq: 0 }, tx: null,
    };
    const sweep = snapshotSweep(e);
    expect(sweep).toMatchObject({ load: 'L1', label: 'orders', group: 1 });
    expect(sweep?.shouldDelete({ id: 'orders:7', group: 1 })).toBe(true);
    expect(sweep?.shouldDelete({ id: 'orders:7', group: 1, load: 'L0', position: { commitLsn: '0/50', seq: 0 } })).toBe(true);
    expect(sweep?.shouldDelete({ id: 'orders:7', group: 1, load: 'L1' })).toBe(false);
    expect(sweep?.shouldDelete({ id: 'orders:7', group: 1, load: null, position: { commitLsn: '0/50', seq: 1 } })).toBe(false);
    expect(sweep?.shouldDelete({ id: 'orders:7', group: 2 })).toBe(false);
    expect(sweep?.shouldDelete({ id: 'customers:7', group: 1 })).toBe(false);
    expect(snapshotSweep({ ...e, type: 'label.snapshot.started' })).toBeUndefined();
  });
});
