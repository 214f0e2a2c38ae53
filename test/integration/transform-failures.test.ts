import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeEvent, NodeEvent } from '#core/change-event.ts';
import { parseTransformConfig } from '#core/config.ts';
import { stringifyLossless } from '#core/values/lossless-json.ts';
import { createTransform } from '#transform/handler.ts';
import type { Transform } from '#transform/transform.ts';
import { startFakeEventBridge, type FakeEventBridge } from '#test/helpers/fake-eventbridge.ts';
import { invokeFromQueue } from '#dev/lambda-event-source.ts';
import { createFifoQueue, drainQueue, sqsClient, testSqsEndpoint } from '#test/helpers/sqs.ts';

let seq = 0;
function change(table: string, id: number, op: 'insert' | 'update', status: string, lsn: string): ChangeEvent {
  return {
    v: 1,
    op,
    schema: 'public',
    table,
    key: { id: String(id) },
    after: { id: String(id), status },
    before: null,
    position: { commitLsn: lsn, seq: seq++ },
    tx: { xid: 1, commitLsn: lsn, commitTime: '2026-11-21T10:00:00.000000Z' },
  };
}

describe('transform: partial batch failures keep FIFO order', () => {
  let endpoint: string;
  let changesUrl: string;
  let nodesUrl: string;
  let eventBridge: FakeEventBridge;
  let transform: Transform;

  beforeAll(async () => {
    endpoint = await testSqsEndpoint();
    changesUrl = await createFifoQueue(endpoint, 'partial-changes');
    nodesUrl = await createFifoQueue(endpoint, 'partial-nodes');
    eventBridge = await startFakeEventBridge({ buses: ['bus'] });
    transform = createTransform(
      parseTransformConfig({
        tables: ['orders', 'customers'],
        outputs: { nodesQueue: { queueUrl: nodesUrl }, eventBridge: { busName: 'bus' } },
        sqsEndpoint: endpoint,
        eventBridgeEndpoint: eventBridge.endpoint,
      }),
      {
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
        log: { info: () => {}, warn: () => {}, error: () => {} },
        eventBridgeRetry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
      },
    );
  });

  afterAll(async () => {
    await eventBridge?.close();
  });

  it('fails a record and every later record of its group, and only those; the retry delivers in order without duplicates', async () => {
    const client = sqsClient(endpoint);
    const send = (group: string, n: number, changes: ChangeEvent[]) =>
      client.send(new SendMessageCommand({ QueueUrl: changesUrl, MessageGroupId: group, MessageDeduplicationId: `${group}-${n}`, MessageBody: stringifyLossless({ v: 1, partition: Number(group.slice(1)), changes }) }));
    await send('p0', 0, [change('orders', 1, 'insert', 'new', '0/100')]);
    await send('p0', 1, [change('orders', 2, 'insert', 'new', '0/200')]);
    await send('p0', 2, [change('orders', 1, 'update', 'paid', '0/300')]);
    await send('p1', 0, [change('customers', 7, 'insert', 'a', '0/150')]);
    await send('p1', 1, [change('customers', 7, 'update', 'b', '0/250')]);

    // EventBridge refuses orders:2 until told otherwise.
    let refuse = true;
    eventBridge.failNext((entry) => refuse && String(entry.detailText).includes('"orders:2"'), { code: 'InternalFailure', times: Infinity });
    const ids = new Map<string, string>();
    const first = await invokeFromQueue(client, changesUrl, async (event) => {
      for (const r of event.Records) {
        const batch = JSON.parse(r.body) as { changes: ChangeEvent[] };
        ids.set(r.messageId, `${r.attributes.MessageGroupId}:${batch.changes[0]!.position.commitLsn}`);
      }
      return transform.handle(event.Records);
    }, { visibilityTimeoutSeconds: 1 });
    // fauxqs returns at most one message per group per receive; keep invoking until both groups' heads were seen.
    const failedKeys = first.failed.map((id) => ids.get(id));
    expect(failedKeys.every((k) => k?.startsWith('p0:'))).toBe(true);

    // Drive the queue until every p1 record is done and p0 is stuck behind orders:2.
    const outcomes: string[] = [...failedKeys.map((k) => `failed ${k}`)];
    for (let i = 0; i < 6; i++) {
      const r = await invokeFromQueue(client, changesUrl, async (event) => {
        for (const rec of event.Records) {
          const batch = JSON.parse(rec.body) as { changes: ChangeEvent[] };
          ids.set(rec.messageId, `${rec.attributes.MessageGroupId}:${batch.changes[0]!.position.commitLsn}`);
        }
        return transform.handle(event.Records);
      }, { visibilityTimeoutSeconds: 1, waitTimeSeconds: 0 });
      outcomes.push(...r.failed.map((id) => `failed ${ids.get(id)}`));
    }
    const published = (await drainQueue(client, nodesUrl, { waitTimeSeconds: 0 })).flatMap((m) => (JSON.parse(m.body) as { events: NodeEvent[] }).events);
    const label = (e: NodeEvent) => `${e.type} ${e.node.id} ${String(e.node.properties.status)}`;
    // Group p1 went through; in p0, orders:1's update never overtook the failed orders:2 record.
    expect(published.map(label)).toEqual(expect.arrayContaining(['node.inserted customers:7 a', 'node.updated customers:7 b', 'node.inserted orders:1 new']));
    expect(published.map(label)).not.toContain('node.updated orders:1 paid');
    expect(outcomes.some((o) => o === 'failed p0:0/200')).toBe(true);
    expect(outcomes.filter((o) => o.startsWith('failed p1'))).toEqual([]);

    // Fault cleared: the retries deliver the rest, each event once, orders:1 in order.
    refuse = false;
    for (let i = 0; i < 20 && !published.some((e) => label(e) === 'node.updated orders:1 paid'); i++) {
      await invokeFromQueue(client, changesUrl, (event) => transform.handle(event.Records), { visibilityTimeoutSeconds: 1 });
      published.push(...(await drainQueue(client, nodesUrl, { waitTimeSeconds: 0 })).flatMap((m) => (JSON.parse(m.body) as { events: NodeEvent[] }).events));
    }
    const orders1 = published.filter((e) => e.node.id === 'orders:1').map(label);
    expect(orders1).toEqual(['node.inserted orders:1 new', 'node.updated orders:1 paid']);
    expect(published.filter((e) => e.node.id === 'orders:2').map(label)).toEqual(['node.inserted orders:2 new']);
    const busIds = eventBridge.events.map((e) => `${(e.detail as NodeEvent).type} ${(e.detail as NodeEvent).node.id}`);
    expect(busIds.filter((b) => b === 'node.inserted orders:2')).toHaveLength(1);
    client.destroy();
  });
});
