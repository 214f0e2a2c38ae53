import { describe, expect, it } from 'vitest';
import { graphNodeEvent, type GraphNodeEvent, type NodeEvent } from '#core/change-event.ts';
import { nodesPartition } from '#core/partition.ts';
import { parseLsn, positionKey } from '#core/position.ts';
import { stringifyLossless } from '#core/values/lossless-json.ts';
import { nodeHandler } from '#consumer/node-handler.ts';
import type { SqsRecord } from '#shared/lambda-types.ts';
import { packNodesMessages, type NodeEventOut } from '#transform/nodes-queue-output.ts';

const PARTITIONS = 4;
const TX = { xid: 9, commitLsn: '0/40', commitTime: '2026-11-21T10:22:37.671002Z' };

function out(event: GraphNodeEvent): NodeEventOut {
  const json = stringifyLossless(event);
  return { event, json, bytes: Buffer.byteLength(json) };
}

const inserted: NodeEvent = { v: 1, type: 'node.inserted', source: 'shop', node: { id: 'orders:1', label: 'orders', properties: { id: '1' } }, position: { commitLsn: '0/40', seq: 0 }, tx: TX };
const truncated: NodeEvent = { v: 1, type: 'label.truncated', source: 'shop', node: { id: null, label: 'orders', properties: {} }, truncate: { cascade: false, restartIdentity: false }, position: { commitLsn: '0/40', seq: 1 }, tx: TX };
const completed: NodeEvent = {
  v: 1, type: 'label.snapshot.completed', source: 'shop', node: { id: null, label: 'orders', properties: {} },
  bootstrap: { id: 'L1', reason: 'gap', gap: { afterLsn: '0/10', untilLsn: '0/20' }, outcome: 'complete', rows: 3 }, position: { commitLsn: '0/50', seq: 0 }, tx: null,
};
const message: GraphNodeEvent = { v: 1, type: 'message.emitted', source: 'shop', message: { prefix: 'outbox', content: '{}', encoding: 'utf8', transactional: true }, position: { commitLsn: '0/40', seq: 2 }, tx: TX };

const key = (e: GraphNodeEvent) => positionKey(parseLsn(e.position.commitLsn), e.position.seq);

describe('packNodesMessages: label-wide events', () => {
  it('copies them to every group, each copy stamped with its group; node events and messages carry none; dedup ids from positions as before', () => {
    const events = [inserted, truncated, message, completed].map(out);
    const messages = packNodesMessages(events, PARTITIONS);
    const groups = new Map<string, GraphNodeEvent[]>();
    for (const m of messages) {
      expect(m.bytes).toBe(Buffer.byteLength(m.body));
      const body = JSON.parse(m.body) as { v: number; events: GraphNodeEvent[] };
      expect(body.v).toBe(1);
      for (const e of body.events) expect(graphNodeEvent.parse(e)).toEqual(e); // the stamp is part of the contract
      expect(m.deduplicationId).toBe(`${m.group}.${key(body.events[0]!)}.${key(body.events.at(-1)!)}`);
      expect(m.events.map((e) => JSON.parse(e.json))).toEqual(body.events);
      groups.set(m.group, [...(groups.get(m.group) ?? []), ...body.events]);
    }
    expect([...groups.keys()].sort()).toEqual(['n0', 'n1', 'n2', 'n3']);
    for (const [group, list] of groups) {
      const p = Number(group.slice(1));
      const broadcast = list.filter((e) => e.type !== 'message.emitted' && e.node.id === null);
      expect(broadcast).toEqual([
        { ...truncated, group: { index: p, count: PARTITIONS } },
        { ...completed, group: { index: p, count: PARTITIONS } },
      ]);
      for (const e of list) if (!broadcast.includes(e)) expect(e).not.toHaveProperty('group');
    }
    expect(groups.get(`n${nodesPartition('orders:1', PARTITIONS)}`)).toContainEqual(inserted);
    expect(groups.get(`n${nodesPartition('message:outbox', PARTITIONS)}`)).toContainEqual(message);
    // The packed copies' events say their group too; the events given (what EventBridge gets) are untouched.
    for (const m of messages) for (const e of m.events) if (e.event.type !== 'message.emitted' && e.event.node.id === null) expect(e.event.group).toEqual({ index: Number(m.group.slice(1)), count: PARTITIONS });
    expect(events[1]!.event).not.toHaveProperty('group');
    expect(JSON.parse(events[1]!.json)).not.toHaveProperty('group');
  });

  it('a claim-checked label-wide event is stamped on its ref, and nodeHandler puts the group on the fetched event', async () => {
    const ref = stringifyLossless({ v: 1, type: completed.type, source: 'shop', node: { id: null, label: 'orders' }, position: completed.position, tx: null, payloadRef: { bucket: 'b', key: 'k', bytes: 1, sha256: '0'.repeat(64) } });
    const messages = packNodesMessages([{ event: completed, json: ref, bytes: Buffer.byteLength(ref) }], PARTITIONS);
    const seen: NodeEvent[] = [];
    const handler = nodeHandler({ onSnapshotCompleted: (e) => void seen.push(e) }, { payloads: { get: async () => stringifyLossless(completed) } });
    const records = messages.map((m, i): SqsRecord => ({
      messageId: `m${i}`, receiptHandle: '', body: m.body, attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0', MessageGroupId: m.group },
      messageAttributes: {}, md5OfBody: '', eventSource: 'aws:sqs', eventSourceARN: '', awsRegion: 'us-east-1',
    }));
    expect(await handler({ Records: records })).toEqual({ batchItemFailures: [] });
    expect(seen.map((e) => e.group?.index).sort()).toEqual([0, 1, 2, 3]);
    for (const e of seen) expect(e).toEqual({ ...completed, group: { index: e.group!.index, count: PARTITIONS } });
  });
});
