/**
 * Bootstrap across key shapes and table kinds (composite text + uuid, enum, partitioned, empty,
 * TOASTed columns changed during a chunk's window), a gap repair whose sweep removes rows deleted
 * while their changes were lost, a commit streamed before it is visible, and the refusals.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { changeBatch, changeBatchRef } from '#core/change-event.ts';
import { readBootstrapRequests, requestBootstrap, startBootstrap } from '#shared/bootstrap-state.ts';
import { s3PayloadStore } from '#shared/s3-payload-store.ts';
import { createTestBucket } from '#test/helpers/s3.ts';
import { ensureStateSchema } from '#shared/source-state.ts';
import { startTestPostgres, withClient, createTestDatabase } from '#test/helpers/postgres.ts';
import { replayChanges } from '#test/helpers/replay.ts';
import { onCleanup, runCleanups, runStreamer, setupDbAndQueue, type Db, type Queue } from '#test/helpers/scenario.ts';
import { drainQueue, testFifoQueue, type ReceivedMessage } from '#test/helpers/sqs.ts';
import { receivedOf, slotNameFor } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';

afterEach(runCleanups);

const PARTITIONS = 4;
const BOOTSTRAP = { pollIntervalMs: 100, chunkMinRows: 50, chunkMaxRows: 500 };

async function collect(queue: Queue, into: ReceivedMessage[], until: (all: ReceivedMessage[]) => boolean, timeoutMs = 120_000): Promise<void> {
  await waitFor(
    async () => {
      into.push(...(await drainQueue(queue.client, queue.queueUrl, { waitTimeSeconds: 0 })));
      return until(into);
    },
    { timeoutMs, intervalMs: 50, message: () => `${receivedOf(into).length} changes received` },
  );
}

const completions = (ms: ReceivedMessage[], table: string) => receivedOf(ms).filter((c) => c.op === 'bootstrap.completed' && c.table === table);

async function request(db: Db, tables: string[], reason: 'operator' | 'gap' = 'operator'): Promise<void> {
  await withClient(db.url, async (c) => {
    await ensureStateSchema(c, 'pgrelay');
    await requestBootstrap(c, 'pgrelay', slotNameFor(db.url), tables, { reason, by: 'test', ...(reason === 'gap' ? { gapAfterLsn: '0/1', gapUntilLsn: '0/2' } : {}) });
  });
}

/** The replayed rows of `table`, keyed like the rows `sql` returns (`keyOf` builds the same key object). */
async function expectReplay(db: Db, received: ReceivedMessage[], table: string, sql: string, keyOf: (row: Record<string, unknown>) => Record<string, unknown>, opts: { sweep?: boolean } = {}): Promise<void> {
  const replayed = replayChanges(received, opts).tables.get(table) ?? new Map();
  const { rows } = await withClient(db.url, (c) => c.query<Record<string, unknown>>(sql));
  const expected = new Map(rows.map((r) => [JSON.stringify(keyOf(r)), r]));
  expect([...replayed.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [k, v] of expected) expect(replayed.get(k), k).toEqual(v);
}

describe('bootstrap: key shapes and table kinds', () => {
  it('a composite text + uuid key, an enum key, a partitioned table read through its root, and an empty table', async () => {
    const { db, queue } = await setupDbAndQueue(
      'boot_shapes',
      `CREATE TYPE tier AS ENUM ('gold', 'silver', 'bronze');
       CREATE TABLE members (region text COLLATE "en-x-icu", id uuid, name text, PRIMARY KEY (region, id));
       INSERT INTO members SELECT (ARRAY['ä-north', 'Zürich', 'south', 'East', 'éast'])[1 + g % 5], md5(g::text)::uuid, 'm' || g FROM generate_series(1, 2000) g;
       CREATE TABLE tiers (level tier PRIMARY KEY, discount numeric(5, 2));
       INSERT INTO tiers VALUES ('bronze', 1.50), ('gold', 10.00), ('silver', 5.25);
       CREATE TABLE events (id bigint, at date, note text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
       CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
       CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
       INSERT INTO events SELECT g, DATE '2025-06-01' + (g % 400), 'e' || g FROM generate_series(1, 1500) g;
       CREATE TABLE nothing_yet (id int PRIMARY KEY);`,
    );
    const tables = ['public.members', 'public.tiers', 'public.events', 'public.nothing_yet'];
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables, partitions: PARTITIONS, bootstrap: { ...BOOTSTRAP, concurrency: 2 } });
    await r.ready;
    await request(db, tables);
    const received: ReceivedMessage[] = [];
    // Writes during the loads: a key of each kind changes, a row of each table goes and comes.
    await withClient(db.url, async (c) => {
      await c.query(`UPDATE members SET region = 'Zürich' || '-2' WHERE region = 'East' AND name IN ('m3', 'm8')`);
      await c.query(`DELETE FROM tiers WHERE level = 'silver'`);
      await c.query(`UPDATE events SET at = DATE '2026-02-01' WHERE id = 10`); // moves to the other partition
    });
    await collect(queue, received, (ms) => tables.every((t) => completions(ms, t.split('.')[1] as string).length >= PARTITIONS));
    for (const t of tables) expect(completions(received, t.split('.')[1] as string)[0]).toMatchObject({ bootstrap: { outcome: 'complete' } });
    await withClient(db.url, (c) => c.query('TRUNCATE nothing_yet'));
    await collect(queue, received, (ms) => receivedOf(ms).filter((c) => c.op === 'truncate' && c.table === 'nothing_yet').length >= PARTITIONS);
    await expectReplay(db, received, 'public.members', 'SELECT region, id, name FROM members', (row) => ({ region: row.region, id: row.id }));
    await expectReplay(db, received, 'public.tiers', 'SELECT level, discount FROM tiers', (row) => ({ level: row.level }));
    await expectReplay(db, received, 'public.events', `SELECT id::text AS id, to_char(at, 'YYYY-MM-DD') AS at, note FROM events`, (row) => ({ id: row.id, at: row.at }));
    expect(completions(received, 'nothing_yet')[0]).toMatchObject({ bootstrap: { outcome: 'complete', rows: 0 } });
    expect(receivedOf(received).filter((c) => c.op === 'snapshot' && c.table.startsWith('events_'))).toEqual([]);
  });

  it('a TOASTed column left out of updates during a chunk\'s window: its rows are read again, so every row arrives whole', async () => {
    const { db, queue } = await setupDbAndQueue(
      'boot_toast',
      `CREATE TABLE docs (id int PRIMARY KEY, big text, n int NOT NULL);
       ALTER TABLE docs ALTER COLUMN big SET STORAGE EXTERNAL;
       INSERT INTO docs SELECT g, repeat(md5(g::text), 100), 0 FROM generate_series(1, 3000) g;
       CREATE TABLE sentinel (id int PRIMARY KEY);`,
    );
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['docs', 'sentinel'], partitions: PARTITIONS, bootstrap: BOOTSTRAP });
    await r.ready;
    const received: ReceivedMessage[] = [];
    let loaded = false;
    // Updates that do not touch `big`: pgoutput sends it as unchanged (no REPLICA IDENTITY FULL).
    const writing = withClient(db.url, async (c) => {
      let n = 0;
      while (!loaded) await c.query('UPDATE docs SET n = n + 1 WHERE id = $1', [1 + ((n++ * 37) % 3000)]);
      return n;
    });
    await request(db, ['public.docs']);
    await collect(queue, received, (ms) => completions(ms, 'docs').length >= PARTITIONS);
    loaded = true;
    expect(await writing).toBeGreaterThan(50);
    // Everything before a TRUNCATE has arrived once it reached every partition.
    await withClient(db.url, (c) => c.query('TRUNCATE sentinel'));
    await collect(queue, received, (ms) => receivedOf(ms).filter((c) => c.op === 'truncate' && c.table === 'sentinel').length >= PARTITIONS);
    const updates = receivedOf(received).filter((c) => c.op === 'update' && c.unchanged?.includes('big'));
    expect(updates.length).toBeGreaterThan(10);
    // Every row, replayed, holds its big value: none is missing its TOASTed column.
    await expectReplay(db, received, 'public.docs', 'SELECT id, big, n FROM docs', (row) => ({ id: row.id }));
  });
});

describe('bootstrap: a row too large for an SQS message', () => {
  it('travels by claim check, as a stream change would', async () => {
    const { db, queue } = await setupDbAndQueue(
      'boot_large',
      `CREATE TABLE docs (id int PRIMARY KEY, body text);
       INSERT INTO docs VALUES (1, 'small');
       INSERT INTO docs SELECT 2, string_agg(md5(g::text), '') FROM generate_series(1, 65536) g;
       INSERT INTO docs VALUES (3, 'small too');`,
    );
    const bucket = await createTestBucket(queue.endpoint, 'boot-large');
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['docs'], partitions: 1, bootstrap: BOOTSTRAP, largePayloads: { bucket, prefix: 'relay/' }, s3Endpoint: queue.endpoint });
    await r.ready;
    await request(db, ['public.docs']);
    const received: ReceivedMessage[] = [];
    await collect(queue, received, (ms) => ms.some((m) => m.body.includes('"bootstrap.completed"')));
    const store = s3PayloadStore({ bucket, prefix: '', region: 'us-east-1', endpoint: queue.endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    onCleanup(async () => store.destroy());
    const refs = received.map((m) => JSON.parse(m.body) as { payloadRef?: unknown }).filter((b) => b.payloadRef !== undefined);
    expect(refs).toHaveLength(1);
    const batch = changeBatch.parse(JSON.parse(await store.get(changeBatchRef.parse(refs[0]).payloadRef)));
    const big = batch.changes.find((c) => c.op === 'snapshot');
    expect(big).toMatchObject({ op: 'snapshot', key: { id: 2 } });
    const length = await withClient(db.url, async (c) => (await c.query<{ n: number }>('SELECT length(body) AS n FROM docs WHERE id = 2')).rows[0]?.n);
    expect(big?.op === 'snapshot' ? String(big.after.body).length : 0).toBe(length);
    const inline = receivedOf(received.filter((m) => !m.body.includes('payloadRef'))).filter((c) => c.op === 'snapshot');
    expect(inline.map((c) => (c.op === 'snapshot' ? c.key.id : 0)).sort()).toEqual([1, 3]);
  });
});

describe('bootstrap: a gap repair', () => {
  it('rows deleted while their changes were lost disappear with the sweep at completion, and only with it', async () => {
    const { db, queue } = await setupDbAndQueue('boot_gap', `CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 1000) g`);
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['items'], partitions: PARTITIONS, bootstrap: BOOTSTRAP });
    await r.ready;
    const received: ReceivedMessage[] = [];
    await request(db, ['public.items']);
    await collect(queue, received, (ms) => completions(ms, 'items').length >= PARTITIONS);
    // Lost changes: deleted (and one updated) while the table is out of the publication, so the stream never carries them.
    await withClient(db.url, async (c) => {
      await c.query('ALTER PUBLICATION pgrelay_default DROP TABLE items');
      await c.query('DELETE FROM items WHERE id % 10 = 0');
      await c.query(`UPDATE items SET v = 'lost update' WHERE id = 1`);
      await c.query('ALTER PUBLICATION pgrelay_default ADD TABLE items');
    });
    await request(db, ['public.items'], 'gap');
    await collect(queue, received, (ms) => completions(ms, 'items').length >= 2 * PARTITIONS);
    const repair = completions(received, 'items').find((c) => c.op === 'bootstrap.completed' && c.bootstrap.reason === 'gap');
    expect(repair).toMatchObject({ bootstrap: { reason: 'gap', gap: { afterLsn: '0/1', untilLsn: '0/2' }, outcome: 'complete' } });
    await expectReplay(db, received, 'public.items', 'SELECT id, v FROM items', (row) => ({ id: row.id }), { sweep: true });
    // Without the sweep, the deleted rows would still be there.
    const unswept = replayChanges(received).tables.get('public.items');
    expect(unswept?.size).toBe(1000);
  });
});

describe('bootstrap: a commit streamed before it is visible', () => {
  it('the chunk whose snapshot cannot see a transaction already streamed is read again, and the row arrives with its newer value', async () => {
    // A server of its own: synchronous_standby_names is server-wide.
    const server = await startTestPostgres({ flags: ['synchronous_commit=local'] });
    onCleanup(() => server.stop());
    const db = await createTestDatabase(server.url, 'boot_sync');
    const queue = await testFifoQueue('boot-sync');
    onCleanup(async () => {
      queue.client.destroy();
      await db.drop();
    });
    await withClient(db.url, (c) => c.query(`CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'old' FROM generate_series(1, 200) g`));
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['items'], partitions: PARTITIONS, bootstrap: BOOTSTRAP });
    await r.ready;
    await withClient(server.url, async (c) => {
      await c.query(`ALTER SYSTEM SET synchronous_standby_names = 'nobody'`);
      await c.query('SELECT pg_reload_conf()');
    });
    onCleanup(() => withClient(server.url, async (c) => {
      await c.query('ALTER SYSTEM RESET synchronous_standby_names');
      await c.query('SELECT pg_reload_conf()');
    }).then(() => undefined));
    // This commit waits for a standby that never answers: it is in the WAL (and streamed), not yet visible.
    const holder = await import('pg').then((m) => new m.default.Client({ connectionString: db.url }));
    await holder.connect();
    onCleanup(() => holder.end().catch(() => undefined));
    const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    await holder.query('SET synchronous_commit = on');
    const hung = holder.query(`UPDATE items SET v = 'new' WHERE id = 100`).catch((err: unknown) => err);
    const received: ReceivedMessage[] = [];
    await collect(queue, received, (ms) => receivedOf(ms).some((c) => c.op === 'update'), 30_000);
    const visible = await withClient(db.url, (c) => c.query<{ v: string }>('SELECT v FROM items WHERE id = 100'));
    expect(visible.rows[0]?.v).toBe('old'); // streamed, and still invisible
    await request(db, ['public.items']);
    // Either the chunk is refused (right), or the load completes with the row as the snapshot saw it (wrong: caught below).
    const refused = () => r.logs.some((l) => String(l.msg).startsWith('bootstrap chunk read again'));
    await waitFor(async () => refused() || (await withClient(db.url, (c) => readBootstrapRequests(c, 'pgrelay', slotNameFor(db.url)))).get('public.items')?.state === 'done', {
      timeoutMs: 30_000,
      message: 'the chunk to be refused, or the load to end',
    });
    // Release the commit (cancelling the wait leaves it committed): now the chunk can be read.
    await withClient(server.url, (c) => c.query('SELECT pg_cancel_backend($1)', [holderPid]));
    await hung;
    await collect(queue, received, (ms) => completions(ms, 'items').length >= PARTITIONS);
    await expectReplay(db, received, 'public.items', 'SELECT id, v FROM items', (row) => ({ id: row.id }));
    expect(refused()).toBe(true);
  });
});

describe('bootstrap: refusals', () => {
  it('a request for a table the streamer does not stream, and a table dropped before its load, end failed with the reason', async () => {
    const { db, queue } = await setupDbAndQueue('boot_refuse', 'CREATE TABLE kept (id int PRIMARY KEY); CREATE TABLE dropped (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY)');
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['kept', 'dropped'], partitions: 2, bootstrap: BOOTSTRAP });
    await r.ready;
    await withClient(db.url, (c) => c.query('DROP TABLE dropped'));
    await request(db, ['public.other', 'public.dropped']);
    // A load under way for a table since taken out of the config (as after a redeploy): requested
    // and started in one transaction, so the streamer never sees it merely requested.
    await withClient(db.url, async (c) => {
      await c.query('BEGIN');
      await requestBootstrap(c, 'pgrelay', slotNameFor(db.url), ['public.gone'], { reason: 'operator', by: 'test' });
      const s = (await readBootstrapRequests(c, 'pgrelay', slotNameFor(db.url))).get('public.gone');
      await startBootstrap(c, 'pgrelay', slotNameFor(db.url), 'public.gone', { id: 'gone-load', upperKey: null, rowsEstimated: 0, requestStamp: s?.requestStamp ?? '' });
      await c.query('COMMIT');
    });
    const slot = slotNameFor(db.url);
    await waitFor(async () => {
      const s = await withClient(db.url, (c) => readBootstrapRequests(c, 'pgrelay', slot));
      return s.get('public.other')?.state === 'failed' && s.get('public.dropped')?.state === 'failed' && s.get('public.gone')?.state === 'failed';
    }, { timeoutMs: 30_000, message: 'both requests failed' });
    const s = await withClient(db.url, (c) => readBootstrapRequests(c, 'pgrelay', slot));
    expect(s.get('public.other')?.detail).toContain("is not one of the streamer's tables");
    expect(s.get('public.dropped')?.detail).toMatch(/does not exist|no longer exists/);
    expect(s.get('public.gone')).toMatchObject({ loadId: 'gone-load', detail: expect.stringContaining("is not one of the streamer's tables") });
  });
});
