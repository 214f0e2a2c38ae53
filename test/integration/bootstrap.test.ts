/**
 * Bootstrap: a table's existing rows arrive as snapshot changes, framed by started/completed in
 * every partition, while the stream goes on; progress is recorded in the state schema.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { requestBootstrap, readBootstrapRequests } from '#shared/bootstrap-state.ts';
import { ensureStateSchema } from '#shared/source-state.ts';
import { withClient } from '#test/helpers/postgres.ts';
import { runCleanups, runStreamer, setupDbAndQueue } from '#test/helpers/scenario.ts';
import { receiveUntil } from '#test/helpers/sqs.ts';
import { bootstrapOf, slotNameFor } from '#test/helpers/streamer.ts';

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
});
