/**
 * The monitor and a lost replication slot, end to end on a real PostgreSQL, a real streamer and
 * the SQS emulator:
 *
 *  - a slot invalidated for real (max_slot_wal_keep_size, on a dedicated server): the monitor
 *    alarms (SlotLost, SLOT_LOST) and leaves it alone while recreateLostSlot is off, the streamer
 *    refuses to start on it; with recreateLostSlot on the monitor recreates it, requests a
 *    gap-marked re-read of every table with the lost WAL range, `pgrelay status` shows it, and a
 *    streamer streams again from the new slot: the gap notices first, then the re-read, which
 *    brings back the rows written during the gap;
 *  - a slot dropped by someone after the monitor saw it: lost (not merely missing), the streamer
 *    refuses to quietly create a new one; the way out through the monitor or `pgrelay slot drop`;
 *  - a slot that never existed: missing, not lost, and the streamer creates it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '#core/errors.ts';
import { parseLsn } from '#core/position.ts';
import { parseStreamerConfig } from '#core/config.ts';
import { parseMonitorConfig, type MonitorConfig } from '#monitor/config.ts';
import { runMonitor, type MonitorSummary } from '#monitor/handler.ts';
import { ConnectionProvider } from '#shared/connection.ts';
import type { OperatorIo } from '#cli/operator.ts';
import { slotCommand } from '#cli/slot.ts';
import { statusCommand } from '#cli/status.ts';
import { readStatus, type SourceStatus, type StatusProblem } from '#shared/source-status.ts';
import { emfProblems } from '#test/helpers/emf.ts';
import { invalidateSlot, LOST_SLOT_SETTINGS } from '#test/helpers/lost-slot.ts';
import { createTestDatabase, startTestPostgres, withClient, type TestPostgres } from '#test/helpers/postgres.ts';
import { runCleanups, runStreamer, setupDbAndQueue, type Db, type Queue } from '#test/helpers/scenario.ts';
import { drainQueue, receiveUntil, testFifoQueue } from '#test/helpers/sqs.ts';
import { bootstrapOf, changesOf, receiveChanges, receivedOf, slotNameFor, type ReceivedChange, type RunningStreamer } from '#test/helpers/streamer.ts';
import { replayChanges } from '#test/helpers/replay.ts';
import { waitFor } from '#test/helpers/wait.ts';

afterEach(runCleanups);

const SOURCE = 'slot-loss';
const PUBLICATION = 'pgrelay_slot_loss';
const TABLES = ['items', 'orders'];
const TABLE_KEYS = ['public.items', 'public.orders'];
// The streamer's default message groups: a gap notice reaches each of them.
const PARTITIONS = parseStreamerConfig({ database: { url: 'postgres://x/y' }, tables: ['t'], queueUrl: 'http://q/x.fifo' }).partitions;
const DDL = `CREATE TABLE items (id int PRIMARY KEY, v text);
             CREATE TABLE orders (id int PRIMARY KEY, v text);
             CREATE PUBLICATION ${PUBLICATION} FOR TABLE items, orders`;
/** The monitor's clock: a fixed instant, one minute per run, so the recorded times are exact. */
const T0 = 1_800_000_000_000;
const MINUTE = 60_000;

interface SlotRow {
  active: boolean;
  wal_status: string | null;
  confirmed_flush_lsn: string | null;
  restart_lsn: string | null;
  invalidation_reason: string | null;
}

async function slotRow(url: string, slot: string): Promise<SlotRow | undefined> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<SlotRow>(
      `SELECT active, wal_status, confirmed_flush_lsn::text, restart_lsn::text, to_jsonb(s) ->> 'invalidation_reason' AS invalidation_reason
         FROM pg_replication_slots s WHERE slot_name = $1`,
      [slot],
    );
    return rows[0];
  });
}

async function sql<T extends object>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  return withClient(url, async (c) => (await c.query(text, params)).rows as T[]);
}

const currentLsn = async (url: string): Promise<string> => (await sql<{ lsn: string }>(url, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]?.lsn as string;

interface WatchRow {
  generation: number;
  registered_at: Date;
  confirmed_lsn: string | null;
  lost_at: Date | null;
  lost_after_lsn: string | null;
  recreated_at: Date | null;
  gap_after_lsn: string | null;
  gap_until_lsn: string | null;
}

const watchRows = (url: string, slot: string) =>
  sql<WatchRow>(
    url,
    `SELECT generation, registered_at, confirmed_lsn::text, lost_at, lost_after_lsn::text, recreated_at, gap_after_lsn::text, gap_until_lsn::text
       FROM pgrelay.slot_watch WHERE slot_name = $1`,
    [slot],
  );

interface BootstrapRow {
  table_name: string;
  state: string;
  reason: string;
  gap_after_lsn: string | null;
  gap_until_lsn: string | null;
  requested_by: string;
  detail: string | null;
}

const bootstrapRows = (url: string, slot: string) =>
  sql<BootstrapRow>(
    url,
    `SELECT table_name, state, reason, gap_after_lsn::text, gap_until_lsn::text, requested_by, detail
       FROM pgrelay.bootstrap WHERE slot_name = $1 ORDER BY table_name`,
    [slot],
  );

function monitorConfig(url: string, slot: string, recreateLostSlot: boolean): MonitorConfig {
  return parseMonitorConfig({ sourceId: SOURCE, database: { url }, slotName: slot, publicationName: PUBLICATION, tables: TABLES, recreateLostSlot });
}

/** One monitor run at `at`, over a real connection; its one EMF line, checked against the spec. */
async function monitor(cfg: MonitorConfig, at: number): Promise<{ summary: MonitorSummary; doc: Record<string, unknown> }> {
  const lines: string[] = [];
  const summary = await runMonitor(cfg, { connections: new ConnectionProvider(cfg.database), write: (line) => void lines.push(line), now: () => at });
  expect(lines).toHaveLength(1);
  const doc = JSON.parse(lines[0] as string) as Record<string, unknown>;
  expect(emfProblems(doc)).toEqual([]);
  return { summary, doc };
}

const codes = (summary: MonitorSummary) => summary.findings.map((f) => f.code);
const finding = (summary: MonitorSummary, code: string) => summary.findings.find((f) => f.code === code);

function streamer(db: Db, queue: Queue): RunningStreamer {
  return runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: TABLES, sourceId: SOURCE, publicationName: PUBLICATION, bootstrap: { pollIntervalMs: 100 } });
}

/** What `run()` of a streamer that must not start rejected with; fails if it streamed instead. */
async function refusal(r: RunningStreamer): Promise<unknown> {
  const outcome = await Promise.race([
    r.done.then(
      () => ({ ended: true as const }),
      (err: unknown) => ({ err }),
    ),
    // ready also rejects when run() does: only its success counts here.
    r.ready.then(
      () => ({ streaming: true as const }),
      () => new Promise<never>(() => undefined),
    ),
  ]);
  if (!('err' in outcome)) throw new Error(`the streamer was expected to refuse, but ${'streaming' in outcome ? 'it streamed' : 'it ended cleanly'}`);
  return outcome.err;
}

const label = (c: ReceivedChange) => `${c.table}:${String(c.key?.id)}`;

/**
 * The gap notice as the stream carries it: one `gap` change per table on every partition (like
 * a truncate), all before `first`, naming what was lost; returns the row changes that remain.
 */
function expectGapThenRows(changes: ReceivedChange[], gap: { reason: string; afterLsn: string | null; untilLsn: string }, partitions: number): ReceivedChange[] {
  const gaps = changes.filter((c) => c.op === 'gap');
  const rows = changes.filter((c) => c.op !== 'gap');
  const unique = new Map(gaps.map((c) => [`${c.table}@${c.position.commitLsn}/${c.position.seq}`, c]));
  expect([...unique.values()].map((c) => c.table).sort()).toEqual(TABLES);
  for (const c of unique.values()) {
    expect(c).toMatchObject({ key: null, after: null, before: null, gap: { reason: gap.reason, afterLsn: gap.afterLsn, untilLsn: gap.untilLsn, repair: 'bootstrap-requested' } });
    // Written after the slot was recreated, so inside the new slot's stream.
    expect(parseLsn(c.position.commitLsn)).toBeGreaterThanOrEqual(parseLsn(gap.untilLsn));
    for (const r of rows) expect(parseLsn(c.position.commitLsn)).toBeLessThan(parseLsn(r.position.commitLsn));
  }
  // Every partition got each table's notice, so it is ordered against every node.
  expect(gaps.length).toBe(TABLES.length * partitions);
  return rows;
}

/**
 * After a repair: inserts a row, then receives until it arrived and every table's re-read
 * completed in every partition. The stream opens with the gap notices, each table's load says
 * it repairs that gap and ends complete, and replaying what arrived gives exactly the tables,
 * rows written while changes were lost included. Returns the live row changes.
 */
async function expectRepairedByTheLoad(db: Db, queue: Queue, row: { table: string; id: number }, gap: { reason: string; afterLsn: string; untilLsn: string }): Promise<ReceivedChange[]> {
  await sql(db.url, `INSERT INTO ${row.table} VALUES ($1, 'after the repair')`, [row.id]);
  const messages = await receiveUntil(
    queue.client,
    queue.queueUrl,
    (ms) => changesOf(ms).some((c) => label(c) === `${row.table}:${row.id}`) && bootstrapOf(ms).filter((c) => c.op === 'bootstrap.completed').length >= TABLES.length * PARTITIONS,
    60_000,
  );
  const rows = expectGapThenRows(changesOf(messages), { ...gap, reason: gap.reason }, PARTITIONS);
  const markers = bootstrapOf(messages).filter((c) => c.op !== 'snapshot');
  for (const t of TABLES) {
    const started = markers.filter((c) => c.table === t && c.op === 'bootstrap.started');
    expect(started, t).toHaveLength(PARTITIONS);
    expect(started[0]?.bootstrap, t).toMatchObject({ reason: 'gap', gap: { afterLsn: gap.afterLsn, untilLsn: gap.untilLsn } });
    expect(markers.filter((c) => c.table === t && c.op === 'bootstrap.completed').map((c) => c.bootstrap.outcome), t).toEqual(Array(PARTITIONS).fill('complete'));
  }
  const replayed = replayChanges(messages, { sweep: true }).tables;
  for (const t of TABLES) {
    const inTable = await sql<{ id: number; v: string }>(db.url, `SELECT id, v FROM ${t} ORDER BY id`);
    expect([...(replayed.get(`public.${t}`) ?? new Map()).values()].sort((x, y) => (x.id as number) - (y.id as number)), t).toEqual(inTable);
  }
  expect((await bootstrapRows(db.url, slotNameFor(db.url))).map((r) => [r.table_name, r.state])).toEqual(TABLE_KEYS.map((t) => [t, 'done']));
  return rows;
}

/** Inserts a row and waits for it in the queue; returns every change received meanwhile. */
async function insertAndReceive(db: Db, queue: Queue, table: string, id: number, v: string): Promise<ReceivedChange[]> {
  await sql(db.url, `INSERT INTO ${table} VALUES ($1, $2)`, [id, v]);
  return receiveChanges(queue.client, queue.queueUrl, (cs) => cs.some((c) => label(c) === `${table}:${id}`));
}

/** Waits until the slot has acknowledged `change` and no session holds it any more (after stop()). */
async function waitAcknowledgedAndReleased(url: string, slot: string, change: ReceivedChange): Promise<string> {
  await waitFor(
    async () => {
      const row = await slotRow(url, slot);
      return row !== undefined && !row.active && row.confirmed_flush_lsn !== null && parseLsn(row.confirmed_flush_lsn) >= parseLsn(change.tx.commitLsn);
    },
    { message: `slot ${slot} to acknowledge ${change.tx.commitLsn} and be released` },
  );
  return (await slotRow(url, slot))?.confirmed_flush_lsn as string;
}

function testIo(): OperatorIo & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    out: (t: string) => void (io.stdout += t),
    err: (t: string) => void (io.stderr += t),
    env: {},
    ask: undefined,
  };
  return io;
}

type StatusDoc = SourceStatus & { target: string; problems: StatusProblem[] };

const lsnBetween = (lsn: string, after: string, before: string) => parseLsn(lsn) > parseLsn(after) && parseLsn(lsn) < parseLsn(before);

describe('monitor and a slot invalidated for real (max_slot_wal_keep_size)', () => {
  let server: TestPostgres | undefined;
  let db: Db;
  let queue: Queue;
  let slot: string;
  /** The slot's confirmed_flush_lsn when the streamer stopped: the last position acknowledged before the loss. */
  let acked: string;
  /** WAL positions right after rows that were written while nobody streamed (they are lost). */
  const gapWrites: string[] = [];

  beforeAll(async () => {
    server = await startTestPostgres({ flags: LOST_SLOT_SETTINGS });
    db = await createTestDatabase(server.url, 'monitor_slot_loss');
    queue = await testFifoQueue('monitor-slot-loss');
    slot = slotNameFor(db.url);
    await sql(db.url, DDL);
  });

  afterAll(async () => {
    queue?.client.destroy();
    await db?.drop();
    await server?.stop();
  });

  it('recreateLostSlot off: SlotLost, SLOT_LOST naming the last acknowledged position, slot left lost; the streamer refuses', async () => {
    // A streamer delivers a row and acknowledges it, then stops.
    const first = streamer(db, queue);
    await first.ready;
    const delivered = await insertAndReceive(db, queue, 'items', 1, 'streamed');
    expect(delivered.map(label)).toEqual(['items:1']);
    await first.stop();
    acked = await waitAcknowledgedAndReleased(db.url, slot, delivered[0] as ReceivedChange);

    // Run 1: the slot is healthy; the monitor records it.
    const run1 = await monitor(monitorConfig(db.url, slot, false), T0);
    expect(run1.doc).toMatchObject({ slotState: 'ok', walStatus: 'reserved', confirmedFlushLsn: acked, SlotLost: 0, SlotMissing: 0, SlotRecreated: 0 });
    expect(run1.summary.slotLost).toBe(false);
    expect(await watchRows(db.url, slot)).toEqual([
      expect.objectContaining({ generation: 1, registered_at: new Date(T0), confirmed_lsn: acked, lost_at: null, recreated_at: null }),
    ]);

    // Rows nobody streams, then the slot loses the WAL they are in.
    await sql(db.url, `INSERT INTO items VALUES (2, 'written while stopped'), (3, 'written while stopped')`);
    await sql(db.url, `INSERT INTO orders VALUES (1, 'written while stopped')`);
    gapWrites.push(await currentLsn(db.url));
    const lost = await invalidateSlot(db.url, slot);
    expect(lost).toMatchObject({ walStatus: 'lost', restartLsn: null, confirmedFlushLsn: acked });

    // Run 2, option off: alarm, and nothing touched.
    const run2 = await monitor(monitorConfig(db.url, slot, false), T0 + MINUTE);
    expect(run2.summary.slotLost).toBe(true);
    expect(run2.doc).toMatchObject({ slotState: 'lost', walStatus: 'lost', confirmedFlushLsn: acked, SlotLost: 1, SlotMissing: 0, SlotRecreated: 0 });
    const alarm = finding(run2.summary, 'SLOT_LOST');
    expect(alarm).toMatchObject({ severity: 'critical' });
    expect(alarm?.message).toContain(`replication slot ${slot} was invalidated (`);
    expect(alarm?.message).toContain(`changes committed after ${acked} were not streamed`);
    expect(alarm?.message).toContain('Enable recreateLostSlot');
    expect(run2.summary.actions).toEqual([]); // no recreate, no bootstrap request, not even a heartbeat
    expect(await slotRow(db.url, slot)).toMatchObject({ wal_status: 'lost', restart_lsn: null, confirmed_flush_lsn: acked });
    expect(await watchRows(db.url, slot)).toEqual([
      expect.objectContaining({ generation: 1, lost_at: new Date(T0 + MINUTE), lost_after_lsn: acked, recreated_at: null }),
    ]);
    // Run 2 again: still lost, and lost since the first run that saw it.
    const run2b = await monitor(monitorConfig(db.url, slot, false), T0 + 2 * MINUTE);
    expect(run2b.doc).toMatchObject({ SlotLost: 1, SlotRecreated: 0 });
    expect((await watchRows(db.url, slot))[0]?.lost_at).toEqual(new Date(T0 + MINUTE));

    // A streamer started now refuses, and says what to do.
    const refused = streamer(db, queue);
    const err = await refusal(refused);
    expect(err).toBeInstanceOf(SourceError);
    expect(err).toMatchObject({ code: 'PGRELAY_SLOT_LOST' });
    const message = (err as Error).message;
    expect(message).toContain(`replication slot ${slot} was invalidated (wal_status = lost)`);
    expect(message).toContain(`changes after ${acked} were lost`);
    expect(message).toContain('recreateLostSlot');
    expect(message).toContain(`pgrelay slot drop --slot ${slot}`);
    expect(refused.logs.some((l) => l.msg === 'streaming')).toBe(false);
    expect(await slotRow(db.url, slot)).toMatchObject({ wal_status: 'lost' });
  });

  it('recreateLostSlot on: recreates the slot, requests a gap re-read of every table; the streamer resumes and the re-read brings back what the gap lost', async () => {
    // One more row while the slot is lost.
    await sql(db.url, `INSERT INTO items VALUES (4, 'written while the slot was lost')`);
    gapWrites.push(await currentLsn(db.url));

    const at = T0 + 3 * MINUTE;
    const run3 = await monitor(monitorConfig(db.url, slot, true), at);
    const fresh = (await slotRow(db.url, slot)) as SlotRow;
    expect(fresh).toMatchObject({ active: false, wal_status: 'reserved', invalidation_reason: null });
    const until = fresh.confirmed_flush_lsn as string;
    expect(fresh.restart_lsn).not.toBeNull();

    expect(run3.summary.slotLost).toBe(true);
    expect(run3.doc).toMatchObject({
      slotState: 'ok',
      walStatus: 'reserved',
      confirmedFlushLsn: until,
      SlotLost: 1,
      SlotMissing: 0,
      SlotRecreated: 1,
      BootstrapPendingTables: 2,
      bootstrap: { 'public.items': 'requested', 'public.orders': 'requested' },
    });
    expect(run3.summary.actions).toContainEqual({ kind: 'recreate-slot', slotName: slot, gapAfterLsn: acked, gapUntilLsn: until });
    expect(run3.summary.actions).toContainEqual({ kind: 'request-bootstrap', reason: 'gap', tables: TABLE_KEYS });
    expect(run3.summary.actions.filter((a) => a.kind === 'request-bootstrap')).toHaveLength(1);
    expect(codes(run3.summary)).toEqual(expect.arrayContaining(['SLOT_LOST', 'SLOT_RECREATED']));
    expect(finding(run3.summary, 'SLOT_LOST')?.message).toContain('Recreating it');
    expect(finding(run3.summary, 'SLOT_RECREATED')?.message).toContain(`changes after ${acked} and before ${until} were lost`);

    // The lost range is right: it holds every row written while nobody streamed.
    expect(parseLsn(until)).toBeGreaterThan(parseLsn(acked));
    for (const lsn of gapWrites) expect(lsnBetween(lsn, acked, until), `${lsn} within (${acked}, ${until})`).toBe(true);

    // The requests in the source database: the initial ones of run 1 replaced by gap repairs.
    expect(await bootstrapRows(db.url, slot)).toEqual(
      TABLE_KEYS.map((table_name) => ({
        table_name,
        state: 'requested',
        reason: 'gap',
        gap_after_lsn: acked,
        gap_until_lsn: until,
        requested_by: 'pgrelay-monitor',
        detail: `slot ${slot} was lost at ${new Date(T0 + MINUTE).toISOString()} and recreated at ${new Date(at).toISOString()}`,
      })),
    );
    expect(await watchRows(db.url, slot)).toEqual([
      expect.objectContaining({ generation: 2, registered_at: new Date(at), lost_at: null, recreated_at: new Date(at), gap_after_lsn: acked, gap_until_lsn: until, confirmed_lsn: until }),
    ]);

    // readStatus and `pgrelay status` show the requests and the gap.
    const status = await withClient(db.url, (c) => readStatus(c, { slotName: slot, publicationName: PUBLICATION, tables: monitorConfig(db.url, slot, true).tables, stateSchema: 'pgrelay' }));
    expect(status.slot).toMatchObject({ state: 'ok', walStatus: 'reserved', confirmedFlushLsn: until });
    expect(status.watch).toMatchObject({ generation: 2, gapAfterLsn: acked, gapUntilLsn: until, recreatedAt: new Date(at) });
    for (const t of status.tables) {
      expect(t.bootstrap, t.table).toMatchObject({
        state: 'requested',
        reason: 'gap',
        gapAfterLsn: acked,
        gapUntilLsn: until,
        detail: expect.stringContaining(`requested (to repair changes lost after ${acked} and before ${until}; since `),
      });
    }
    const args = ['--database-url', db.url, '--slot', slot, '--publication', PUBLICATION, '--tables', TABLES.join(',')];
    const json = testIo();
    expect(await statusCommand([...args, '--json'], json)).toBe(0);
    expect(json.stderr).toBe('');
    const doc = JSON.parse(json.stdout) as StatusDoc;
    expect(doc.watch).toMatchObject({ generation: 2, gapAfterLsn: acked, gapUntilLsn: until, recreatedAt: new Date(at).toISOString() });
    expect(doc.tables.map((t) => [t.table, t.bootstrap])).toEqual(
      TABLE_KEYS.map((t) => [t, expect.objectContaining({ state: 'requested', reason: 'gap', gapAfterLsn: acked, gapUntilLsn: until, requestedBy: 'pgrelay-monitor' })]),
    );
    expect(doc.problems.filter((p) => p.severity === 'blocked')).toEqual([]);
    const text = testIo();
    expect(await statusCommand(args, text)).toBe(0);
    expect(text.stdout).toContain(`slot recreated ${new Date(at).toISOString()}: changes after ${acked} and before ${until} were lost; tables requested for a re-read`);
    expect(text.stdout).toMatch(new RegExp(`public\\.items\\s+published\\s+bootstrap requested \\(to repair changes lost after ${acked} and before ${until};`));

    // A streamer now starts on the recreated slot and streams what is committed from now on.
    const resumed = streamer(db, queue);
    await resumed.ready;
    expect(resumed.logs.find((l) => l.msg === 'source ready')).toMatchObject({ slotCreated: false, confirmedFlushLsn: until });
    // What was written during the gap was never streamed: the stream says so first (a gap
    // notice per table, from the monitor, before any row), then the re-read brings it back.
    const rows = await expectRepairedByTheLoad(db, queue, { table: 'items', id: 5 }, { reason: 'slot-invalidated', afterLsn: acked, untilLsn: until });
    expect(rows.map(label)).toEqual(['items:5']);
    expect(await sql(db.url, `SELECT 'items:' || id AS k FROM items UNION ALL SELECT 'orders:' || id FROM orders ORDER BY 1`)).toEqual(
      ['items:1', 'items:2', 'items:3', 'items:4', 'items:5', 'orders:1'].map((k) => ({ k })),
    );

    // The next run sees a healthy slot of the new generation: the alarm clears.
    const run4 = await monitor(monitorConfig(db.url, slot, true), at + MINUTE);
    expect(run4.doc).toMatchObject({ slotState: 'ok', SlotLost: 0, SlotRecreated: 0, SlotActive: 1 });
    expect(codes(run4.summary)).not.toContain('SLOT_LOST');
    expect((await watchRows(db.url, slot))[0]).toMatchObject({ generation: 2, lost_at: null });
  });
});

describe('monitor and a slot dropped by someone, or never created (shared server)', () => {
  /**
   * A streamer delivered a row, the monitor saw the slot healthy, the streamer stopped, then
   * someone dropped the slot and a row was written that nobody will stream.
   */
  async function droppedBySomeone(hint: string): Promise<{ db: Db; queue: Queue; slot: string; acked: string }> {
    const { db, queue } = await setupDbAndQueue(hint, DDL);
    const slot = slotNameFor(db.url);
    const first = streamer(db, queue);
    await first.ready;
    const delivered = await insertAndReceive(db, queue, 'items', 1, 'streamed');
    const seen = await monitor(monitorConfig(db.url, slot, false), T0);
    expect(seen.doc).toMatchObject({ slotState: 'ok', SlotLost: 0, SlotMissing: 0 });
    expect(await watchRows(db.url, slot)).toHaveLength(1);
    await first.stop();
    const acked = await waitAcknowledgedAndReleased(db.url, slot, delivered[0] as ReceivedChange);
    // The monitor's next look records the final acknowledged position.
    await monitor(monitorConfig(db.url, slot, false), T0 + MINUTE);
    expect((await watchRows(db.url, slot))[0]?.confirmed_lsn).toBe(acked);

    await sql(db.url, 'SELECT pg_drop_replication_slot($1)', [slot]);
    await sql(db.url, `INSERT INTO items VALUES (2, 'written while the slot was gone')`);

    const run = await monitor(monitorConfig(db.url, slot, false), T0 + 2 * MINUTE);
    expect(run.summary.slotLost).toBe(true);
    // Lost, not merely missing: pgrelay had seen it.
    expect(run.doc).toMatchObject({ slotState: 'missing', SlotLost: 1, SlotMissing: 1, SlotRecreated: 0 });
    expect(codes(run.summary)).not.toContain('SLOT_NOT_CREATED');
    const alarm = finding(run.summary, 'SLOT_LOST');
    expect(alarm).toMatchObject({ severity: 'critical' });
    expect(alarm?.message).toContain(`replication slot ${slot} was dropped (pgrelay had seen it since ${new Date(T0).toISOString()})`);
    expect(alarm?.message).toContain(`changes committed after ${acked} were not streamed`);
    expect(run.summary.actions).toEqual([]);

    // The streamer refuses to create a new slot over the gap.
    const refused = streamer(db, queue);
    const err = await refusal(refused);
    expect(err).toBeInstanceOf(SourceError);
    expect(err).toMatchObject({ code: 'PGRELAY_SLOT_LOST' });
    expect((err as Error).message).toContain(`replication slot ${slot} was dropped`);
    expect((err as Error).message).toContain(`acknowledged up to ${acked}`);
    expect((err as Error).message).toContain(`pgrelay slot drop --slot ${slot}`);
    expect(await slotRow(db.url, slot)).toBeUndefined();

    // `pgrelay status` says the same, and fails the check.
    const io = testIo();
    expect(await statusCommand(['--database-url', db.url, '--slot', slot, '--publication', PUBLICATION, '--tables', TABLES.join(','), '--json'], io)).toBe(1);
    const doc = JSON.parse(io.stdout) as StatusDoc;
    expect(doc.problems).toContainEqual({ severity: 'blocked', message: expect.stringContaining(`replication slot ${slot} was dropped after pgrelay's monitor saw it (acknowledged up to ${acked})`) });
    return { db, queue, slot, acked };
  }

  /**
   * Streams again after the repair: the new row arrives; the one written while the slot was gone
   * comes back by the monitor's re-read, and does not when an operator accepted the gap.
   */
  async function streamsAgainWithoutTheGap(db: Db, queue: Queue, slotCreated: boolean, gap?: { afterLsn: string; untilLsn: string }): Promise<void> {
    const resumed = streamer(db, queue);
    await resumed.ready;
    expect(resumed.logs.find((l) => l.msg === 'source ready')).toMatchObject({ slotCreated });
    if (gap !== undefined) {
      const rows = await expectRepairedByTheLoad(db, queue, { table: 'items', id: 3 }, { reason: 'slot-dropped', ...gap });
      expect(rows.map(label)).toEqual(['items:3']);
      return;
    }
    // An operator who accepted the gap with slot drop gets no notice and no re-read: row 2 stays lost.
    const received = await insertAndReceive(db, queue, 'items', 3, 'after the repair');
    const all = receivedOf(await drainQueue(queue.client, queue.queueUrl)).concat(received);
    expect(all.map((c) => (c.op === 'insert' ? label(c) : c.op))).toEqual(['items:3']);
    expect(resumed.streamer.stats().changes).toBe(1);
    expect(await sql(db.url, 'SELECT id FROM items ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
  }

  it('dropped: SlotLost, the streamer refuses; the monitor with recreateLostSlot recreates it with a gap re-read', async () => {
    const { db, queue, slot, acked } = await droppedBySomeone('slot_dropped_monitor');
    const at = T0 + 3 * MINUTE;
    const run = await monitor(monitorConfig(db.url, slot, true), at);
    const fresh = (await slotRow(db.url, slot)) as SlotRow;
    expect(fresh).toMatchObject({ active: false, wal_status: 'reserved' });
    const until = fresh.confirmed_flush_lsn as string;
    expect(parseLsn(until)).toBeGreaterThan(parseLsn(acked));
    expect(run.doc).toMatchObject({ slotState: 'ok', SlotLost: 1, SlotMissing: 0, SlotRecreated: 1, BootstrapPendingTables: 2 });
    expect(run.summary.actions).toContainEqual({ kind: 'recreate-slot', slotName: slot, gapAfterLsn: acked, gapUntilLsn: until });
    expect(run.summary.actions).toContainEqual({ kind: 'request-bootstrap', reason: 'gap', tables: TABLE_KEYS });
    expect((await bootstrapRows(db.url, slot)).map((r) => [r.table_name, r.state, r.reason, r.gap_after_lsn, r.gap_until_lsn])).toEqual(
      TABLE_KEYS.map((t) => [t, 'requested', 'gap', acked, until]),
    );
    expect(await watchRows(db.url, slot)).toEqual([expect.objectContaining({ generation: 2, lost_at: null, recreated_at: new Date(at), gap_after_lsn: acked, gap_until_lsn: until })]);

    await streamsAgainWithoutTheGap(db, queue, false, { afterLsn: acked, untilLsn: until });
  });

  it('dropped: `pgrelay slot drop --yes` forgets it, and the next streamer start creates a new slot', async () => {
    const { db, queue, slot } = await droppedBySomeone('slot_dropped_forget');
    const io = testIo();
    expect(await slotCommand(['drop', '--database-url', db.url, '--slot', slot, '--yes'], io)).toBe(0);
    expect(io.stderr).toBe('');
    expect(io.stdout).toContain(`replication slot ${slot} was already gone from `);
    expect(io.stdout).toContain('pgrelay has forgotten it, so the streamer creates a new one at its next start');
    expect(await watchRows(db.url, slot)).toEqual([]);
    expect(await bootstrapRows(db.url, slot)).toEqual([]);
    expect(await slotRow(db.url, slot)).toBeUndefined();

    // Forgotten: the monitor now sees a slot not created yet, nothing lost.
    const run = await monitor(monitorConfig(db.url, slot, false), T0 + 3 * MINUTE);
    expect(run.doc).toMatchObject({ slotState: 'missing', SlotLost: 0, SlotMissing: 1 });
    expect(codes(run.summary)).toContain('SLOT_NOT_CREATED');

    await streamsAgainWithoutTheGap(db, queue, true);
    expect(await slotRow(db.url, slot)).toMatchObject({ wal_status: 'reserved' });
  });

  it('never created, never seen: SlotMissing, not SlotLost; the streamer creates it', async () => {
    const { db, queue } = await setupDbAndQueue('slot_never_created', DDL);
    const slot = slotNameFor(db.url);
    const run = await monitor(monitorConfig(db.url, slot, true), T0);
    expect(run.summary.slotLost).toBe(false);
    expect(run.doc).toMatchObject({ slotState: 'missing', SlotMissing: 1, SlotLost: 0, SlotRecreated: 0 });
    expect(codes(run.summary)).toContain('SLOT_NOT_CREATED');
    expect(codes(run.summary)).not.toContain('SLOT_LOST');
    // Even with recreateLostSlot on, the monitor creates nothing: creating the slot is the streamer's job.
    expect(run.summary.actions.filter((a) => a.kind === 'recreate-slot')).toEqual([]);
    expect(await slotRow(db.url, slot)).toBeUndefined();
    // The state schema exists now, with no memory of this slot.
    expect(await watchRows(db.url, slot)).toEqual([]);

    const r = streamer(db, queue);
    await r.ready;
    expect(r.logs.find((l) => l.msg === 'source ready')).toMatchObject({ slotCreated: true });
    expect(r.logs.some((l) => l.msg === 'replication slot created')).toBe(true);
    expect((await insertAndReceive(db, queue, 'items', 1, 'first')).map(label)).toEqual(['items:1']);

    const next = await monitor(monitorConfig(db.url, slot, true), T0 + MINUTE);
    expect(next.doc).toMatchObject({ slotState: 'ok', SlotMissing: 0, SlotLost: 0, SlotActive: 1 });
    expect(await watchRows(db.url, slot)).toEqual([expect.objectContaining({ generation: 1, registered_at: new Date(T0 + MINUTE) })]);
  });
});
