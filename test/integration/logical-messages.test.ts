/**
 * Logical decoding messages (`pg_logical_emit_message`), the transactional outbox without a
 * table: delivered for configured prefixes only, transactional ones at their transaction's
 * position and only if it commits, non-transactional ones at their own position whatever
 * their transaction does; ordered per prefix; then, through the real transform, as
 * `message.emitted` events on the nodes queue and EventBridge.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { graphNodeEvent, type MessageEvent } from '#core/change-event.ts';
import { parseTransformConfig } from '#core/config.ts';
import { messagePartition } from '#core/partition.ts';
import { comparePositions, parseLsn } from '#core/position.ts';
import { createTransform } from '#transform/handler.ts';
import { invokeFromQueue } from '#dev/lambda-event-source.ts';
import { startFakeEventBridge } from '#test/helpers/fake-eventbridge.ts';
import { withClient } from '#test/helpers/postgres.ts';
import { confirmedLsn, onCleanup, runCleanups, runStreamer, setupDbAndQueue } from '#test/helpers/scenario.ts';
import { createFifoQueue, drainQueue, receiveUntil, type ReceivedMessage } from '#test/helpers/sqs.ts';
import { changesOf, logicalMessagesOf } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';

afterEach(runCleanups);

const PARTITIONS = 4;
const DDL = 'CREATE TABLE orders (id int PRIMARY KEY, status text)';

/** A receiveUntil predicate: a message with `content` (of `prefix`) arrived. */
function untilMessage(prefix: string, content: string) {
  return (ms: ReceivedMessage[]) => logicalMessagesOf(ms).some((m) => m.message.prefix === prefix && m.message.content === content);
}

describe('logical decoding messages', () => {
  it('delivers configured prefixes: transactional ones in their committed transaction, non-transactional ones on their own; never a rolled-back transactional one, an unconfigured prefix or pgrelay\'s own', async () => {
    const { db, queue } = await setupDbAndQueue('messages', DDL);
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['orders'], partitions: PARTITIONS, messages: { prefixes: ['outbox', 'audit'] } });
    await r.ready;
    const lsns = await withClient(db.url, async (c) => {
      await c.query('BEGIN');
      await c.query(`INSERT INTO orders VALUES (1, 'new')`);
      await c.query(`SELECT pg_logical_emit_message(true, 'outbox', '{"order":1,"event":"placed"}')`);
      await c.query(`SELECT pg_logical_emit_message(true, 'elsewhere', 'not configured')`);
      await c.query(`UPDATE orders SET status = 'paid' WHERE id = 1`);
      await c.query('COMMIT');

      await c.query('BEGIN');
      await c.query(`INSERT INTO orders VALUES (2, 'never')`);
      await c.query(`SELECT pg_logical_emit_message(true, 'outbox', 'rolled back')`);
      // Non-transactional: written at once, kept whatever the transaction does.
      const audit = await c.query<{ lsn: string }>(`SELECT pg_logical_emit_message(false, 'audit', 'seen despite the rollback')::text AS lsn`);
      await c.query('ROLLBACK');

      // Not valid UTF-8: delivered as base64.
      const binary = await c.query<{ lsn: string }>(`SELECT pg_logical_emit_message(false, 'audit', '\\xdeadbeef'::bytea)::text AS lsn`);
      await c.query(`SELECT pg_logical_emit_message(false, 'pgrelay.heartbeat', '{}')`);
      await c.query(`SELECT pg_logical_emit_message(true, 'outbox', 'last')`);
      return { audit: audit.rows[0]!.lsn, binary: binary.rows[0]!.lsn };
    });
    // 'last' closes the outbox group (a rolled-back outbox message would come before it); the audit group holds two.
    const received = await receiveUntil(
      queue.client,
      queue.queueUrl,
      (ms) => untilMessage('outbox', 'last')(ms) && logicalMessagesOf(ms).filter((m) => m.message.prefix === 'audit').length >= 2 && changesOf(ms).length >= 2,
      20_000,
    );
    // Groups arrive side by side: stream order is position order.
    const messages = logicalMessagesOf(received).sort((x, y) => comparePositions(x.position, y.position));
    expect(messages.map((m) => [m.message.prefix, m.message.content, m.message.encoding, m.message.transactional])).toEqual([
      ['outbox', '{"order":1,"event":"placed"}', 'utf8', true],
      ['audit', 'seen despite the rollback', 'utf8', false],
      ['audit', '3q2+7w==', 'base64', false],
      ['outbox', 'last', 'utf8', true],
    ]);
    const rows = changesOf(received);
    expect(rows.map((c) => [c.op, c.key])).toEqual([
      ['insert', { id: 1 }],
      ['update', { id: 1 }],
    ]);
    // The transactional message sits between the insert and the update of its transaction.
    const [placed, audit, binary] = messages;
    expect(placed?.tx).toEqual(rows[0]?.tx);
    expect(placed?.position).toEqual({ commitLsn: rows[0]?.position.commitLsn, seq: 1 });
    expect(rows[1]?.position.seq).toBe(2);
    // A non-transactional message: its own LSN (what pg_logical_emit_message returned), no transaction.
    expect(audit).toMatchObject({ position: { commitLsn: lsns.audit, seq: 0 }, tx: null });
    expect(binary).toMatchObject({ position: { commitLsn: lsns.binary, seq: 0 }, tx: null });
    // Grouped by prefix: one group per prefix, in order.
    for (const m of messages) expect(m.groupId).toBe(`p${messagePartition(m.message.prefix, PARTITIONS)}`);
  });

  it('keeps one prefix\'s messages in order inside and around a transaction of 20,000 rows, and a restart does not send a confirmed one again', async () => {
    const { db, queue } = await setupDbAndQueue('messages_big', DDL);
    const config = { dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['orders'], partitions: PARTITIONS, messages: { prefixes: ['outbox'] } };
    const first = runStreamer(config);
    await first.ready;
    const before = await withClient(db.url, async (c) => {
      const lsn = (await c.query<{ lsn: string }>(`SELECT pg_logical_emit_message(false, 'outbox', 'before')::text AS lsn`)).rows[0]!.lsn;
      await c.query('BEGIN');
      await c.query(`SELECT pg_logical_emit_message(true, 'outbox', 'tx start')`);
      await c.query(`INSERT INTO orders SELECT g, 'bulk' FROM generate_series(1, 10000) g`);
      await c.query(`SELECT pg_logical_emit_message(true, 'outbox', 'tx middle')`);
      await c.query(`INSERT INTO orders SELECT g, 'bulk' FROM generate_series(10001, 20000) g`);
      await c.query(`SELECT pg_logical_emit_message(true, 'outbox', 'tx end')`);
      await c.query('COMMIT');
      await c.query(`SELECT pg_logical_emit_message(false, 'outbox', 'after')`);
      return lsn;
    });
    const received = await receiveUntil(queue.client, queue.queueUrl, (ms) => untilMessage('outbox', 'after')(ms) && changesOf(ms).length >= 20_000, 60_000);
    expect(changesOf(received)).toHaveLength(20_000);
    const messages = logicalMessagesOf(received);
    expect(messages.map((m) => m.message.content)).toEqual(['before', 'tx start', 'tx middle', 'tx end', 'after']);
    expect(messages.map((m) => m.position.seq)).toEqual([0, 0, 10_001, 20_002, 0]);
    for (let i = 1; i < messages.length; i++) expect(comparePositions(messages[i - 1]!.position, messages[i]!.position)).toBeLessThan(0);
    expect(new Set(messages.map((m) => m.groupId))).toEqual(new Set([`p${messagePartition('outbox', PARTITIONS)}`]));

    // Once confirmed, a restart streams from after the message, not from it.
    const last = messages[messages.length - 1]!;
    await waitFor(async () => (await confirmedLsn(db.url)) >= parseLsn(last.position.commitLsn), { timeoutMs: 20_000, message: 'the last message to be confirmed' });
    expect(parseLsn(last.position.commitLsn)).toBeGreaterThan(parseLsn(before));
    await first.stop();
    const second = runStreamer(config);
    await second.ready;
    await withClient(db.url, (c) => c.query(`SELECT pg_logical_emit_message(true, 'outbox', 'after restart')`));
    const again = await receiveUntil(queue.client, queue.queueUrl, untilMessage('outbox', 'after restart'), 20_000);
    expect(logicalMessagesOf(again).map((m) => m.message.content)).toEqual(['after restart']);
    // Counted before SQS deduplication, which would hide a resend within its five minutes.
    expect(second.streamer.stats().changes).toBe(1);
  });

  it('the transform publishes them as message.emitted on the nodes queue (one group per prefix) and on EventBridge', async () => {
    const { db, queue } = await setupDbAndQueue('messages_out', DDL);
    const nodesUrl = await createFifoQueue(queue.endpoint, 'messages-out-nodes');
    const eventBridge = await startFakeEventBridge({ buses: ['bus'] });
    onCleanup(() => eventBridge.close());
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['orders'], partitions: PARTITIONS, messages: { prefixes: ['outbox'] } });
    await r.ready;
    await withClient(db.url, async (c) => {
      for (let i = 1; i <= 5; i++) await c.query(`SELECT pg_logical_emit_message(true, 'outbox', $1)`, [`m${i}`]);
      await c.query(`INSERT INTO orders VALUES (1, 'new')`);
    });
    const transform = createTransform(
      // A label filter lets messages through: they have no label.
      parseTransformConfig({ sourceId: 'shop', tables: ['orders'], outputs: { nodesQueue: { queueUrl: nodesUrl, labels: ['orders'] }, eventBridge: { busName: 'bus', labels: ['orders'] } }, sqsEndpoint: queue.endpoint, eventBridgeEndpoint: eventBridge.endpoint }),
      { credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, log: { info: () => {}, warn: () => {}, error: () => {} } },
    );
    const nodes: ReceivedMessage[] = [];
    const eventsOf = (ms: ReceivedMessage[]) => ms.flatMap((m) => (JSON.parse(m.body) as { events: unknown[] }).events.map((e) => graphNodeEvent.parse(e)));
    await waitFor(
      async () => {
        await invokeFromQueue(queue.client, queue.queueUrl, (e) => transform.handle(e.Records), { waitTimeSeconds: 0 });
        nodes.push(...(await drainQueue(queue.client, nodesUrl, { waitTimeSeconds: 0 })));
        return eventsOf(nodes).length >= 6;
      },
      { timeoutMs: 20_000, message: 'five messages and one node on the nodes queue' },
    );
    const messageEvents = eventsOf(nodes).filter((e): e is MessageEvent => e.type === 'message.emitted');
    expect(messageEvents.map((e) => e.message.content)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expect(messageEvents.every((e) => e.source === 'shop' && e.tx !== null && e.message.prefix === 'outbox')).toBe(true);
    const groups = new Set(nodes.filter((m) => eventsOf([m]).some((e) => e.type === 'message.emitted')).map((m) => m.groupId));
    expect(groups).toEqual(new Set([`n${messagePartition('outbox', PARTITIONS)}`]));
    // EventBridge: DetailType message.emitted, the prefix in the detail for rules to match.
    const bus = eventBridge.events.filter((e) => e.detailType === 'message.emitted');
    expect(bus.map((e) => (e.detail as MessageEvent).message.content).sort()).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expect(bus.every((e) => e.source === 'pgrelay.shop' && (e.detail as MessageEvent).message.prefix === 'outbox')).toBe(true);
  });
});
