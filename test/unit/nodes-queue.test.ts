import { describe, expect, it } from 'vitest';
import { graphNodeEvent, type GraphNodeEvent, type NodeEvent } from '#core/change-event.ts';
import { parseLsn, positionKey } from '#core/position.ts';
import { stringifyLossless } from '#core/values/lossless-json.ts';
import { nodeHandler } from '#consumer/node-handler.ts';
import type { SqsRecord } from '#shared/lambda-types.ts';
import { packNodesMessages, type NodeEventOut } from '#transform/nodes-queue-output.ts';

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

function recordsOf(messages: ReturnType<typeof packNodesMessages>): SqsRecord[] {
  return messages.map((m, i): SqsRecord => ({
    messageId: `m${i}`, receiptHandle: '', body: m.body, attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0', SenderId: 'test', ApproximateFirstReceiveTimestamp: '0', MessageGroupId: m.group },
    messageAttributes: {}, md5OfBody: '', eventSource: 'aws:sqs', eventSourceARN: '', awsRegion: 'us-east-1',
  }));
}

describe('packNodesMessages', () => {
  it('puts a record\'s events, in order, in the group of its changes partition; label-wide copies are stamped with it; dedup ids from positions', () => {
    const events = [inserted, truncated, message, completed].map(out);
    const messages = packNodesMessages(events, 3);
    expect(messages.map((m) => m.group)).toEqual(['n3']);
    const [m] = messages;
    expect(m?.bytes).toBe(Buffer.byteLength(m?.body ?? ''));
    const body = JSON.parse(m?.body ?? '') as { v: number; events: GraphNodeEvent[] };
    for (const e of body.events) expect(graphNodeEvent.parse(e)).toEqual(e); // the stamp is part of the contract
    expect(body.events).toEqual([inserted, { ...truncated, group: 3 }, message, { ...completed, group: 3 }]);
    expect(m?.deduplicationId).toBe(`n3.${key(inserted)}.${key(completed)}`);
    // The events given (what EventBridge gets) are untouched.
    expect(events[1]?.event).not.toHaveProperty('group');
    expect(JSON.parse(events[1]?.json ?? '')).not.toHaveProperty('group');
  });

  it('nodeHandler hands every event over with the group it came in, a claim-checked copy too', async () => {
    const ref = stringifyLossless({ v: 1, type: completed.type, source: 'shop', node: { id: null, label: 'orders' }, position: completed.position, tx: null, payloadRef: { bucket: 'b', key: 'k', bytes: 1, sha256: '0'.repeat(64) } });
    const messages = [0, 1, 2, 3].flatMap((p) => packNodesMessages([out(inserted), { event: completed, json: ref, bytes: Buffer.byteLength(ref) }], p));
    const seen: NodeEvent[] = [];
    const handler = nodeHandler(
      { onInserted: (e) => void seen.push(e), onSnapshotCompleted: (e) => void seen.push(e) },
      { payloads: { get: async () => stringifyLossless(completed) } },
    );
    expect(await handler({ Records: recordsOf(messages) })).toEqual({ batchItemFailures: [] });
    expect(seen.filter((e) => e.type === 'label.snapshot.completed').map((e) => e.group).sort()).toEqual([0, 1, 2, 3]);
    for (const e of seen) expect(e).toEqual({ ...(e.type === 'node.inserted' ? inserted : completed), group: e.group });
    expect(seen.every((e) => typeof e.group === 'number')).toBe(true);
  });
});
