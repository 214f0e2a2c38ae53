/**
 * Bootstrap: a table's existing rows arrive as snapshot changes, framed by started/completed in
 * every partition, while the stream goes on; progress is recorded in the state schema.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseMonitorConfig } from '#monitor/config.ts';
import { runMonitor } from '#monitor/handler.ts';
import { ConnectionProvider } from '#shared/connection.ts';
import { waitFor } from '#test/helpers/wait.ts';
import { parseLsn } from '#core/position.ts';
import { requestBootstrap, readBootstrapRequests } from '#shared/bootstrap-state.ts';
import { ensureStateSchema } from '#shared/source-state.ts';
import { withClient } from '#test/helpers/postgres.ts';
import { runCleanups, runStreamer, setupDbAndQueue } from '#test/helpers/scenario.ts';
import { receiveUntil } from '#test/helpers/sqs.ts';
import { bootstrapOf, changesOf, slotNameFor } from '#test/helpers/streamer.ts';
import { replayChanges } from '#test/helpers/replay.ts';
import type { ReceivedMessage } from '#test/helpers/sqs.ts';

afterEach(runCleanups);

const PARTITIONS = 4;

describe('bootstrap', () => {
  it('loads every existing row as a snapshot change, framed by started and completed in every partition, and records it done', async () => {
    const { db, queue } = await setupDbAndQueue('boot_basic', `CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g`);
    const slot = slotNameFor(db.url);
    await withClient(db.url, async (c) => {
      await ensureStateSchema(c, 'pgrelay');
      await requestBootstrap(c, 'pgrelay', slot, ['public.items'], { reason: 'operator', by: 'test' });
    });
    const r = runStreamer({
      dbUrl: db.url,
      queueUrl: queue.queueUrl,
      sqsEndpoint: queue.endpoint,
      tables: ['items'],
      partitions: PARTITIONS,
      bootstrap: { pollIntervalMs: 100, chunkMinRows: 500 },
    });
    await r.ready;
    const messages = await receiveUntil(queue.client, queue.queueUrl, (ms) => bootstrapOf(ms).filter((c) => c.op === 'bootstrap.completed').length >= PARTITIONS, 60_000);
    const events = bootstrapOf(messages);
    const started = events.filter((c) => c.op === 'bootstrap.started');
    const completed = events.filter((c) => c.op === 'bootstrap.completed');
    const rows = events.filter((c) => c.op === 'snapshot');
    expect(started.map((c) => c.partition).sort()).toEqual([0, 1, 2, 3]);
    expect(completed.map((c) => c.partition).sort()).toEqual([0, 1, 2, 3]);
    const load = started[0]?.op === 'bootstrap.started' ? started[0].bootstrap : undefined;
    expect(load).toMatchObject({ reason: 'operator' });
    expect(completed[0]).toMatchObject({ bootstrap: { id: load?.id, outcome: 'complete', rows: 5000 } });
    expect(rows).toHaveLength(5000);
    expect(new Set(rows.map((c) => (c.op === 'snapshot' ? c.key.id : undefined))).size).toBe(5000);
    for (const c of rows) if (c.op === 'snapshot') expect(c).toMatchObject({ load: load?.id, tx: null, after: { id: c.key.id, name: `item ${String(c.key.id)}` } });
    const state = await withClient(db.url, (c) => readBootstrapRequests(c, 'pgrelay', slot));
    expect(state.get('public.items')).toMatchObject({ state: 'done', loadId: load?.id, rowsRead: 5000, lastKey: ['5000'] });
  });

  it('end to end with the monitor: a configured table that already holds rows is loaded with no operator action; a table with bootstrap off is not', async () => {
    const { db, queue } = await setupDbAndQueue(
      'boot_monitor',
      `CREATE TABLE orders (id int PRIMARY KEY, total numeric(10, 2)); INSERT INTO orders SELECT g, g * 1.25 FROM generate_series(1, 1200) g;
       CREATE TABLE audit (id int PRIMARY KEY); INSERT INTO audit SELECT generate_series(1, 10);`,
    );
    const slot = slotNameFor(db.url);
    const tables = ['orders', { table: 'audit', bootstrap: 'off' as const }];
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables, partitions: PARTITIONS, bootstrap: { pollIntervalMs: 100 } });
    await r.ready;
    // One monitor run, as the schedule would make within a minute of the deploy.
    const monitorConfig = parseMonitorConfig({ sourceId: 'boot', database: { url: db.url }, slotName: slot, publicationName: 'pgrelay_default', tables, heartbeat: false });
    const summary = await runMonitor(monitorConfig, { connections: new ConnectionProvider(monitorConfig.database), write: () => undefined });
    expect(summary.actions).toContainEqual({ kind: 'request-bootstrap', reason: 'initial', tables: ['public.orders'] });
    const messages = await receiveUntil(queue.client, queue.queueUrl, (ms) => bootstrapOf(ms).filter((c) => c.op === 'bootstrap.completed').length >= PARTITIONS, 60_000);
    expect(bootstrapOf(messages).filter((c) => c.op === 'snapshot')).toHaveLength(1200);
    expect(bootstrapOf(messages).every((c) => c.table === 'orders')).toBe(true);
    await waitFor(async () => (await withClient(db.url, (c) => readBootstrapRequests(c, 'pgrelay', slot))).get('public.orders')?.state === 'done', { timeoutMs: 10_000, message: 'the load recorded done' });
    expect((await withClient(db.url, (c) => readBootstrapRequests(c, 'pgrelay', slot))).has('public.audit')).toBe(false);
  });

  it('a TRUNCATE during the load starts it over; it still ends complete and the replay is the table', async () => {
    const { db, queue } = await setupDbAndQueue('boot_truncate', `CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 20000) g; CREATE TABLE sentinel (id int PRIMARY KEY)`);
    const slot = slotNameFor(db.url);
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['items', 'sentinel'], partitions: PARTITIONS, bootstrap: { pollIntervalMs: 100, chunkMinRows: 200, chunkMaxRows: 200 } });
    await r.ready;
    await withClient(db.url, async (c) => {
      await ensureStateSchema(c, 'pgrelay');
      await requestBootstrap(c, 'pgrelay', slot, ['public.items'], { reason: 'operator', by: 'test' });
    });
    await waitFor(async () => ((await withClient(db.url, (c) => readBootstrapRequests(c, 'pgrelay', slot))).get('public.items')?.rowsRead ?? 0) >= 2000, { timeoutMs: 30_000, intervalMs: 10, message: '2,000 rows read' });
    await withClient(db.url, (c) => c.query(`TRUNCATE items; INSERT INTO items SELECT g, 'after ' || g FROM generate_series(1, 3000) g`));
    const received: ReceivedMessage[] = [];
    received.push(...(await receiveUntil(queue.client, queue.queueUrl, (ms) => bootstrapOf(ms).filter((c) => c.op === 'bootstrap.completed').length >= PARTITIONS, 60_000)));
    await withClient(db.url, (c) => c.query('TRUNCATE sentinel'));
    received.push(...(await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).filter((c) => c.op === 'truncate' && c.table === 'sentinel').length >= PARTITIONS, 60_000)));
    expect(r.logs.some((l) => l.msg === 'bootstrap starts over: the table was truncated during the load')).toBe(true);
    expect(bootstrapOf(received).find((c) => c.op === 'bootstrap.completed')).toMatchObject({ bootstrap: { outcome: 'complete' } });
    const replayed = replayChanges(received).tables.get('public.items') ?? new Map();
    const { rows } = await withClient(db.url, (c) => c.query<{ id: number; v: string }>('SELECT id, v FROM items'));
    expect(replayed.size).toBe(rows.length);
    for (const row of rows) expect(replayed.get(JSON.stringify({ id: row.id }))).toEqual(row);
  });

  it('the slot keeps confirming during a load: no long transaction holds WAL back', async () => {
    const { db, queue } = await setupDbAndQueue('boot_confirm', `CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, 60000) g`);
    const slot = slotNameFor(db.url);
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['items'], partitions: PARTITIONS, bootstrap: { pollIntervalMs: 100, chunkMinRows: 500, chunkMaxRows: 500 } });
    await r.ready;
    const confirmed = () => withClient(db.url, async (c) => (await c.query<{ lsn: string }>('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]?.lsn ?? '');
    const state = async () => (await withClient(db.url, (c) => readBootstrapRequests(c, 'pgrelay', slot))).get('public.items');
    await withClient(db.url, async (c) => {
      await ensureStateSchema(c, 'pgrelay');
      await requestBootstrap(c, 'pgrelay', slot, ['public.items'], { reason: 'operator', by: 'test' });
    });
    await waitFor(async () => ((await state())?.rowsRead ?? 0) >= 5000, { timeoutMs: 30_000, intervalMs: 10, message: '5,000 rows read' });
    const early = parseLsn(await confirmed());
    await waitFor(async () => ((await state())?.rowsRead ?? 0) >= 30_000, { timeoutMs: 60_000, intervalMs: 10, message: '30,000 rows read' });
    const later = parseLsn(await confirmed());
    expect((await state())?.state).toBe('running');
    expect(later).toBeGreaterThan(early);
  });
});

