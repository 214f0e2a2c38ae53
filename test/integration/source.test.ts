import { afterEach, describe, expect, it } from 'vitest';
import { withClient } from '#test/helpers/postgres.ts';
import { runCleanups, runStreamer, setupDbAndQueue } from '#test/helpers/scenario.ts';

afterEach(runCleanups);

describe('source preparation', () => {
  it('refuses tableKeys on a partitioned table whose partitions lack REPLICA IDENTITY FULL, naming each', async () => {
    const { db, queue } = await setupDbAndQueue(
      'partfull',
      `CREATE TABLE ev (kind text NOT NULL, at date NOT NULL, note text) PARTITION BY RANGE (at);
       CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
       CREATE TABLE ev_2026 PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
       ALTER TABLE ev REPLICA IDENTITY FULL; ALTER TABLE ev_2025 REPLICA IDENTITY FULL;`,
    );
    const cfg = { dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['ev'], tableKeys: { ev: ['kind', 'at'] } };
    const refused = runStreamer(cfg);
    await expect(refused.done).rejects.toMatchObject({ code: 'PGRELAY_PARTITION_IDENTITY' });
    await expect(refused.done).rejects.toThrow('ALTER TABLE public.ev_2026 REPLICA IDENTITY FULL;');
    await withClient(db.url, (c) => c.query('ALTER TABLE ev_2026 REPLICA IDENTITY FULL'));
    const ok = runStreamer(cfg);
    await ok.ready;
  });

  // Regression: a publication made with publish = 'insert' streamed inserts only; updates and
  // deletes were dropped without a word.
  it('completes a publication that leaves out operations, or refuses it when it may not manage it', async () => {
    const { db, queue } = await setupDbAndQueue('pubops', `CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION pgrelay_default FOR TABLE t WITH (publish = 'insert')`);
    const refused = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['t'], managePublication: false });
    await expect(refused.done).rejects.toMatchObject({ code: 'PGRELAY_PUBLICATION' });
    await expect(refused.done).rejects.toThrow("does not publish update, delete, truncate: those changes would be lost; run ALTER PUBLICATION \"pgrelay_default\" SET (publish = 'insert, update, delete, truncate')");

    const managed = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['t'] });
    await managed.ready;
    const pub = await withClient(db.url, (c) => c.query(`SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = 'pgrelay_default'`));
    expect(pub.rows[0]).toEqual({ pubinsert: true, pubupdate: true, pubdelete: true, pubtruncate: true });
  });
});
