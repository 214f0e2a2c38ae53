import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { testFifoQueue } from '#test/helpers/sqs.ts';
import { receiveChanges, startStreamer, streamerConfig, type RunningStreamer } from '#test/helpers/streamer.ts';
import type { SQSClient } from '@aws-sdk/client-sqs';

describe('streamer: inserts, updates, deletes reach SQS', () => {
  let db: Awaited<ReturnType<typeof testDatabase>>;
  let queue: { endpoint: string; queueUrl: string; client: SQSClient };
  let running: RunningStreamer;

  beforeAll(async () => {
    db = await testDatabase('basic');
    queue = await testFifoQueue('basic');
    await withClient(db.url, (c) => c.query('CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)'));
    running = startStreamer(streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['items'], partitions: 4 }));
    await running.ready;
  });

  afterAll(async () => {
    await running?.stop();
    queue?.client.destroy();
    await db?.drop();
  });

  it('delivers each committed change with key, rows and position', async () => {
    await withClient(db.url, async (c) => {
      await c.query(`INSERT INTO items VALUES (1, 'apple', 3), (2, 'pear', 5)`);
      await c.query(`UPDATE items SET qty = 4 WHERE id = 1`);
      await c.query(`DELETE FROM items WHERE id = 2`);
    });
    const changes = await receiveChanges(queue.client, queue.queueUrl, (cs) => cs.length >= 4);
    expect(changes).toHaveLength(4);
    const byOp = (op: string) => changes.filter((c) => c.op === op);
    expect(byOp('insert').map((c) => c.key)).toEqual(expect.arrayContaining([{ id: '1' }, { id: '2' }]));
    expect(byOp('update')[0]).toMatchObject({ table: 'items', schema: 'public', key: { id: '1' }, after: { id: '1', name: 'apple', qty: 4 }, before: null });
    expect(byOp('delete')[0]).toMatchObject({ key: { id: '2' }, after: null, before: null });
    for (const c of changes) {
      expect(c.position.commitLsn).toBe(c.tx.commitLsn);
      expect(c.tx.commitTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      expect(c.groupId).toBe(`p${c.partition}`);
    }
  });
});
