import type { ClientConfig } from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '#core/errors.ts';
import { ConnectionProvider } from '#shared/connection.ts';
import { parseMonitorConfig, type MonitorConfig, type MonitorConfigInput } from '#monitor/config.ts';
import { handler, runMonitor } from '#monitor/handler.ts';
import { readStatus } from '#shared/source-status.ts';
import { emfProblems } from '#test/helpers/emf.ts';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';

const ROWS = 20_000;
const ROW_BYTES = 200;

interface Session {
  backend_type: string;
}

describe('monitor Lambda: slot metrics from a real PostgreSQL', () => {
  let db: Awaited<ReturnType<typeof testDatabase>>;
  let slot: string;
  const sql = <T extends object>(text: string, params: unknown[] = []) => withClient(db.url, async (c) => (await c.query(text, params)).rows as T[]);
  const publishedTables = async () =>
    (await sql<{ t: string }>(`SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`, [slot])).map((r) => r.t);
  const currentLsn = async () => (await sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))[0]?.lsn as string;

  const config = (input: Partial<MonitorConfigInput> = {}): MonitorConfig =>
    parseMonitorConfig({ sourceId: 'monitor-test', database: { url: db.url }, slotName: slot, publicationName: slot, tables: ['public.monitor_items'], ...input });

  /** Runs the monitor, recording the settings of every connection it asked for and its one line. */
  async function run(cfg: MonitorConfig, duringRun?: () => Promise<void>) {
    const opened: ClientConfig[] = [];
    const provider = new (class extends ConnectionProvider {
      override async clientConfig(opts?: Parameters<ConnectionProvider['clientConfig']>[0]): Promise<ClientConfig> {
        const settings = await super.clientConfig(opts);
        opened.push(settings);
        return settings;
      }
    })(cfg.database);
    const lines: string[] = [];
    const summary = await runMonitor(cfg, {
      connections: provider,
      write: async (line) => {
        lines.push(line);
        await duringRun?.();
      },
      now: () => 1_800_000_000_000,
    });
    expect(lines).toHaveLength(1);
    return { summary, opened, doc: JSON.parse(lines[0] as string) as Record<string, unknown> };
  }

  beforeAll(async () => {
    db = await testDatabase('monitor');
    slot = db.name;
    await withClient(db.url, async (c) => {
      await c.query('CREATE TABLE monitor_items (id int PRIMARY KEY, body text NOT NULL)');
      await c.query('CREATE TABLE monitor_unpublished (id int PRIMARY KEY)');
      await c.query(`CREATE PUBLICATION ${slot} FOR TABLE monitor_items`);
      await c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      // WAL the slot must keep, with no consumer to confirm any of it.
      await c.query(`INSERT INTO monitor_items SELECT g, repeat('x', ${ROW_BYTES}) FROM generate_series(1, ${ROWS}) AS g`);
    });
  });

  afterAll(async () => {
    await db?.drop();
  });

  it('reports the lag and retained WAL of a slot nobody consumes, in valid EMF, over a plain connection', async () => {
    const sessions: Session[][] = [];
    const walsenders: number[] = [];
    const before = await currentLsn();
    const { summary, opened, doc } = await run(config(), async () => {
      // While the monitor's connection is open: what kind of backend is it?
      sessions.push(await sql<Session>(`SELECT backend_type FROM pg_stat_activity WHERE application_name = 'pgrelay-monitor' AND datname = current_database()`));
      // Other test files share the server: look only at this database and this slot.
      const senders = await sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'walsender' AND datname = current_database()
         UNION ALL SELECT count(*)::int FROM pg_replication_slots WHERE slot_name = $1 AND active`,
        [slot],
      );
      walsenders.push(senders.reduce((sum, r) => sum + r.n, 0));
    });
    const after = await currentLsn();

    expect(emfProblems(doc)).toEqual([]);
    expect(doc).toMatchObject({ Source: 'monitor-test', Slot: slot, slotState: 'ok', SlotActive: 0, SlotLost: 0, SlotMissing: 0, PublicationMissingTables: 0, activePid: null });
    expect((doc._aws as { Timestamp: number }).Timestamp).toBe(1_800_000_000_000);

    // The lag is the distance from the WAL position the monitor read to the slot's confirmed position...
    const [slotRow] = await sql<{ confirmed: string; wal_status: string; lag: string; retained: string; current_between: boolean }>(
      `SELECT confirmed_flush_lsn::text AS confirmed, wal_status,
              pg_wal_lsn_diff($1::pg_lsn, confirmed_flush_lsn)::text AS lag,
              pg_wal_lsn_diff($1::pg_lsn, restart_lsn)::text AS retained,
              $1::pg_lsn >= $2::pg_lsn AND $1::pg_lsn <= $3::pg_lsn AS current_between
       FROM pg_replication_slots WHERE slot_name = $4`,
      [doc.currentWalLsn, before, after, slot],
    );
    expect(slotRow).toBeDefined();
    expect(doc.confirmedFlushLsn).toBe(slotRow?.confirmed);
    expect(doc.walStatus).toBe(slotRow?.wal_status);
    expect(doc.SlotLagBytes).toBe(Number(slotRow?.lag));
    expect(doc.SlotRetainedWalBytes).toBe(Number(slotRow?.retained));
    // ...and that position was read during the call, not before it or from a cache.
    expect(slotRow?.current_between).toBe(true);
    // The rows inserted after the slot was created are all unconfirmed.
    expect(doc.SlotLagBytes as number).toBeGreaterThan(ROWS * ROW_BYTES);
    expect(doc.SlotRetainedWalBytes as number).toBeGreaterThanOrEqual(doc.SlotLagBytes as number);
    expect(summary).toMatchObject({
      sourceId: 'monitor-test',
      slotName: slot,
      slotState: 'ok',
      lagBytes: doc.SlotLagBytes,
      retainedWalBytes: doc.SlotRetainedWalBytes,
      missingTables: [],
      slotLost: false,
    });

    // One ordinary connection: no walsender flag asked for, a client backend on the server, no walsender in this database or on the slot.
    expect(opened).toHaveLength(1);
    expect(opened[0]).not.toHaveProperty('replication');
    expect(sessions).toEqual([[{ backend_type: 'client backend' }]]);
    expect(walsenders).toEqual([0]);
    // And it was closed afterwards.
    expect(await sql(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'pgrelay-monitor' AND datname = current_database()`)).toEqual([]);
  });

  it('reports a slot not created yet as missing (not lost), with no distances', async () => {
    const { doc, summary } = await run(config({ slotName: 'pgrelay_monitor_absent' }));
    expect(emfProblems(doc)).toEqual([]);
    // pgrelay never saw this slot: the streamer creates it at its first start, nothing was lost.
    expect(doc).toMatchObject({ Slot: 'pgrelay_monitor_absent', slotState: 'missing', SlotMissing: 1, SlotLost: 0, SlotActive: 0 });
    expect(summary.findings.map((f) => f.code)).toContain('SLOT_NOT_CREATED');
    // Unknown distances are left out, never sent as a healthy-looking 0.
    expect(doc).not.toHaveProperty('SlotLagBytes');
    expect(doc).not.toHaveProperty('SlotRetainedWalBytes');
    expect(summary.slotState).toBe('missing');
  });

  it('with managePublication off, counts configured tables the publication lacks and names the statement', async () => {
    const { doc, summary } = await run(config({ tables: ['public.monitor_items', 'public.monitor_unpublished'], managePublication: false }));
    expect(emfProblems(doc)).toEqual([]);
    expect(doc.PublicationMissingTables).toBe(1);
    expect(doc.missingTables).toEqual(['public.monitor_unpublished']);
    expect(summary.missingTables).toEqual(['public.monitor_unpublished']);
    expect(summary.findings).toContainEqual(
      expect.objectContaining({ code: 'PUBLICATION_MISSING_TABLES', message: expect.stringContaining(`ALTER PUBLICATION "${slot}" ADD TABLE "public"."monitor_unpublished"`) }),
    );
    expect(await publishedTables()).toEqual(['public.monitor_items']);
  });

  it('adds configured tables the publication lacks, and requests their initial load once', async () => {
    const cfg = config({ tables: ['public.monitor_items', 'public.monitor_unpublished'] });
    const first = await run(cfg);
    expect(emfProblems(first.doc)).toEqual([]);
    expect(first.summary.actions).toContainEqual({ kind: 'add-to-publication', tables: ['public.monitor_unpublished'] });
    expect(first.doc.PublicationMissingTables).toBe(0);
    expect(await publishedTables()).toEqual(['public.monitor_items', 'public.monitor_unpublished']);

    // Every configured, published table pgrelay never loaded has a bootstrap request, recorded in the database.
    const requests = await sql<{ table_name: string; state: string; reason: string; requested_by: string; requested_at: Date }>(
      `SELECT table_name, state, reason, requested_by, requested_at FROM pgrelay.bootstrap WHERE slot_name = $1 ORDER BY table_name`,
      [slot],
    );
    expect(requests.map(({ requested_at: _, ...r }) => r)).toEqual([
      { table_name: 'public.monitor_items', state: 'requested', reason: 'initial', requested_by: 'pgrelay-monitor' },
      { table_name: 'public.monitor_unpublished', state: 'requested', reason: 'initial', requested_by: 'pgrelay-monitor' },
    ]);
    expect(first.doc.BootstrapPendingTables).toBe(2);
    expect(first.doc.bootstrap).toEqual({ 'public.monitor_items': 'requested', 'public.monitor_unpublished': 'requested' });

    // A second run finds nothing to add and asks for nothing again.
    const second = await run(cfg);
    expect(second.summary.actions.filter((a) => a.kind !== 'heartbeat')).toEqual([]);
    const again = await sql<{ requested_at: Date }>(`SELECT requested_at FROM pgrelay.bootstrap WHERE slot_name = $1 ORDER BY table_name`, [slot]);
    expect(again.map((r) => r.requested_at.getTime())).toEqual(requests.map((r) => r.requested_at.getTime()));
  });

  it('re-adds a table someone removed from the publication and asks for a re-read of it, marked as a gap', async () => {
    const cfg = config({ tables: ['public.monitor_items', 'public.monitor_unpublished'] });
    await sql(`ALTER PUBLICATION ${slot} DROP TABLE monitor_unpublished`);
    const { summary, doc } = await run(cfg);
    expect(emfProblems(doc)).toEqual([]);
    expect(summary.actions).toContainEqual({ kind: 'add-to-publication', tables: ['public.monitor_unpublished'] });
    expect(summary.actions).toContainEqual({ kind: 'request-bootstrap', reason: 'gap', tables: ['public.monitor_unpublished'] });
    // And said in the stream: a transactional gap notice the streamer turns into label.gap events.
    const notice = summary.actions.find((a) => a.kind === 'gap-notice');
    expect(notice).toMatchObject({ kind: 'gap-notice', reason: 'table-unpublished', tables: ['public.monitor_unpublished'] });
    const [written] = await sql<{ data: string }>(
      `SELECT encode(data, 'escape') AS data FROM pg_logical_slot_peek_binary_changes($1::name, NULL, NULL, 'proto_version', '1', 'publication_names', $3::text, 'messages', 'true')
       WHERE lsn = $2::pg_lsn AND position('pgrelay.gap' in encode(data, 'escape')) > 0`,
      [slot, (notice as { lsn: string }).lsn, slot],
    );
    expect(written?.data).toContain('"reason":"table-unpublished"');
    const rows = await sql<{ table_name: string; reason: string; state: string; gap_until_lsn: string | null; detail: string }>(
      `SELECT table_name, reason, state, gap_until_lsn::text, detail FROM pgrelay.bootstrap WHERE slot_name = $1 ORDER BY table_name`,
      [slot],
    );
    // The table that stayed published keeps its initial request; the removed one is to be re-read.
    expect(rows.map((r) => [r.table_name, r.reason, r.state])).toEqual([
      ['public.monitor_items', 'initial', 'requested'],
      ['public.monitor_unpublished', 'gap', 'requested'],
    ]);
    // The gap ends where the monitor found the table missing: before what this run reported at its end.
    const [order] = await sql<{ ok: boolean }>('SELECT $1::pg_lsn <= $2::pg_lsn AS ok', [rows[1]?.gap_until_lsn, doc.currentWalLsn]);
    expect(order?.ok).toBe(true);
    expect(rows[1]?.detail).toMatch(/missing from the publication/);
    expect(await publishedTables()).toEqual(['public.monitor_items', 'public.monitor_unpublished']);
  });

  it('pgrelay status reads the acknowledgement age the monitor recorded, on the server clock', async () => {
    const ageSlot = `${slot}_age`;
    await sql(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [ageSlot]);
    try {
      const [{ now }] = (await sql<{ now: Date }>('SELECT now() AS now')) as [{ now: Date }];
      // The monitor first saw this slot's position two minutes ago (its clock, as the Lambda's would be).
      const provider = new ConnectionProvider(parseMonitorConfig({ sourceId: 'age', database: { url: db.url }, tables: ['monitor_items'] }).database);
      await runMonitor(config({ slotName: ageSlot, heartbeat: false }), { connections: provider, write: () => undefined, now: () => now.getTime() - 120_000 });
      const status = await withClient(db.url, (c) => readStatus(c, { slotName: ageSlot, publicationName: slot, tables: [], stateSchema: 'pgrelay' }));
      expect(status.watch?.confirmedLsn).toBe(status.slot.state === 'missing' ? null : status.slot.confirmedFlushLsn);
      expect(status.lastAckAgeSeconds).toBeGreaterThanOrEqual(120);
      expect(status.lastAckAgeSeconds).toBeLessThan(150);
      // Without the state schema named, nothing is claimed.
      expect((await withClient(db.url, (c) => readStatus(c, { slotName: ageSlot, publicationName: slot, tables: [] }))).lastAckAgeSeconds).toBeNull();
    } finally {
      await sql('SELECT pg_drop_replication_slot($1)', [ageSlot]);
    }
  });

  it('without the privileges it needs, says which grant is missing and still reports the slot', async () => {
    const role = `mon_limited_${db.name}`.slice(0, 63);
    await sql(`CREATE ROLE ${role} LOGIN REPLICATION PASSWORD 'limited-pw'`);
    await sql(`CREATE TABLE monitor_later (id int PRIMARY KEY)`);
    try {
      const url = new URL(db.url);
      url.username = role;
      url.password = 'limited-pw';
      const cfg = parseMonitorConfig({
        sourceId: 'monitor-limited',
        database: { url: url.toString() },
        slotName: slot,
        publicationName: slot,
        tables: ['public.monitor_items', 'public.monitor_later'],
        stateSchema: 'pgrelay_limited',
      });
      const { doc, summary } = await run(cfg);
      expect(emfProblems(doc)).toEqual([]);
      expect(doc).toMatchObject({ slotState: 'ok', PublicationMissingTables: 1 });
      const byCode = new Map(summary.findings.map((f) => [f.code, f.message]));
      // No CREATE on the database: the state schema cannot be made, and the finding names the grant.
      expect(byCode.get('STATE_SCHEMA')).toMatch(/CREATE SCHEMA "pgrelay_limited" AUTHORIZATION|GRANT CREATE ON DATABASE/);
      // Not the owner of the publication or the table: it cannot add it, and says who can, with the statement.
      expect(byCode.get('PUBLICATION_MISSING_TABLES')).toContain(`ALTER PUBLICATION "${slot}" ADD TABLE "public"."monitor_later"`);
      expect(byCode.get('PUBLICATION_MISSING_TABLES')).toMatch(/owner/);
      expect(await publishedTables()).not.toContain('public.monitor_later');
      expect(await sql(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgrelay_limited'`)).toEqual([]);
    } finally {
      await sql(`DROP TABLE monitor_later`);
      await sql(`DROP OWNED BY ${role}`);
      await sql(`DROP ROLE ${role}`);
    }
  });

  it('handler() reads PGRELAY_MONITOR_CONFIG and prints one EMF line', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    vi.stubEnv('PGRELAY_MONITOR_CONFIG', JSON.stringify({ sourceId: 'monitor-handler', database: { url: db.url }, slotName: slot, publicationName: slot, tables: ['monitor_items'] }));
    try {
      const summary = await handler();
      expect(summary).toMatchObject({ sourceId: 'monitor-handler', slotName: slot, slotState: 'ok' });
      expect(log).toHaveBeenCalledTimes(1);
      const doc = JSON.parse(log.mock.calls[0]?.[0] as string) as Record<string, unknown>;
      expect(emfProblems(doc)).toEqual([]);
      expect(doc).toMatchObject({ Source: 'monitor-handler', Slot: slot, SlotMissing: 0 });
    } finally {
      log.mockRestore();
      vi.unstubAllEnvs();
    }
  });

  it('lists every config problem at once', () => {
    let error: unknown;
    try {
      parseMonitorConfig({ sourceId: 'Bad Id', database: { url: 'mysql://h/db', secretArn: 'arn:aws:secretsmanager:x' }, tables: ['a.b.c'], slotName: 'Bad-Slot', extra: 1 });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^sourceId: /),
        expect.stringMatching(/^slotName: /),
        expect.stringMatching(/^database: give either url/),
        expect.stringMatching(/^tables\.0: /),
        expect.stringMatching(/extra/),
      ]),
    );
  });
});
