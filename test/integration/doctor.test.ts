import { execFile } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Finding } from '#cli/doctor/finding.ts';
import type { DoctorReport } from '#cli/doctor/report.ts';
import { runDoctor } from '#cli/doctor.ts';
import { freePort } from '#dev/postgres/server.ts';
import { ensureStateSchema } from '#shared/source-state.ts';
import { createTestDatabase, startTestPostgres, testDatabase, withClient, type TestPostgres } from '#test/helpers/postgres.ts';
import { onCleanup, runCleanups } from '#test/helpers/scenario.ts';

afterEach(runCleanups);

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `pgrelay doctor ...` as an operator runs it. */
function doctorCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  for (const name of ['PGRELAY_DATABASE_URL', 'PGRELAY_CONFIG']) delete env[name];
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'cli/pgrelay.ts', 'doctor', ...args], { cwd: root, env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

/** doctor in this process, with --json; `config` is the PGRELAY_CONFIG document. */
async function doctor(args: string[], config?: object): Promise<{ code: number; report: DoctorReport }> {
  let out = '';
  let err = '';
  const env = config ? { PGRELAY_CONFIG: JSON.stringify(config) } : {};
  const code = await runDoctor([...args, '--json'], env, { out: (t) => (out += t), err: (t) => (err += t), unicode: false });
  expect(err).toBe('');
  return { code, report: JSON.parse(out) as DoctorReport };
}

function finding(report: DoctorReport, id: string): Finding {
  const found = report.findings.find((f) => f.id === id);
  if (!found) throw new Error(`no finding ${id} in ${report.findings.map((f) => f.id).join(', ')}`);
  return found;
}

/** Runs a finding's fix SQL as it is printed, one statement per line (ALTER SYSTEM refuses a transaction block). */
async function applyFix(url: string, f: Finding): Promise<void> {
  const sql = f.fix?.sql;
  if (sql === undefined) throw new Error(`finding ${f.id} has no SQL fix`);
  await withClient(url, async (c) => {
    for (const statement of sql.split('\n')) await c.query(statement);
  });
}

function asUser(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString();
}

async function dropRole(serverUrl: string, role: string): Promise<void> {
  await withClient(serverUrl, (c) => c.query(`DROP ROLE IF EXISTS "${role}"`));
}

describe('doctor on a server set up wrongly on purpose', () => {
  let server: TestPostgres;

  beforeAll(async () => {
    // In postgresql.conf, not on the command line, so ALTER SYSTEM can change them for the restart.
    server = await startTestPostgres({ confSettings: ['wal_level=replica', 'max_replication_slots=1'] });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('wal_level=replica and no free slot: exit 1 with the ALTER SYSTEM fixes; applied and restarted, both are ok', async () => {
    const db = await createTestDatabase(server.url, 'doctor_wal');
    await withClient(db.url, async (c) => {
      await c.query('CREATE TABLE t (id int PRIMARY KEY, n int)');
      await c.query('CREATE PUBLICATION doctor_pub FOR TABLE t');
      // Takes the only slot max_replication_slots=1 allows.
      await c.query(`SELECT pg_create_physical_replication_slot('standby_1')`);
    });
    const args = ['--database-url', db.url, '--tables', 't', '--publication', 'doctor_pub', '--slot', 'doctor_slot'];

    const json = await doctorCli([...args, '--json']);
    expect(json.code).toBe(1);
    const before = JSON.parse(json.stdout) as DoctorReport;
    expect(before).toMatchObject({ ready: false, platform: 'self-hosted' });
    const walLevel = finding(before, 'server.wal_level');
    expect(walLevel).toMatchObject({ severity: 'block', title: 'wal_level is replica; logical replication needs logical' });
    expect(walLevel.fix).toEqual({ sql: 'ALTER SYSTEM SET wal_level = logical;', note: expect.stringMatching(/restart PostgreSQL/) });
    const slots = finding(before, 'capacity.replication_slots');
    expect(slots).toMatchObject({ severity: 'block', title: 'no free replication slot (1 of max_replication_slots = 1 in use)' });
    expect(slots.fix?.sql).toBe('ALTER SYSTEM SET max_replication_slots = 10;');
    expect(finding(before, 'slot.other:standby_1')).toMatchObject({ severity: 'ok' });
    // Nothing else blocks: the table and the publication are fine.
    expect(before.findings.filter((f) => f.severity === 'block').map((f) => f.id).sort()).toEqual(['capacity.replication_slots', 'server.wal_level']);

    const human = await doctorCli(args);
    expect(human.code).toBe(1);
    expect(human.stdout).toContain('[BLOCK] wal_level is replica; logical replication needs logical\n');
    expect(human.stdout).toMatch(/\n {10}fix:\n {12}ALTER SYSTEM SET wal_level = logical;\n/);
    expect(human.stdout.trimEnd().split('\n').at(-1)).toMatch(/^NOT READY: 2 blocking, \d+ warnings?, \d+ ok$/);

    await applyFix(server.url, walLevel);
    await applyFix(server.url, slots);
    await server.restart?.();
    const after = await doctor(args);
    expect(finding(after.report, 'server.wal_level')).toMatchObject({ severity: 'ok', title: 'wal_level is logical' });
    expect(finding(after.report, 'capacity.replication_slots')).toMatchObject({ severity: 'ok', title: '9 replication slots free (1 of max_replication_slots = 10 in use)' });
    expect(after.code).toBe(0);
    expect(after.report.ready).toBe(true);

    // The warning about unlimited slot WAL: its fix applies without a restart.
    const keep = finding(after.report, 'server.max_slot_wal_keep_size');
    expect(keep).toMatchObject({ severity: 'warn', fix: { sql: "ALTER SYSTEM SET max_slot_wal_keep_size = '50GB';\nSELECT pg_reload_conf();" } });
    await applyFix(server.url, keep);
    expect(finding((await doctor(args)).report, 'server.max_slot_wal_keep_size')).toMatchObject({ severity: 'ok', title: 'max_slot_wal_keep_size = 50.0 GiB' });
  });

  it('on RDS (recognised by its roles) the replication fix is GRANT rds_replication, and membership counts', async () => {
    // Roles are cluster-wide: this server is this file's own, so they mislead no other test.
    const db = await createTestDatabase(server.url, 'doctor_rds');
    const role = `app_${db.name}`;
    await withClient(db.url, async (c) => {
      await c.query('CREATE ROLE rds_superuser NOLOGIN');
      await c.query('CREATE ROLE rds_replication NOLOGIN');
      await c.query(`CREATE ROLE "${role}" LOGIN PASSWORD 'pw'`);
      await c.query('CREATE TABLE t (id int PRIMARY KEY)');
      await c.query(`GRANT SELECT ON t TO "${role}"`);
      await c.query('CREATE PUBLICATION doctor_pub FOR TABLE t');
    });
    const args = ['--database-url', asUser(db.url, role, 'pw'), '--tables', 't', '--publication', 'doctor_pub'];
    const before = await doctor(args);
    expect(before.report.platform).toBe('rds');
    const replication = finding(before.report, 'role.replication');
    expect(replication).toMatchObject({ severity: 'block', fix: { sql: `GRANT rds_replication TO "${role}";` } });

    await applyFix(server.url, replication);
    const after = await doctor(args);
    expect(finding(after.report, 'role.replication')).toMatchObject({ severity: 'ok', title: `${role} is a member of rds_replication` });
    // Plain PostgreSQL gives rds_replication no meaning (RDS does), so the real replication
    // connection doctor opens still fails here: the probe reports what actually happens.
    expect(finding(after.report, 'role.replication_connection')).toMatchObject({ severity: 'block', title: expect.stringMatching(/permission denied to start WAL sender/) });
  });
});

describe('doctor on the suite server', () => {
  it('a LOGIN role without REPLICATION: a finding with ALTER ROLE; applied, doctor is green', async () => {
    const db = await testDatabase('doctor_role');
    const role = `app_${db.name}`;
    onCleanup(async () => {
      await db.drop();
      await dropRole(new URL('/postgres', db.url).toString(), role);
    });
    await withClient(db.url, async (c) => {
      await c.query(`CREATE ROLE "${role}" LOGIN PASSWORD 'pw'`);
      await c.query('CREATE TABLE t (id int PRIMARY KEY, n int)');
      await c.query(`GRANT SELECT ON t TO "${role}"`);
      await c.query('CREATE PUBLICATION doctor_pub FOR TABLE t');
    });
    const args = ['--database-url', asUser(db.url, role, 'pw'), '--tables', 't', '--publication', 'doctor_pub', '--slot', `s_${db.name}`];
    const before = await doctor(args);
    expect(before.code).toBe(1);
    const replication = finding(before.report, 'role.replication');
    expect(replication).toMatchObject({ severity: 'block', title: `${role} may not replicate: it has no REPLICATION attribute`, fix: { sql: `ALTER ROLE "${role}" WITH REPLICATION;` } });
    expect(before.report.findings.filter((f) => f.severity === 'block')).toHaveLength(1);

    await applyFix(db.url, replication);
    const after = await doctor(args);
    expect(finding(after.report, 'role.replication')).toMatchObject({ severity: 'ok', title: `${role} has the REPLICATION attribute` });
    expect(finding(after.report, 'role.replication_connection')).toMatchObject({ severity: 'ok' });
    expect(after.code).toBe(0);

    // The role may not create the monitor's state schema: a warning with the statement; applied, it is ok.
    const state = finding(after.report, 'state.schema');
    expect(state).toMatchObject({ severity: 'warn', fix: { sql: `CREATE SCHEMA "pgrelay" AUTHORIZATION "${role}";` } });
    await applyFix(db.url, state);
    expect(finding((await doctor(args)).report, 'state.schema')).toMatchObject({ severity: 'ok', title: `pgrelay's state schema pgrelay is usable by ${role}` });
  });

  it('tables without a key: REPLICA IDENTITY FULL with tableKeys, or USING INDEX; partitions and TOAST columns too', async () => {
    const db = await testDatabase('doctor_keys');
    onCleanup(() => db.drop());
    await withClient(db.url, (c) =>
      c.query(`
        CREATE TABLE nokey (a int, b int);
        CREATE TABLE uq (a int NOT NULL UNIQUE, b int);
        CREATE TABLE part (a int, b int) PARTITION BY RANGE (a);
        CREATE TABLE part_1 PARTITION OF part FOR VALUES FROM (0) TO (100);
        CREATE TABLE docs (id int PRIMARY KEY, body text);
      `),
    );
    const tables = ['nokey', 'uq', 'part', 'docs'];
    const args = ['--database-url', db.url, '--publication', `p_${db.name}`, '--slot', `s_${db.name}`];
    const before = await doctor(args, { tables });
    expect(before.code).toBe(1);
    const nokey = finding(before.report, 'table.key:public.nokey');
    expect(nokey).toMatchObject({ severity: 'block', title: 'public.nokey has no primary key, so pgrelay cannot tell its rows apart' });
    expect(nokey.fix?.sql).toBe('ALTER TABLE "public"."nokey" REPLICA IDENTITY FULL;');
    expect(nokey.fix?.note).toContain('"tableKeys": {"public.nokey": ["column", ...]}');
    const uq = finding(before.report, 'table.key:public.uq');
    expect(uq.fix?.sql).toBe('ALTER TABLE "public"."uq" REPLICA IDENTITY USING INDEX "uq_a_key";');
    const part = finding(before.report, 'table.key:public.part');
    expect(part.fix?.sql).toBe('ALTER TABLE "public"."part" REPLICA IDENTITY FULL;');
    const toast = finding(before.report, 'table.toast:public.docs');
    expect(toast).toMatchObject({ severity: 'warn', title: 'public.docs has columns stored out of line (TOAST) without REPLICA IDENTITY FULL: body', fix: { sql: 'ALTER TABLE "public"."docs" REPLICA IDENTITY FULL;' } });
    expect(finding(before.report, 'table.key:public.docs')).toMatchObject({ severity: 'ok', title: 'public.docs is keyed by (id) from its primary key' });

    for (const f of [nokey, uq, part, toast]) await applyFix(db.url, f);
    const config = { tables, tableKeys: { nokey: ['a'], part: ['a'] } };
    const middle = await doctor(args, config);
    expect(finding(middle.report, 'table.key:public.nokey')).toMatchObject({ severity: 'ok', title: 'public.nokey is keyed by (a) from its tableKeys' });
    expect(finding(middle.report, 'table.key:public.uq')).toMatchObject({ severity: 'ok', title: 'public.uq is keyed by (a) from its replica identity index' });
    expect(middle.report.findings.some((f) => f.id === 'table.toast:public.docs')).toBe(false);
    // REPLICA IDENTITY on a partitioned table does not reach its partitions: doctor says so.
    const partitions = finding(middle.report, 'table.partitions:public.part');
    expect(partitions).toMatchObject({ severity: 'block', fix: { sql: 'ALTER TABLE "public"."part_1" REPLICA IDENTITY FULL;' } });

    await applyFix(db.url, partitions);
    const after = await doctor(args, config);
    expect(after.report.findings.filter((f) => f.severity === 'block')).toEqual([]);
    expect(after.code).toBe(0);
  });

  it('a missing publication: the CREATE PUBLICATION the streamer would run, and who may run it; applied, doctor is green', async () => {
    const db = await testDatabase('doctor_pub');
    const role = `app_${db.name}`;
    const pub = `p_${db.name}`;
    onCleanup(async () => {
      await db.drop();
      await dropRole(new URL('/postgres', db.url).toString(), role);
    });
    await withClient(db.url, async (c) => {
      await c.query(`CREATE ROLE "${role}" LOGIN REPLICATION PASSWORD 'pw'`);
      await c.query('CREATE TABLE orders (id int PRIMARY KEY, n int)');
      await c.query('CREATE TABLE lines (id int PRIMARY KEY, n int)');
      await c.query(`GRANT SELECT ON orders, lines TO "${role}"`);
    });
    const appUrl = asUser(db.url, role, 'pw');
    const args = (url: string, tables: string) => ['--database-url', url, '--tables', tables, '--publication', pub, '--slot', `s_${db.name}`];

    const before = await doctor(args(appUrl, 'orders'));
    expect(before.code).toBe(1);
    const missing = finding(before.report, 'publication');
    expect(missing).toMatchObject({ severity: 'block', title: `publication ${pub} does not exist` });
    expect(missing.fix?.sql).toBe(`CREATE PUBLICATION "${pub}" FOR TABLE "public"."orders" WITH (publish_via_partition_root = true);`);
    expect(missing.detail).toContain(`${role} has no CREATE privilege on database ${db.name}; ${role} does not own public.orders`);

    // A superuser could let the streamer create it: not blocking, and the same statement offered.
    const asSuperuser = finding((await doctor(args(db.url, 'orders'))).report, 'publication');
    expect(asSuperuser).toMatchObject({ severity: 'ok', title: `publication ${pub} does not exist yet; the streamer will create it`, fix: { sql: missing.fix?.sql } });

    await applyFix(db.url, missing);
    const created = await doctor(args(appUrl, 'orders'));
    expect(finding(created.report, 'publication')).toMatchObject({ severity: 'ok', title: `publication ${pub} exists (owner postgres)`, detail: expect.stringContaining('only postgres (or a superuser) may alter it') });
    expect(finding(created.report, 'publication.tables')).toMatchObject({ severity: 'ok' });
    expect(created.code).toBe(0);

    // A table the publication lacks, and a publication that leaves out updates and deletes.
    await withClient(db.url, (c) => c.query(`ALTER PUBLICATION "${pub}" SET (publish = 'insert')`));
    const lacking = await doctor(args(appUrl, 'orders,lines'));
    const addTable = finding(lacking.report, 'publication.tables');
    expect(addTable).toMatchObject({ severity: 'block', title: `publication ${pub} lacks public.lines`, fix: { sql: `ALTER PUBLICATION "${pub}" ADD TABLE "public"."lines";` } });
    const publish = finding(lacking.report, 'publication.publish');
    expect(publish).toMatchObject({ severity: 'block', title: `publication ${pub} does not publish update, delete, truncate` });
    await applyFix(db.url, addTable);
    await applyFix(db.url, publish);
    const fixed = await doctor(args(appUrl, 'orders,lines'));
    expect(fixed.report.findings.filter((f) => f.severity === 'block')).toEqual([]);
    expect(fixed.code).toBe(0);
  });

  it('what the bootstrap needs: SELECT on each table, EXECUTE on pg_logical_emit_message, SELECT and UPDATE on the bootstrap table; each with its GRANT, applied, ok', async () => {
    const db = await testDatabase('doctor_boot');
    const role = `app_${db.name}`;
    onCleanup(async () => {
      await db.drop();
      await dropRole(new URL('/postgres', db.url).toString(), role);
    });
    await withClient(db.url, async (c) => {
      await c.query(`CREATE ROLE "${role}" LOGIN REPLICATION PASSWORD 'pw'`);
      await c.query('CREATE TABLE orders (id int PRIMARY KEY, n int)');
      await c.query('CREATE PUBLICATION doctor_pub FOR TABLE orders WITH (publish_via_partition_root = true)');
      // The state schema made by someone else (the monitor as another user): its tables are not the role's.
      await ensureStateSchema(c, 'pgrelay');
      // As hardened servers and managed platforms do: EXECUTE no longer granted to everyone (function ACLs are per database).
      const { rows } = await c.query<{ f: string }>(
        `SELECT COALESCE(to_regprocedure('pg_logical_emit_message(boolean,text,text)'), to_regprocedure('pg_logical_emit_message(boolean,text,text,boolean)'))::text AS f`,
      );
      await c.query(`REVOKE EXECUTE ON FUNCTION ${rows[0]?.f} FROM PUBLIC`);
    });
    const args = ['--database-url', asUser(db.url, role, 'pw'), '--tables', 'orders', '--publication', 'doctor_pub', '--slot', `s_${db.name}`];

    const before = await doctor(args);
    expect(before.code).toBe(1);
    expect(before.report.findings.filter((f) => f.severity === 'block').map((f) => f.id).sort()).toEqual(['role.emit_message', 'state.bootstrap_table', 'table.privileges:public.orders']);
    const select = finding(before.report, 'table.privileges:public.orders');
    expect(select).toMatchObject({ title: `${role} may not read public.orders, so its bootstrap would fail`, fix: { sql: `GRANT SELECT ON "public"."orders" TO "${role}";` } });
    const emit = finding(before.report, 'role.emit_message');
    expect(emit).toMatchObject({ title: expect.stringMatching(new RegExp(`^${role} may not call pg_logical_emit_message\\(boolean, text, text(, boolean)?\\), so every bootstrap fails$`)) });
    expect(emit.fix?.sql).toMatch(new RegExp(`^GRANT EXECUTE ON FUNCTION pg_catalog\\.pg_logical_emit_message\\(boolean, text, text(, boolean)?\\) TO "${role}";$`));
    const state = finding(before.report, 'state.bootstrap_table');
    expect(state).toMatchObject({
      title: `as ${role} the streamer cannot carry out any bootstrap: no USAGE on schema pgrelay, no SELECT on pgrelay.bootstrap, no UPDATE on pgrelay.bootstrap`,
      fix: { sql: `GRANT USAGE ON SCHEMA "pgrelay" TO "${role}";\nGRANT SELECT, UPDATE ON "pgrelay"."bootstrap" TO "${role}";` },
    });

    for (const f of [select, emit, state]) await applyFix(db.url, f);
    const after = await doctor(args);
    expect(finding(after.report, 'table.privileges:public.orders')).toMatchObject({ severity: 'ok', title: `${role} may read public.orders, as its bootstrap does` });
    expect(finding(after.report, 'role.emit_message')).toMatchObject({ severity: 'ok', title: expect.stringMatching(new RegExp(`^${role} may call pg_logical_emit_message\\(`)) });
    expect(finding(after.report, 'state.bootstrap_table')).toMatchObject({ severity: 'ok', title: `${role} may read and update the bootstrap requests in pgrelay.bootstrap` });
    expect(after.report.findings.filter((f) => f.severity === 'block')).toEqual([]);
    expect(after.code).toBe(0);
  });

  it('a database prepared for pgrelay: exit 0, and --json is one document with ready: true', async () => {
    const db = await testDatabase('doctor_ready');
    const role = `app_${db.name}`;
    const slot = `s_${db.name}`;
    onCleanup(async () => {
      await db.drop();
      await dropRole(new URL('/postgres', db.url).toString(), role);
    });
    await withClient(db.url, async (c) => {
      await c.query(`CREATE ROLE "${role}" LOGIN REPLICATION PASSWORD 'pw'`);
      await c.query('CREATE TABLE orders (id bigint PRIMARY KEY, total numeric)');
      await c.query(`GRANT SELECT ON orders TO "${role}"`);
      await c.query(`CREATE PUBLICATION doctor_pub FOR TABLE orders WITH (publish_via_partition_root = true)`);
      await c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
    });
    const args = ['--database-url', asUser(db.url, role, 'pw'), '--tables', 'orders', '--publication', 'doctor_pub', '--slot', slot];
    const json = await doctorCli([...args, '--json']);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as DoctorReport;
    expect(report).toMatchObject({ ready: true, platform: 'self-hosted', user: role });
    expect(report.findings.filter((f) => f.severity !== 'ok' && f.severity !== 'warn')).toEqual([]);
    expect(finding(report, `slot:${slot}`)).toMatchObject({ severity: 'ok', title: expect.stringMatching(new RegExp(`^slot ${slot}: inactive, [\\d.]+ (bytes|KiB|MiB|GiB) behind`)) });
    // PostgreSQL grants EXECUTE on pg_logical_emit_message to PUBLIC; no state schema yet: nothing to say of its bootstrap table.
    expect(finding(report, 'role.emit_message')).toMatchObject({ severity: 'ok' });
    expect(report.findings.some((f) => f.id === 'state.bootstrap_table')).toBe(false);

    const human = await doctorCli(args);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`[ok]    ${role} has the REPLICATION attribute\n`);
    expect(human.stdout.trimEnd().split('\n').at(-1)).toMatch(/^READY: 0 blocking, \d+ warnings?, \d+ ok$/);
  });

  it('cannot connect or bad arguments: exit 2 with one sentence naming the server and the fix, never a stack trace', async () => {
    const db = await testDatabase('doctor_conn');
    onCleanup(() => db.drop());
    const closedPort = await freePort();
    // Something that is not PostgreSQL holds this port: it hangs up on every connection.
    const impostor = net.createServer((socket) => socket.destroy());
    impostor.listen(0, '127.0.0.1');
    await once(impostor, 'listening');
    onCleanup(async () => {
      impostor.close();
      await once(impostor, 'close');
    });
    const impostorPort = (impostor.address() as net.AddressInfo).port;
    const server = new URL(db.url);
    const wrongPassword = asUser(db.url, decodeURIComponent(server.username), 'not-the-password');
    const noDatabase = new URL(db.url);
    noDatabase.pathname = '/no_such_db';

    const [refused, password, database, notPostgres, noTarget] = await Promise.all([
      doctorCli(['--database-url', `postgres://u:p@127.0.0.1:${closedPort}/app`]),
      doctorCli(['--database-url', wrongPassword]),
      doctorCli(['--database-url', noDatabase.toString(), '--json']),
      doctorCli(['--database-url', `postgres://u:p@127.0.0.1:${impostorPort}/app`]),
      doctorCli(['--tables', 't']),
    ]);
    for (const r of [refused, password, database, notPostgres, noTarget]) {
      expect(r.code).toBe(2);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const oneSentence = (stderr: string) => {
      expect(stderr.trimEnd().split('\n')).toHaveLength(1);
      return stderr;
    };
    expect(oneSentence(refused.stderr)).toMatch(new RegExp(`^pgrelay doctor: nothing accepts connections at 127\\.0\\.0\\.1:${closedPort}/app: start PostgreSQL or fix the host and port`));
    const host = server.hostname;
    expect(oneSentence(password.stderr)).toContain(`pgrelay doctor: PostgreSQL at ${host}:${server.port}/${db.name} rejected the password of user ${decodeURIComponent(server.username)}: check the credentials`);
    expect(oneSentence(database.stderr)).toContain(`pgrelay doctor: database no_such_db does not exist on ${host}:${server.port}`);
    expect(JSON.parse(database.stdout)).toMatchObject({ ready: false, error: { code: 'PGRELAY_CANNOT_CONNECT', message: expect.stringContaining('no_such_db does not exist') } });
    expect(oneSentence(notPostgres.stderr)).toMatch(new RegExp(`^pgrelay doctor: 127\\.0\\.0\\.1:${impostorPort} closed the connection without answering like PostgreSQL`));
    expect(noTarget.stderr).toMatch(/^pgrelay doctor: say where the database is: --database-url URL/);
  });
});
