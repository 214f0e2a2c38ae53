import { createHash } from 'node:crypto';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphNodeEvent, type NodeEvent } from '#core/change-event.ts';
import { parseTransformConfig } from '#core/config.ts';
import { parseLsn, positionKey } from '#core/position.ts';
import { nodeHandler } from '#consumer/node-handler.ts';
import { s3PayloadStore } from '#shared/s3-payload-store.ts';
import { createTransform } from '#transform/handler.ts';
import type { EventBridgeEvent } from '#shared/lambda-types.ts';
import { startFakeEventBridge, type FakeEventBridge } from '#test/helpers/fake-eventbridge.ts';
import { invokeFromQueue } from '#dev/lambda-event-source.ts';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { createFifoQueue, dlqUrlOf, drainQueue, sqsClient, testSqsEndpoint } from '#test/helpers/sqs.ts';
import { startStreamer, streamerConfig, type RunningStreamer } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';

const SCHEMA = `
CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, status text, total numeric(12,2), meta jsonb);
CREATE TABLE order_items (order_id bigint, line int, sku text, qty int, PRIMARY KEY (order_id, line));
CREATE TABLE docs (id int PRIMARY KEY, body text);`;

describe('transform end to end: PostgreSQL → streamer → changes queue → transform → nodes queue → nodeHandler', () => {
  let db: Awaited<ReturnType<typeof testDatabase>>;
  let endpoint: string;
  let changesUrl: string;
  let nodesUrl: string;
  let running: RunningStreamer;
  let eventBridge: FakeEventBridge;
  const bucket = `pgrelay-e2e-${process.pid}`;
  const sqs = () => sqsClient(endpoint);
  const logs: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];

  beforeAll(async () => {
    db = await testDatabase('e2e');
    endpoint = await testSqsEndpoint();
    changesUrl = await createFifoQueue(endpoint, 'e2e-changes', { dlq: true, maxReceiveCount: 2 });
    nodesUrl = await createFifoQueue(endpoint, 'e2e-nodes');
    const s3 = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    s3.destroy();
    await withClient(db.url, (c) => c.query(SCHEMA));
    eventBridge = await startFakeEventBridge({ buses: ['shop-bus'] });
    running = startStreamer({
      ...streamerConfig({ dbUrl: db.url, queueUrl: changesUrl, sqsEndpoint: endpoint, tables: ['customers', 'orders', 'order_items', 'docs'], partitions: 4 }),
      s3Endpoint: endpoint,
      largePayloads: { bucket, prefix: 'e2e/' },
    });
    await running.ready;
  });

  afterAll(async () => {
    await eventBridge?.close();
    await running?.stop();
    await db?.drop();
  });

  it('delivers every change as node events in order per node on both outputs, a 2 MB row whole, and a poison record to the DLQ', async () => {
    const client = sqs();
    const payloads = s3PayloadStore({ bucket, prefix: 'e2e/', region: 'us-east-1', endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    // The Lambda's own factory, on local endpoints: the nodes queue gets every label,
    // EventBridge only orders and docs (routing by label).
    const transform = createTransform(
      parseTransformConfig({
        sourceId: 'shop',
        tables: ['customers', 'orders', 'order_items', 'docs'],
        outputs: { nodesQueue: { queueUrl: nodesUrl }, eventBridge: { busName: 'shop-bus', labels: ['orders', 'docs'] } },
        largePayloads: { bucket, prefix: 'e2e/' },
        sqsEndpoint: endpoint,
        s3Endpoint: endpoint,
        eventBridgeEndpoint: eventBridge.endpoint,
      }),
      {
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
        log: {
          info: (msg, fields) => logs.push({ level: 'info', msg, fields }),
          warn: (msg, fields) => logs.push({ level: 'warn', msg, fields }),
          error: (msg, fields) => logs.push({ level: 'error', msg, fields }),
        },
      },
    );

    // A record nobody can read, in its own group: it must not hold up the others.
    await client.send(new SendMessageCommand({ QueueUrl: changesUrl, MessageBody: '{"v":1,"partition":0,"changes":[{"op":"explode"}]}', MessageGroupId: 'poison', MessageDeduplicationId: 'poison-1' }));

    await withClient(db.url, async (c) => {
      await c.query(`INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', 'grace@example.com')`);
      await c.query(`INSERT INTO orders VALUES (10, 1, 'new', 1299.90, '{"coupon": null, "ref": 12345678901234567890}')`);
      await c.query(`INSERT INTO order_items VALUES (10, 1, 'SKU-1', 2), (10, 2, 'SKU:2', 1)`);
      await c.query(`UPDATE orders SET status = 'paid' WHERE id = 10`);
      await c.query(`UPDATE orders SET status = 'shipped' WHERE id = 10`);
      await c.query(`UPDATE customers SET email = 'grace@navy.mil' WHERE id = 2`);
      await c.query(`DELETE FROM order_items WHERE order_id = 10 AND line = 2`);
      await c.query(`INSERT INTO docs SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, 65536) g`); // 2 MiB
    });
    const docHash = await withClient(db.url, async (c) => (await c.query<{ h: string }>(`SELECT encode(sha256(convert_to(body, 'UTF8')), 'hex') AS h FROM docs WHERE id = 1`)).rows[0]!.h);

    // Consumers: the helper, on SQS events built from what the nodes queue holds.
    const seen: NodeEvent[] = [];
    const rawBodies: string[] = [];
    const consumer = nodeHandler(
      {
        onInserted: (e) => void seen.push(e),
        onUpdated: (e) => void seen.push(e),
        onDeleted: (e) => void seen.push(e),
      },
      { payloads },
    );
    const expected = 2 + 1 + 2 + 2 + 1 + 1 + 1; // inserts, updates, delete, doc
    await waitFor(
      async () => {
        await invokeFromQueue(client, changesUrl, (e) => transform.handle(e.Records), { visibilityTimeoutSeconds: 1 });
        await invokeFromQueue(
          client,
          nodesUrl,
          (e) => {
            rawBodies.push(...e.Records.map((r) => r.body));
            return consumer(e);
          },
          { waitTimeSeconds: 0 },
        );
        return seen.length >= expected;
      },
      { timeoutMs: 60_000, intervalMs: 1, message: 'all node events consumed' },
    );
    expect(seen).toHaveLength(expected);
    for (const e of seen) expect(() => graphNodeEvent.parse(e)).not.toThrow();

    const byId = (id: string) => seen.filter((e) => e.node.id === id);
    expect(byId('customers:1')[0]).toMatchObject({ type: 'node.inserted', source: 'shop', node: { label: 'customers', properties: { id: '1', name: 'Ada' } } });
    expect(byId('order_items:10:1')[0]).toMatchObject({ type: 'node.inserted', node: { properties: { order_id: '10', line: 1, sku: 'SKU-1', qty: 2 } } });
    expect(byId('order_items:10:2').map((e) => e.type)).toEqual(['node.inserted', 'node.deleted']);
    expect(byId('orders:10').map((e) => [e.type, e.node.properties.status])).toEqual([
      ['node.inserted', 'new'],
      ['node.updated', 'paid'],
      ['node.updated', 'shipped'],
    ]);
    // Big numbers inside jsonb reach the nodes queue with every digit (a consumer's JSON.parse
    // may round them; the wire does not).
    expect(rawBodies.some((b) => b.includes('"ref": 12345678901234567890'))).toBe(true);
    expect(byId('orders:10')[0]!.jsonNulls).toBeUndefined();
    const doc = byId('docs:1')[0]!;
    expect(createHash('sha256').update(String(doc.node.properties.body)).digest('hex')).toBe(docHash);
    // Order per node across everything: positions increase per id.
    const last = new Map<string, string>();
    for (const e of seen) {
      const k = positionKey(parseLsn(e.position.commitLsn), e.position.seq);
      const prev = last.get(e.node.id ?? '');
      if (prev) expect(k > prev).toBe(true);
      last.set(e.node.id ?? '', k);
    }

    // EventBridge: only the routed labels, Source and DetailType set, the 2 MB doc as a claim
    // check that the consumer helper resolves transparently.
    expect(new Set(eventBridge.events.map((e) => (e.detail as NodeEvent).node.label))).toEqual(new Set(['orders', 'docs']));
    expect(eventBridge.events.filter((e) => (e.detail as NodeEvent).node.label === 'orders')).toHaveLength(3);
    for (const e of eventBridge.events) {
      expect(e.source).toBe('pgrelay.shop');
      expect(e.detailType).toBe((e.detail as NodeEvent).type);
    }
    const docRef = eventBridge.events.find((e) => (e.detail as NodeEvent).node.label === 'docs')!;
    expect(docRef.detail).toHaveProperty('payloadRef');
    const fromBus: NodeEvent[] = [];
    const busConsumer = nodeHandler({ onInserted: (e) => void fromBus.push(e), onUpdated: (e) => void fromBus.push(e) }, { payloads });
    for (const [i, e] of eventBridge.events.entries()) {
      const envelope: EventBridgeEvent = { version: '0', id: String(i), 'detail-type': e.detailType, source: e.source, account: '000000000000', time: new Date(0).toISOString(), region: 'us-east-1', resources: [], detail: e.detail };
      await busConsumer(envelope);
    }
    const docFromBus = fromBus.find((e) => e.node.label === 'docs')!;
    expect(createHash('sha256').update(String(docFromBus.node.properties.body)).digest('hex')).toBe(docHash);

    // The poison record: retried to the redrive count, then in the DLQ, with the reason logged.
    await waitFor(
      async () => {
        await invokeFromQueue(client, changesUrl, (e) => transform.handle(e.Records), { visibilityTimeoutSeconds: 1 });
        return (await drainQueue(client, dlqUrlOf(changesUrl), { waitTimeSeconds: 0 })).some((m) => m.body.includes('explode'));
      },
      { timeoutMs: 30_000, intervalMs: 1, message: 'poison record in the DLQ' },
    );
    expect(logs.some((l) => l.level === 'error' && l.msg.startsWith('record cannot be read'))).toBe(true);
    payloads.destroy();
    client.destroy();
  });
});
