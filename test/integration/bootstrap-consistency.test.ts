/**
 * Bootstrap under a live workload: while the table is read, another connection updates,
 * deletes, re-inserts, changes keys of and inserts rows. Replaying what the changes queue
 * delivered, group by group, must give exactly the table's final rows: no stale, missing or
 * resurrected row. Once with an in-process streamer, once with the streamer SIGKILLed twice
 * mid-load and started again.
 */
import type pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { readBootstrapRequests, requestBootstrap } from '#shared/bootstrap-state.ts';
import { ensureStateSchema } from '#shared/source-state.ts';
import { withClient } from '#test/helpers/postgres.ts';
import { replayChanges } from '#test/helpers/replay.ts';
import { onCleanup, runCleanups, runStreamer, setupDbAndQueue, type Db, type Queue } from '#test/helpers/scenario.ts';
import { drainQueue, type ReceivedMessage } from '#test/helpers/sqs.ts';
import { receivedOf, slotNameFor, spawnStreamer, streamerConfig } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';

afterEach(runCleanups);

const PARTITIONS = 4;
const ROWS = 200_000;
const DDL = `CREATE TABLE accounts (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL);
  INSERT INTO accounts SELECT g, 'v' || g, 0 FROM generate_series(1, ${ROWS}) g;
  CREATE TABLE sentinel (id int PRIMARY KEY);`;
const BOOTSTRAP = { pollIntervalMs: 100, chunkMinRows: 2_000, chunkMaxRows: 20_000 };

/** A small deterministic generator (mulberry32): the workload is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One transaction of the live workload. */
async function step(c: pg.Client, rnd: () => number, n: number): Promise<void> {
  const id = 1 + Math.floor(rnd() * ROWS);
  const r = rnd();
  if (r < 0.4) await c.query('UPDATE accounts SET v = $2, n = n + 1 WHERE id = $1', [id, `u${n}`]);
  else if (r < 0.55) await c.query('DELETE FROM accounts WHERE id = $1', [id]);
  else if (r < 0.7) await c.query(`INSERT INTO accounts VALUES ($1, $2, 0) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v`, [id, `re${n}`]);
  // Key changes: out past the load's last key, and back into the middle of the range.
  else if (r < 0.8) await c.query('UPDATE accounts SET id = id + 1000000 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM accounts WHERE id = $1 + 1000000)', [id]);
  else if (r < 0.9) await c.query('UPDATE accounts SET id = id - 1000000 WHERE id = (SELECT min(id) FROM accounts WHERE id > 1000000) AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = accounts.id - 1000000)');
  // Constant inserts at the end of the key range: the load still ends.
  else await c.query('INSERT INTO accounts VALUES ($1, $2, 0)', [ROWS + 1 + n, `new${n}`]);
}

/** Runs the workload until `done()`; resolves with the number of transactions. */
async function workload(db: Db, done: () => boolean, seed: number): Promise<number> {
  const rnd = prng(seed);
  return withClient(db.url, async (c) => {
    let n = 0;
    while (!done()) await step(c, rnd, ++n);
    return n;
  });
}

/** Collects every message until `until` holds; keeps reading so nothing is left for the next look. */
async function collect(queue: Queue, into: ReceivedMessage[], until: (all: ReceivedMessage[]) => boolean, timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      into.push(...(await drainQueue(queue.client, queue.queueUrl, { waitTimeSeconds: 0 })));
      return until(into);
    },
    { timeoutMs, intervalMs: 50, message: () => `${receivedOf(into).length} changes received` },
  );
}

const completedIn = (ms: ReceivedMessage[]) => receivedOf(ms).filter((c) => c.op === 'bootstrap.completed').length;
const sentinelsIn = (ms: ReceivedMessage[]) => receivedOf(ms).filter((c) => c.op === 'truncate' && c.table === 'sentinel').length;

/** Ends the test's stream: a TRUNCATE reaches every partition after everything before it. */
async function drainAll(db: Db, queue: Queue, received: ReceivedMessage[]): Promise<void> {
  await withClient(db.url, (c) => c.query('TRUNCATE sentinel'));
  await collect(queue, received, (ms) => sentinelsIn(ms) >= PARTITIONS, 120_000);
}

async function expectReplayIsTheTable(db: Db, received: ReceivedMessage[]): Promise<void> {
  const { tables } = replayChanges(received);
  const replayed = tables.get('public.accounts') ?? new Map();
  const { rows } = await withClient(db.url, (c) => c.query<{ id: number; v: string; n: number }>('SELECT id, v, n FROM accounts ORDER BY id'));
  const expected = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, v: r.v, n: r.n }]));
  const missing = [...expected.keys()].filter((k) => !replayed.has(k));
  const resurrected = [...replayed.keys()].filter((k) => !expected.has(k));
  const stale = [...expected.entries()].filter(([k, v]) => replayed.has(k) && JSON.stringify(replayed.get(k)) !== JSON.stringify(v)).map(([k]) => k);
  expect({ missing: missing.slice(0, 5), resurrected: resurrected.slice(0, 5), stale: stale.slice(0, 5) }).toEqual({ missing: [], resurrected: [], stale: [] });
  expect(replayed.size).toBe(expected.size);
}

async function request(db: Db): Promise<void> {
  await withClient(db.url, async (c) => {
    await ensureStateSchema(c, 'pgrelay');
    await requestBootstrap(c, 'pgrelay', slotNameFor(db.url), ['public.accounts'], { reason: 'operator', by: 'test' });
  });
}

describe('bootstrap consistency under a live workload', () => {
  it(`${ROWS.toLocaleString('en-US')} rows loaded while rows are updated, deleted, re-inserted, re-keyed and inserted: the replay is exactly the table`, async () => {
    const { db, queue } = await setupDbAndQueue('boot_live', DDL);
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['accounts', 'sentinel'], partitions: PARTITIONS, bootstrap: BOOTSTRAP });
    await r.ready;
    const received: ReceivedMessage[] = [];
    let loaded = false;
    const writing = workload(db, () => loaded, 7);
    await request(db);
    await collect(queue, received, (ms) => completedIn(ms) >= PARTITIONS, 240_000);
    loaded = true;
    const transactions = await writing;
    await drainAll(db, queue, received);
    expect(transactions).toBeGreaterThan(100);
    const snapshots = receivedOf(received).filter((c) => c.op === 'snapshot').length;
    expect(snapshots).toBeGreaterThan(ROWS * 0.9);
    await expectReplayIsTheTable(db, received);
    const state = await withClient(db.url, (c) => readBootstrapRequests(c, 'pgrelay', slotNameFor(db.url)));
    expect(state.get('public.accounts')).toMatchObject({ state: 'done' });
  }, 300_000);

  it('with the streamer SIGKILLed twice mid-load: it resumes after the last recorded chunk and the replay is still exactly the table', async () => {
    const { db, queue } = await setupDbAndQueue('boot_kill', DDL);
    const config = { ...streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['accounts', 'sentinel'], partitions: PARTITIONS }), bootstrap: BOOTSTRAP };
    let child = spawnStreamer(config);
    onCleanup(async () => {
      child.child.kill('SIGKILL');
      await child.exited;
    });
    await waitFor(() => child.output().includes('"msg":"streaming"'), { timeoutMs: 30_000, message: 'streamer streaming' });
    const received: ReceivedMessage[] = [];
    let loaded = false;
    const writing = workload(db, () => loaded, 11);
    await request(db);
    const rowsRead = async () => (await withClient(db.url, (c) => readBootstrapRequests(c, 'pgrelay', slotNameFor(db.url)))).get('public.accounts')?.rowsRead ?? 0;
    const resumedFrom: number[] = [];
    for (const threshold of [40_000, 120_000]) {
      await collect(queue, received, () => false, 0).catch(() => undefined);
      await waitFor(async () => (await rowsRead()) >= threshold, { timeoutMs: 120_000, intervalMs: 20, message: `${threshold} rows recorded` });
      child.child.kill('SIGKILL');
      await child.exited;
      resumedFrom.push(await rowsRead());
      child = spawnStreamer(config);
    }
    await collect(queue, received, (ms) => completedIn(ms) >= PARTITIONS, 240_000);
    loaded = true;
    await writing;
    await drainAll(db, queue, received);
    expect(child.output()).toContain('"msg":"bootstrap resumed"');
    expect(resumedFrom.every((n) => n > 0 && n < ROWS)).toBe(true);
    await expectReplayIsTheTable(db, received);
  }, 300_000);
});
