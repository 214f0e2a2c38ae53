/**
 * `pgrelay bootstrap` (a request, --cancel) and what `pgrelay status` says of loads, against a
 * real PostgreSQL. Loads under way, failed and done are made with the state functions the
 * streamer uses (bootstrap-state.ts); their start is then set back a fixed time, so the rate and
 * ETA status prints are exact. One test lets a real streamer carry out the request.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapCommand } from '#cli/bootstrap.ts';
import { statusCommand } from '#cli/status.ts';
import { finishBootstrap, readBootstrapRequests, recordBootstrapProgress, requestBootstrap, startBootstrap } from '#shared/bootstrap-state.ts';
import type { BootstrapRecord, SourceStatus, StatusProblem } from '#shared/source-status.ts';
import { expectOneSentence, pgrelay, runInProcess } from '#test/helpers/operator-cli.ts';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { onCleanup, runCleanups, runStreamer, setupDbAndQueue } from '#test/helpers/scenario.ts';
import { slotNameFor } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';

afterEach(runCleanups);

type StatusDoc = SourceStatus & { target: string; problems: StatusProblem[] };
type Db = Awaited<ReturnType<typeof testDatabase>>;

const requestsOf = (url: string, slot: string) => withClient(url, (c) => readBootstrapRequests(c, 'pgrelay', slot));

/** A load the streamer started and advanced, as it records them: `rows` of `estimate` read so far. */
async function runningLoad(url: string, slot: string, table: string, load: { id: string; rows: number; estimate: number | null }): Promise<void> {
  await withClient(url, async (c) => {
    const request = (await readBootstrapRequests(c, 'pgrelay', slot)).get(table);
    if (request?.state !== 'requested') throw new Error(`${table} is not requested`);
    expect(await startBootstrap(c, 'pgrelay', slot, table, { id: load.id, upperKey: ['1000'], rowsEstimated: load.estimate, requestStamp: request.requestStamp })).toBe(true);
    if (load.rows > 0) expect(await recordBootstrapProgress(c, 'pgrelay', slot, table, { loadId: load.id, lastKey: [String(load.rows)], rows: load.rows, bytes: load.rows * 50 })).toBe(true);
  });
}

/** Sets the load's start `seconds` before its last change (running) or its end, so its rate is exact. */
async function startedBefore(url: string, slot: string, table: string, seconds: number): Promise<void> {
  await withClient(url, (c) =>
    c.query(`UPDATE pgrelay.bootstrap SET started_at = COALESCE(finished_at, updated_at) - make_interval(secs => $3) WHERE slot_name = $1 AND table_name = $2`, [slot, table, seconds]),
  );
}

const hostDb = (url: string) => {
  const u = new URL(url);
  return `${u.hostname}:${u.port}${u.pathname}`;
};

describe('pgrelay bootstrap', () => {
  let db: Db;
  let slot: string;
  let base: string[];

  beforeAll(async () => {
    db = await testDatabase('ops_boot');
    slot = slotNameFor(db.url);
    base = ['--database-url', db.url, '--slot', slot];
    await withClient(db.url, (c) =>
      c.query(`CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g;
               CREATE TABLE other (id int PRIMARY KEY); CREATE VIEW items_view AS SELECT * FROM items;`),
    );
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('--cancel before anything was ever requested: nothing to cancel, exit 1, and no state schema is made', async () => {
    const [human, json] = await Promise.all([pgrelay('bootstrap', 'public.items', '--cancel', ...base), pgrelay('bootstrap', 'public.items', '--cancel', ...base, '--json')]);
    expect(human.code).toBe(1);
    expectOneSentence(human);
    expect(human.stderr).toBe(`pgrelay bootstrap: nothing to cancel: no bootstrap was ever requested in ${hostDb(db.url)} (pgrelay's state schema pgrelay has no bootstrap table)\n`);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ error: { code: 'PGRELAY_NOT_FOUND', message: expect.stringContaining('nothing to cancel') } });
    expect(await withClient(db.url, async (c) => (await c.query<{ s: string | null }>(`SELECT to_regnamespace('pgrelay')::text AS s`)).rows[0]?.s)).toBeNull();
  });

  it('records an operator request for a configured table, making the state schema, and says when the load starts', async () => {
    const run = await pgrelay('bootstrap', 'public.items', ...base, '--tables', 'items,other');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      [
        `requested the bootstrap of public.items on ${hostDb(db.url)} (slot ${slot})`,
        `  replication slot ${slot} does not exist yet: the load starts once a streamer runs (it creates the slot)`,
        '  follow it with pgrelay status',
        '',
      ].join('\n'),
    );
    const request = (await requestsOf(db.url, slot)).get('public.items');
    expect(request).toMatchObject({ state: 'requested', reason: 'operator', requestedBy: expect.stringMatching(/^pgrelay bootstrap \(.+\)$/), loadId: null, rowsRead: 0, startedAt: null });
  });

  it('refuses a table the configuration does not stream (exit 2); a view, a missing table or a malformed name say what is wrong', async () => {
    const [unconfigured, view, missing, malformed, none] = await Promise.all([
      pgrelay('bootstrap', 'other', ...base, '--tables', 'items'),
      pgrelay('bootstrap', 'items_view', ...base),
      pgrelay('bootstrap', 'public.nope', ...base),
      pgrelay('bootstrap', 'a.b.c', ...base),
      pgrelay('bootstrap', ...base),
    ]);
    for (const r of [unconfigured, view, missing, malformed, none]) expectOneSentence(r);
    expect(unconfigured.code).toBe(2);
    expect(unconfigured.stderr).toBe(
      'pgrelay bootstrap: public.other is not one of the configured tables (public.items): the streamer loads only the tables it streams, so nothing was requested; add it to tables in the config first\n',
    );
    expect((await requestsOf(db.url, slot)).has('public.other')).toBe(false);
    expect(view.code).toBe(1);
    expect(view.stderr).toContain("public.items_view is not a table (relkind 'v')");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^pgrelay bootstrap: table public\.nope does not exist in .+: check the name/);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('"a.b.c" is not a table name');
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('name one table to bootstrap');
  });

  it('a config whose tables carry their own settings names them too', async () => {
    const config = JSON.stringify({ database: { url: db.url }, slotName: slot, tables: [{ table: 'items', bootstrap: 'off' }] });
    const run = await runInProcess((argv, io) => bootstrapCommand(argv, { ...io, env: { PGRELAY_CONFIG: config } }), ['other']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('public.other is not one of the configured tables (public.items)');
  });

  it('a load under way starts over, and the command says so (JSON and text)', async () => {
    await runningLoad(db.url, slot, 'public.items', { id: 'L1', rows: 1200, estimate: 5000 });
    const json = await runInProcess(bootstrapCommand, ['public.items', ...base, '--json']);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as { previous: BootstrapRecord; bootstrap: BootstrapRecord; message: string };
    expect(doc).toMatchObject({
      target: hostDb(db.url),
      slot,
      stateSchema: 'pgrelay',
      table: 'public.items',
      requested: true,
      restarted: true,
      streamer: 'missing',
      previous: { state: 'running', loadId: 'L1', rowsRead: 1200, rowsEstimated: 5000 },
      bootstrap: { state: 'requested', reason: 'operator', loadId: null, rowsRead: 0, startedAt: null, finishedAt: null },
    });
    expect(doc.message).toContain('the load under way (load L1, 1,200 of ~5,000 rows read) starts over from the first row');
    expect((await requestsOf(db.url, slot)).get('public.items')).toMatchObject({ state: 'requested', loadId: null, lastKey: null, upperKey: null, rowsRead: 0 });

    await runningLoad(db.url, slot, 'public.items', { id: 'L2', rows: 10, estimate: null });
    const human = await runInProcess(bootstrapCommand, ['public.items', ...base]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('\n  the load under way (load L2, 10 rows read) starts over from the first row\n');
  });

  it('--cancel stops a requested load, then a running one; after that there is nothing to cancel (exit 1)', async () => {
    expect((await runInProcess(bootstrapCommand, ['public.other', ...base])).code).toBe(0);
    const requestedAt = (await requestsOf(db.url, slot)).get('public.other')?.requestedAt.toISOString();
    const waiting = await pgrelay('bootstrap', 'public.other', '--cancel', ...base);
    expect(waiting.stderr).toBe('');
    expect(waiting.code).toBe(0);
    expect(waiting.stdout).toBe(`cancelled the bootstrap of public.other on ${hostDb(db.url)} (slot ${slot}): it had waited since ${requestedAt} (reason operator) and had not started: nothing was read\n`);
    expect((await requestsOf(db.url, slot)).get('public.other')).toMatchObject({ state: 'cancelled', detail: 'cancelled by an operator', finishedAt: expect.any(Date) });

    expect((await runInProcess(bootstrapCommand, ['public.other', ...base])).code).toBe(0);
    await runningLoad(db.url, slot, 'public.other', { id: 'L3', rows: 300, estimate: 1000 });
    const running = await pgrelay('bootstrap', 'public.other', '--cancel', ...base, '--json');
    expect(running.code).toBe(0);
    const doc = JSON.parse(running.stdout) as { message: string };
    expect(doc).toMatchObject({ table: 'public.other', cancelled: true, previousState: 'running', previous: { loadId: 'L3', rowsRead: 300 }, bootstrap: { state: 'cancelled', note: 'cancelled by an operator', rowsRead: 300 } });
    expect(doc.message).toContain('the load under way (load L3, 300 of ~1,000 rows read) stops before its next chunk, and consumers see it end as cancelled');

    const [again, never] = await Promise.all([pgrelay('bootstrap', 'public.other', '--cancel', ...base, '--json'), pgrelay('bootstrap', 'public.never', '--cancel', ...base)]);
    expect(again.code).toBe(1);
    expectOneSentence(again);
    expect(again.stderr).toMatch(/^pgrelay bootstrap: nothing to cancel: the bootstrap of public\.other is cancelled \(asked for by an operator; since .+\)\n$/);
    expect(JSON.parse(again.stdout)).toMatchObject({ error: { code: 'PGRELAY_NOT_FOUND' } });
    expect(never.code).toBe(1);
    expect(never.stderr).toBe(`pgrelay bootstrap: nothing to cancel: no bootstrap of public.never was requested for slot ${slot}\n`);
  });

  it('status shows each load: rows read of the estimate, rate, ETA while running, start, end, and a failure\'s error (text and JSON)', async () => {
    const statusSlot = `${slot}_st`.slice(0, 63);
    const tables = ['st_run', 'st_failed', 'st_done', 'st_waiting'];
    await withClient(db.url, async (c) => {
      for (const t of tables) await c.query(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
      await c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [statusSlot]);
      await requestBootstrap(c, 'pgrelay', statusSlot, tables.map((t) => `public.${t}`), { reason: 'initial', by: 'pgrelay-monitor', detail: 'configured table never loaded' });
    });
    await runningLoad(db.url, statusSlot, 'public.st_run', { id: 'R', rows: 4000, estimate: 10_000 });
    await startedBefore(db.url, statusSlot, 'public.st_run', 10);
    await runningLoad(db.url, statusSlot, 'public.st_failed', { id: 'F', rows: 7, estimate: 100 });
    await runningLoad(db.url, statusSlot, 'public.st_done', { id: 'D', rows: 500, estimate: 500 });
    await withClient(db.url, async (c) => {
      await finishBootstrap(c, 'pgrelay', statusSlot, 'public.st_failed', { loadId: 'F', state: 'failed', detail: 'permission denied for table st_failed' });
      await finishBootstrap(c, 'pgrelay', statusSlot, 'public.st_done', { loadId: 'D', state: 'done' });
    });
    await startedBefore(db.url, statusSlot, 'public.st_failed', 2);
    await startedBefore(db.url, statusSlot, 'public.st_done', 4);
    const args = ['status', '--database-url', db.url, '--slot', statusSlot, '--tables', tables.join(',')];

    const [json, human] = await Promise.all([pgrelay(...args, '--json'), pgrelay(...args)]);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as StatusDoc;
    const load = (t: string) => doc.tables.find((x) => x.table === `public.${t}`)?.bootstrap as BootstrapRecord;
    expect(load('st_run')).toMatchObject({ state: 'running', reason: 'initial', loadId: 'R', rowsRead: 4000, rowsEstimated: 10_000, elapsedSeconds: 10, rowsPerSecond: 400, percentOfEstimate: 40, etaSeconds: 15, finishedAt: null, error: null });
    expect(Date.parse(load('st_run').updatedAt) - Date.parse(load('st_run').startedAt as string)).toBe(10_000);
    expect(load('st_failed')).toMatchObject({ state: 'failed', rowsRead: 7, elapsedSeconds: 2, rowsPerSecond: 3.5, etaSeconds: null, error: 'permission denied for table st_failed' });
    expect(load('st_done')).toMatchObject({ state: 'done', rowsRead: 500, elapsedSeconds: 4, rowsPerSecond: 125, percentOfEstimate: 100, etaSeconds: null, error: null, finishedAt: expect.any(String) });
    expect(load('st_waiting')).toMatchObject({ state: 'requested', startedAt: null, elapsedSeconds: null, rowsPerSecond: null, etaSeconds: null });
    expect(doc.problems).toContainEqual({
      severity: 'warning',
      message: 'the bootstrap of public.st_failed failed: permission denied for table st_failed; fix the cause and request it again with pgrelay bootstrap public.st_failed',
    });

    expect(human.code).toBe(0);
    const sub = (label: string, value: string) => `\n${' '.repeat(16)}${label.padEnd(10)}${value}\n`;
    expect(human.stdout).toMatch(/\ntable {9}public\.st_run {6}NOT published {2}bootstrap running \(initial load; since \S+\)\n/);
    expect(human.stdout).toContain(sub('rows', '4,000 of ~10,000 (40.0%), 400 rows/s, ETA 15 s'));
    expect(human.stdout).toContain(sub('started', load('st_run').startedAt as string));
    expect(human.stdout).toContain(sub('rows', '7 of ~100 (7.0%), 3.5 rows/s'));
    expect(human.stdout).toContain(sub('finished', `${load('st_failed').finishedAt} (after 2 s)`));
    expect(human.stdout).toContain(sub('error', 'permission denied for table st_failed'));
    expect(human.stdout).toContain(sub('rows', '500 of ~500 (100.0%), 125 rows/s'));
    // A request that has not started has no figures: its table line is all.
    expect(human.stdout).toMatch(/\ntable {9}public\.st_waiting {2}NOT published {2}bootstrap requested \(initial load; since \S+\)\n(?! {16})/);
    expect(human.stdout).toContain('warning: the bootstrap of public.st_failed failed: permission denied for table st_failed;');

    // In this process too, the same document (status as the monitor and tests call it).
    const inProcess = await runInProcess(statusCommand, [...args.slice(1), '--json']);
    expect((JSON.parse(inProcess.stdout) as StatusDoc).tables.map((t) => t.bootstrap.state)).toEqual(['running', 'failed', 'done', 'requested']);
  });
});

describe('pgrelay bootstrap with a streamer and with a restricted user', () => {
  it('the streamer carries out the request; status then reports it done with every row, and there is nothing left to cancel', async () => {
    const { db, queue } = await setupDbAndQueue('ops_boot_e2e', `CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 300) g`);
    const slot = slotNameFor(db.url);
    const streamer = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['items'], partitions: 2, bootstrap: { pollIntervalMs: 100 } });
    await streamer.ready;
    const args = ['--database-url', db.url, '--slot', slot, '--tables', 'items'];
    const run = await pgrelay('bootstrap', 'public.items', ...args);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('  the streamer takes it up at its next look for requests');
    await waitFor(async () => (await requestsOf(db.url, slot)).get('public.items')?.state === 'done', { timeoutMs: 30_000, message: 'the load recorded done' });

    const status = await pgrelay('status', ...args, '--json');
    expect(status.code).toBe(0);
    const b = (JSON.parse(status.stdout) as StatusDoc).tables[0]?.bootstrap as BootstrapRecord;
    expect(b).toMatchObject({ state: 'done', reason: 'operator', rowsRead: 300, etaSeconds: null, error: null, startedAt: expect.any(String), finishedAt: expect.any(String) });
    const elapsed = (Date.parse(b.finishedAt as string) - Date.parse(b.startedAt as string)) / 1000;
    expect(b.elapsedSeconds).toBe(elapsed);
    if (elapsed > 0) expect(b.rowsPerSecond).toBe(Math.round((300 / elapsed) * 100) / 100);

    const cancel = await pgrelay('bootstrap', 'public.items', '--cancel', ...args);
    expect(cancel.code).toBe(1);
    expect(cancel.stderr).toMatch(/nothing to cancel: the bootstrap of public\.items is done \(asked for by an operator; since /);
  });

  it('a user the state schema was made for needs no CREATE on the database; a user with neither is told the statement (exit 2)', async () => {
    const db = await testDatabase('ops_boot_role');
    const role = `app_${db.name}`;
    onCleanup(async () => {
      await db.drop();
      await withClient(new URL('/postgres', db.url).toString(), (c) => c.query(`DROP ROLE IF EXISTS "${role}"`));
    });
    await withClient(db.url, async (c) => {
      await c.query(`CREATE ROLE "${role}" LOGIN PASSWORD 'pw'`);
      await c.query('CREATE TABLE items (id int PRIMARY KEY)');
    });
    const asRole = new URL(db.url);
    asRole.username = role;
    asRole.password = 'pw';
    const args = ['public.items', '--database-url', asRole.toString(), '--slot', 's_role'];

    const refused = await runInProcess(bootstrapCommand, [...args, '--json']);
    expect(refused.code).toBe(2);
    expectOneSentence(refused);
    expect(refused.stderr).toContain(`cannot create pgrelay's state schema pgrelay: permission denied for database ${db.name}; have an administrator run: CREATE SCHEMA "pgrelay" AUTHORIZATION <pgrelay user>`);
    expect(JSON.parse(refused.stdout)).toMatchObject({ error: { code: 'PGRELAY_PRIVILEGE' } });

    // The fix the sentence names; ensureStateSchema then creates only the tables (regression: CREATE SCHEMA IF NOT EXISTS checked the privilege first).
    await withClient(db.url, (c) => c.query(`CREATE SCHEMA pgrelay AUTHORIZATION "${role}"`));
    const run = await runInProcess(bootstrapCommand, args);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect((await requestsOf(db.url, 's_role')).get('public.items')).toMatchObject({ state: 'requested', reason: 'operator', requestedBy: `pgrelay bootstrap (${role})` });
  });
});
