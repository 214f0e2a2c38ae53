import { afterEach, describe, expect, it } from 'vitest';
import { partitionOf } from '#core/partition.ts';
import { parseLsn, positionKey } from '#core/position.ts';
import { readSlot } from '#streamer/source.ts';
import { withClient } from '#test/helpers/postgres.ts';
import { expectOrderPerNode, onCleanup, runCleanups, runStreamer, setupDbAndQueue } from '#test/helpers/scenario.ts';
import { startSqsFaultProxy, type FaultProxy } from '#test/helpers/sqs-fault-proxy.ts';
import { receiveUntil } from '#test/helpers/sqs.ts';
import { changesOf, slotNameFor, type ReceivedChange } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';

afterEach(runCleanups);

describe('delivery', () => {
  it('partitions by node, batches many changes per message, keeps order per node, and derives dedup ids from positions', async () => {
    const { db, queue } = await setupDbAndQueue('partition', 'CREATE TABLE acc (id int PRIMARY KEY, balance int)');
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['acc'], partitions: 4, batch: { lingerMs: 50, maxChanges: 100 } });
    await r.ready;
    await withClient(db.url, async (c) => {
      await c.query('INSERT INTO acc SELECT g, 0 FROM generate_series(1, 40) g');
      for (let round = 1; round <= 5; round++) await c.query('UPDATE acc SET balance = $1', [round]);
    });
    const messages = await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).length >= 240, 30_000);
    const changes = changesOf(messages);
    expect(changes).toHaveLength(240);
    expect(messages.length).toBeLessThan(240 / 5); // many changes per message
    for (const m of messages) {
      const body = JSON.parse(m.body) as { partition: number; changes: ReceivedChange[] };
      const first = body.changes[0]!;
      const last = body.changes[body.changes.length - 1]!;
      expect(m.groupId).toBe(`p${body.partition}`);
      expect(m.deduplicationId).toBe(
        `${body.partition}.${positionKey(parseLsn(first.position.commitLsn), first.position.seq)}.${positionKey(parseLsn(last.position.commitLsn), last.position.seq)}`,
      );
      for (const c of body.changes) expect(partitionOf(`${c.schema}.${c.table}`, JSON.stringify(c.key), 4)).toBe(body.partition);
    }
    expect(new Set(changes.map((c) => c.partition)).size).toBe(4);
    expectOrderPerNode(changes);
    // Every node ends at balance 5, after its four earlier updates.
    const finalBalance = new Map(changes.filter((c) => c.op === 'update').map((c) => [c.key?.id, c.after?.balance]));
    expect([...finalBalance.values()].every((b) => b === 5)).toBe(true);
  });

  it('retries only the failed entries of a partial SendMessageBatch failure, losing and reordering nothing', async () => {
    const { db, queue } = await setupDbAndQueue('partial', 'CREATE TABLE acc (id int PRIMARY KEY, balance int)');
    // Every message to group p1 fails twice, and every third message elsewhere fails once.
    let n = 0;
    const proxy: FaultProxy = await startSqsFaultProxy(queue.endpoint, (e, attempt) =>
      (e.MessageGroupId === 'p1' && attempt <= 2) || (attempt === 1 && ++n % 3 === 0) ? { code: 'InternalError', senderFault: false } : undefined,
    );
    onCleanup(() => proxy.close());
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: proxy.endpoint, tables: ['acc'], partitions: 3, batch: { lingerMs: 10, maxChanges: 10 } });
    await r.ready;
    await withClient(db.url, async (c) => {
      await c.query('INSERT INTO acc SELECT g, 0 FROM generate_series(1, 30) g');
      for (let round = 1; round <= 4; round++) await c.query('UPDATE acc SET balance = $1', [round]);
      await c.query('DELETE FROM acc WHERE id <= 10');
    });
    const expected = 30 + 4 * 30 + 10;
    const changes = changesOf(await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).length >= expected, 30_000));
    expect(changes).toHaveLength(expected);
    expect(proxy.failed.length).toBeGreaterThan(3);
    expect(r.streamer.stats().failedEntries).toBe(proxy.failed.length);
    expectOrderPerNode(changes);
    // The slot is confirmed up to the last commit once everything was accepted, and never past
    // what the server has written (other databases of the server may move its WAL on meanwhile).
    const lastCommit = changes.reduce((m, c) => (parseLsn(c.position.commitLsn) > m ? parseLsn(c.position.commitLsn) : m), 0n);
    await waitFor(async () => parseLsn(r.streamer.stats().confirmedLsn) >= lastCommit && r.streamer.stats().inFlightBytes === 0);
    const endLsn = await withClient(db.url, async (c) => parseLsn((await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l));
    expect(parseLsn(r.streamer.stats().confirmedLsn)).toBeLessThanOrEqual(endLsn);
  });

  it('stops with a clear error and acknowledges nothing from a change too large for any SQS message', async () => {
    const { db, queue } = await setupDbAndQueue('toolarge', 'CREATE TABLE docs (id int PRIMARY KEY, body text)');
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['docs'], partitions: 1 });
    await r.ready;
    await withClient(db.url, (c) => c.query(`INSERT INTO docs VALUES (1, 'small')`));
    await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).length >= 1);
    await waitFor(async () => (await withClient(db.url, (c) => readSlot(c, slotNameFor(db.url))))!.active && r.streamer.stats().inFlightBytes === 0);
    const before = await withClient(db.url, async (c) => (await readSlot(c, slotNameFor(db.url)))!.confirmedFlushLsn);
    // ~1.5 MB of incompressible text: larger than SQS's 1 MiB message limit.
    await withClient(db.url, (c) => c.query(`INSERT INTO docs SELECT 2, string_agg(md5(g::text), '') FROM generate_series(1, 48000) g`));
    await expect(r.done).rejects.toMatchObject({ code: 'PGRELAY_CHANGE_TOO_LARGE' });
    await expect(r.done).rejects.toThrow(/does not fit in one SQS message/);
    const after = await withClient(db.url, async (c) => (await readSlot(c, slotNameFor(db.url)))!.confirmedFlushLsn);
    const bigCommit = await withClient(db.url, async (c) => parseLsn((await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l));
    expect(after).toBeGreaterThanOrEqual(before);
    expect(after).toBeLessThan(bigCommit);
    // A restart meets the same change and refuses it again: it is never skipped.
    const again = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['docs'], partitions: 1 });
    await expect(again.done).rejects.toMatchObject({ code: 'PGRELAY_CHANGE_TOO_LARGE' });
  });
});
