/**
 * `pgrelay doctor`: is this database ready for pgrelay, and if not, what exactly to run or
 * change. Reads facts with a few catalog queries (nothing is changed), turns them into
 * findings (streamer/doctor-checks.ts) and prints them; exit code 0 ready, 1 something blocks
 * streaming, 2 the check itself could not run (no connection, bad arguments).
 * Key checks ask the streamer's own resolveTables, so doctor and streamer agree by construction.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg, { type ClientConfig } from 'pg';
import type { StreamerConfig } from '#core/config.ts';
import { ConfigError, PgRelayError, SourceError, describeError } from '#core/errors.ts';
import { parseTableName, quoteIdent, tableKey, type TableName } from '#core/identifiers.ts';
import { OPERATOR_USAGE, parseOperatorArgs, type OperatorTarget } from './args.ts';
import { explainConnectionFailure } from '#shared/connection.ts';
import {
  PLATFORM_ROLES,
  capacityFindings,
  detectPlatform,
  exitCodeOf,
  formatReport,
  publicationFindings,
  replicationConnectionFinding,
  replicationRoleFinding,
  slotFindings,
  sslFinding,
  stateSchemaFinding,
  tableFindings,
  versionFindings,
  walKeepFinding,
  walLevelFinding,
  type DoctorReport,
  type Finding,
  type KeyVerdict,
  type Platform,
  type PublicationFacts,
  type ReplicationProbe,
  type RoleFacts,
  type ServerFacts,
  type SlotFacts,
  type TableFacts,
} from './doctor/checks.ts';
import { resolveTables } from '#streamer/source.ts';

export interface DoctorTarget extends Pick<OperatorTarget, 'connections' | 'slotName' | 'publicationName' | 'tables' | 'stateSchema'> {
  /** tableKeys of the config, keyed by `schema.table`. */
  tableKeys: Map<string, string[]>;
  /** The streamer may create the publication / add tables to it (config managePublication). */
  managePublication: boolean;
}

export interface DoctorIo {
  out(text: string): void;
  err(text: string): void;
  /** ✓ ! ✗ marks instead of [ok] [warn] [BLOCK]. */
  unicode: boolean;
}

export async function doctorCommand(argv: string[]): Promise<number> {
  return runDoctor(argv, process.env, {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    unicode: process.stdout.isTTY === true,
  });
}

/** The whole command with its output going to `io`; returns the exit code. */
export async function runDoctor(argv: string[], env: Record<string, string | undefined>, io: DoctorIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(`usage: pgrelay doctor [--database-url URL | --secret-arn ARN --host H --dbname D] [--tables a,b | --config FILE] [--json]
Checks that the database is ready for pgrelay and prints the SQL or setting change for each problem.
Exit code: 0 ready, 1 something blocks streaming, 2 the check could not run.
${OPERATOR_USAGE}\n`);
    return 0;
  }
  let target: DoctorTarget;
  let json: boolean;
  try {
    const operator = parseOperatorArgs(argv, env);
    json = operator.json;
    target = { ...operator, ...configExtras(argv, env) };
  } catch (err) {
    const message = err instanceof ConfigError ? err.problems.join('; ') : describeError(err).message;
    if (argv.includes('--json')) io.out(`${JSON.stringify({ ready: false, platform: null, error: { code: 'INVALID_ARGUMENTS', message }, findings: [] }, null, 2)}\n`);
    io.err(`pgrelay doctor: ${message}\n${OPERATOR_USAGE}\n`);
    return 2;
  }
  try {
    const report = await diagnose(target);
    io.out(json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, { unicode: io.unicode }));
    return exitCodeOf(report.findings);
  } catch (err) {
    const known = err instanceof PgRelayError && err.code === 'CANNOT_CONNECT';
    const message = known ? err.message : `the check could not run: ${describeError(err).message}`;
    if (json) io.out(`${JSON.stringify({ ready: false, platform: null, target: target.connections.describe(), error: { code: known ? err.code : 'CHECK_FAILED', message }, findings: [] }, null, 2)}\n`);
    io.err(`pgrelay doctor: ${message}\n`);
    return 2;
  }
}

/** tableKeys and managePublication from the config document (the operator arguments do not carry them). */
function configExtras(argv: string[], env: Record<string, string | undefined>): Pick<DoctorTarget, 'tableKeys' | 'managePublication'> {
  const { values } = parseArgs({ args: argv, strict: false, allowPositionals: true, options: { config: { type: 'string' } } });
  // parseOperatorArgs has already read and parsed the same text, so neither fails here.
  const text = typeof values.config === 'string' ? readFileSync(values.config, 'utf8') : env.PGRELAY_CONFIG;
  const doc = (text === undefined ? {} : JSON.parse(text)) as { tableKeys?: unknown; managePublication?: unknown };
  const tableKeys = new Map<string, string[]>();
  const problems: string[] = [];
  if (doc.tableKeys !== undefined && (typeof doc.tableKeys !== 'object' || doc.tableKeys === null)) problems.push('tableKeys: must be an object');
  for (const [name, columns] of Object.entries((doc.tableKeys ?? {}) as Record<string, unknown>)) {
    const parsed = parseTableName(name);
    if (typeof parsed === 'string') problems.push(`tableKeys.${name}: ${parsed}`);
    else if (!Array.isArray(columns) || columns.length === 0) problems.push(`tableKeys.${name}: list the key columns`);
    else tableKeys.set(tableKey(parsed), columns.map(String));
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { tableKeys, managePublication: doc.managePublication !== false };
}

// --- connecting -----------------------------------------------------------------------------



/**
 * One sentence for a connection that failed: which server, what happened, what to do.
 * Adds what doctor knows beyond explainConnectionError (the user, TLS, a port that does not
 * speak PostgreSQL) and defers to it for the rest.
 */
export function explainDoctorConnectionError(err: unknown, to: { host: string; port: number; database: string; user: string }): string {
  return explainConnectionFailure(err, to).message;
}

function explainSecretError(err: unknown, where: string): string {
  if (err instanceof ConfigError) return err.problems.join('; ');
  if (err instanceof PgRelayError) return `${err.message}: the secret must be JSON with username and password`;
  const { message } = describeError(err);
  const name = err instanceof Error ? err.name : 'Error';
  return `cannot read the credentials for ${where} from Secrets Manager (${name}: ${message}): check the secret ARN, --region, and that these AWS credentials may call secretsmanager:GetSecretValue on it`;
}

async function connect(target: DoctorTarget, replication: boolean): Promise<{ client: pg.Client; config: ClientConfig }> {
  const where = target.connections.describe();
  let config: ClientConfig;
  try {
    config = await target.connections.clientConfig({ applicationName: 'pgrelay-doctor', replication });
  } catch (err) {
    throw new PgRelayError('CANNOT_CONNECT', explainSecretError(err, where), { cause: err });
  }
  // A catalog query that hangs (a lock, a dying server) must not hang doctor.
  const client = new pg.Client({ ...config, statement_timeout: 30_000, query_timeout: 35_000 });
  client.on('error', () => undefined); // a dropped connection surfaces as the next query's error
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new PgRelayError('CANNOT_CONNECT', explainDoctorConnectionError(err, { host: String(config.host ?? 'localhost'), port: config.port ?? 5432, database: String(config.database ?? ''), user: config.user ?? '?' }), { cause: err });
  }
  return { client, config };
}

// --- reading the facts ----------------------------------------------------------------------

const IDENTITY_SQL = `
SELECT current_setting('server_version_num')::int AS version_num, current_setting('server_version') AS version,
       pg_is_in_recovery() AS in_recovery, current_user::text AS "user", current_database()::text AS database`;

const SETTINGS_SQL = `
SELECT current_setting('wal_level') AS wal_level,
       current_setting('max_replication_slots')::int AS max_slots,
       current_setting('max_wal_senders')::int AS max_senders,
       (SELECT setting::int FROM pg_settings WHERE name = 'max_slot_wal_keep_size') AS keep_mb,
       current_setting('rds.logical_replication', true) AS rds_logical_replication,
       current_setting('azure.replication_support', true) AS azure_replication_support,
       (SELECT count(*)::int FROM pg_replication_slots) AS used_slots,
       -- every WAL sender appears here, even to a role that may not see its details
       (SELECT count(*)::int FROM pg_stat_replication) AS used_senders`;

const PLATFORM_SQL = `
SELECT ARRAY(SELECT name::text FROM pg_settings WHERE name ~ '^(rds|aurora|apg|cloudsql|azure)[._]') AS settings,
       ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1::text[])) AS roles,
       EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'aurora_version') AS aurora_function`;

const ROLE_SQL = `
SELECT r.rolsuper AS superuser, r.rolreplication AS replication,
       CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication')
            THEN pg_has_role(current_user, 'rds_replication', 'MEMBER') ELSE false END AS rds_replication,
       has_database_privilege(current_database(), 'CREATE') AS can_create
FROM pg_roles r WHERE r.rolname = current_user`;

/** Whether the monitor's state schema is there and usable, or can be made (CREATE on the database). */
const STATE_SCHEMA_SQL = `
  SELECT n.oid IS NOT NULL AS exists,
         COALESCE(has_schema_privilege(n.oid, 'USAGE') AND has_schema_privilege(n.oid, 'CREATE'), false) AS usable,
         COALESCE(to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL
                  AND has_table_privilege(to_regclass($2), 'SELECT, INSERT, UPDATE, DELETE')
                  AND has_table_privilege(to_regclass($3), 'SELECT, INSERT, UPDATE, DELETE'), false) AS tables_writable,
         has_database_privilege(current_database(), 'CREATE') AS can_create
  FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = $1`;

const SSL_SQL = 'SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()';

// Columns added in later versions (wal_status 13, invalidation_reason 17) are read through
// to_jsonb so one query serves every version.
const SLOTS_SQL = `
WITH cur AS (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn)
SELECT s.slot_name::text AS name, s.slot_type::text AS slot_type, s.plugin::text AS plugin, s.database::text AS database, s.active,
       pg_wal_lsn_diff(cur.lsn, s.confirmed_flush_lsn)::float8 AS lag_bytes,
       pg_wal_lsn_diff(cur.lsn, s.restart_lsn)::float8 AS retained_bytes,
       to_jsonb(s) ->> 'wal_status' AS wal_status,
       to_jsonb(s) ->> 'invalidation_reason' AS invalidation_reason
FROM pg_replication_slots s, cur ORDER BY s.slot_name`;

const TABLE_SQL = `
SELECT c.oid::text AS oid, c.relkind::text AS relkind, c.relreplident::text AS replident,
       pg_get_userbyid(c.relowner)::text AS owner, pg_has_role(c.relowner, 'USAGE') AS is_owner,
       has_table_privilege(c.oid, 'SELECT') AS can_select, has_schema_privilege(n.oid, 'USAGE') AS schema_usage,
       ARRAY(SELECT a.attname::text FROM pg_index i
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord) AS pk,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attstorage IN ('x', 'e')
             ORDER BY a.attnum) AS toastable,
       (SELECT json_build_object('name', ic.relname::text, 'columns', ARRAY(
                 SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord))
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate AND i.indisvalid
          AND i.indpred IS NULL AND i.indexprs IS NULL
          AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) AS k(attnum)
                          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum WHERE NOT a.attnotnull)
        ORDER BY i.indnatts, ic.relname LIMIT 1) AS unique_index
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`;

const LEAVES_SQL = `
SELECT n.nspname::text AS schema, c.relname::text AS "table", c.relreplident::text AS replident,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk
FROM pg_partition_tree($1::oid) t JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE t.isleaf AND c.relkind = 'r' ORDER BY 1, 2`;

const PUBLICATION_SQL = `
SELECT p.puballtables AS all_tables, p.pubinsert, p.pubupdate, p.pubdelete,
       coalesce((to_jsonb(p) ->> 'pubtruncate')::boolean, true) AS pubtruncate,
       (to_jsonb(p) ->> 'pubviaroot')::boolean AS viaroot,
       pg_get_userbyid(p.pubowner)::text AS owner, pg_has_role(p.pubowner, 'USAGE') AS may_alter
FROM pg_publication p WHERE p.pubname = $1`;

const PUBLICATION_TABLES_SQL = `SELECT schemaname::text AS schema, tablename::text AS "table" FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2`;

// Row filters (prqual) and column lists (prattrs) exist from PostgreSQL 15.
const PUBLICATION_FILTERS_SQL = `
SELECT n.nspname::text || '.' || c.relname::text AS name
FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE p.pubname = $1 AND (to_jsonb(r) ->> 'prqual' IS NOT NULL OR to_jsonb(r) ->> 'prattrs' IS NOT NULL)
ORDER BY 1`;

async function one<T extends pg.QueryResultRow>(client: pg.Client, sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await client.query<T>(sql, params);
  const row = rows[0];
  if (row === undefined) throw new Error(`no row from: ${sql.trim().split('\n')[0]}`);
  return row;
}

/** Runs every check against the target; throws PgRelayError CANNOT_CONNECT when it cannot connect. */
export async function diagnose(target: DoctorTarget): Promise<DoctorReport> {
  const { client, config } = await connect(target, false);
  const findings: Finding[] = [];
  /** A check that throws becomes an `error` finding; the others still run. */
  const attempt = async <T>(id: string, what: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (err) {
      findings.push({ id, severity: 'error', title: `could not check ${what}: ${describeError(err).message}`, detail: 'This part of the check did not run; the rest did.' });
      return undefined;
    }
  };
  try {
    const who = await one<{ version_num: number; version: string; in_recovery: boolean; user: string; database: string }>(client, IDENTITY_SQL);
    const platform: Platform =
      (await attempt('platform', 'the platform', async () => {
        const row = await one<{ settings: string[]; roles: string[]; aurora_function: boolean }>(client, PLATFORM_SQL, [PLATFORM_ROLES]);
        return detectPlatform({ settings: row.settings, roles: row.roles, auroraFunction: row.aurora_function });
      })) ?? 'self-hosted';
    const report: DoctorReport = { ready: false, platform, target: target.connections.describe(), user: who.user, serverVersion: who.version, findings };
    findings.push(...versionFindings({ versionNum: who.version_num, version: who.version, inRecovery: who.in_recovery }));
    if (who.version_num < 100000) return finish(report);

    const slots = await attempt('slots', 'replication slots', async () => {
      const { rows } = await client.query<{ name: string; slot_type: string; plugin: string | null; database: string | null; active: boolean; lag_bytes: number | null; retained_bytes: number | null; wal_status: string | null; invalidation_reason: string | null }>(SLOTS_SQL);
      return rows.map((r): SlotFacts => ({ name: r.name, slotType: r.slot_type, plugin: r.plugin, database: r.database, active: r.active, lagBytes: r.lag_bytes, retainedBytes: r.retained_bytes, walStatus: r.wal_status, invalidationReason: r.invalidation_reason }));
    });
    const ownSlot = slots?.find((s) => s.name === target.slotName);

    await attempt('server', 'server settings', async () => {
      const row = await one<{ wal_level: string; max_slots: number; max_senders: number; keep_mb: number | null; rds_logical_replication: string | null; azure_replication_support: string | null; used_slots: number; used_senders: number }>(client, SETTINGS_SQL);
      const server: ServerFacts = {
        versionNum: who.version_num,
        version: who.version,
        inRecovery: who.in_recovery,
        walLevel: row.wal_level,
        maxReplicationSlots: row.max_slots,
        usedReplicationSlots: row.used_slots,
        maxWalSenders: row.max_senders,
        usedWalSenders: row.used_senders,
        maxSlotWalKeepSizeMb: row.keep_mb,
        rdsLogicalReplication: row.rds_logical_replication,
        azureReplicationSupport: row.azure_replication_support,
      };
      findings.push(walLevelFinding(server, platform));
      findings.push(...capacityFindings(server, platform, { slotExists: ownSlot !== undefined, slotActive: ownSlot?.active === true }));
      const keep = walKeepFinding(server, platform);
      if (keep) findings.push(keep);
    });

    const role = await attempt('role.replication', 'the role', async () => {
      const row = await one<{ superuser: boolean; replication: boolean; rds_replication: boolean; can_create: boolean }>(client, ROLE_SQL);
      const facts: RoleFacts = { user: who.user, superuser: row.superuser, replication: row.replication, rdsReplication: row.rds_replication };
      const finding = replicationRoleFinding(facts, platform);
      findings.push(finding);
      return { canReplicate: finding.severity === 'ok', canCreate: row.can_create };
    });
    if (role?.canReplicate) {
      // Only when the role may replicate: otherwise this fails for the reason already reported.
      findings.push(replicationConnectionFinding(await probeReplication(target), who.user));
    }

    await attempt('connection.ssl', 'TLS', async () => {
      const row = await one<{ ssl: boolean; version: string | null }>(client, SSL_SQL);
      const ssl = config.ssl;
      const verified = typeof ssl === 'object' && ssl !== null && ssl.rejectUnauthorized !== false;
      findings.push(sslFinding({ host: String(config.host ?? ''), encrypted: row.ssl, version: row.version, verified }, platform));
    });

    await attempt('state.schema', "pgrelay's state schema", async () => {
      const row = await one<{ exists: boolean; usable: boolean; tables_writable: boolean; can_create: boolean }>(client, STATE_SCHEMA_SQL, [
        target.stateSchema,
        `${quoteIdent(target.stateSchema)}.slot_watch`,
        `${quoteIdent(target.stateSchema)}.bootstrap`,
      ]);
      findings.push(stateSchemaFinding({ schema: target.stateSchema, user: who.user, exists: row.exists, usable: row.usable, tablesWritable: row.tables_writable, canCreateSchema: row.can_create }));
    });

    const publication = await attempt('publication', `publication ${target.publicationName}`, () => readPublication(client, target.publicationName));
    let tables = target.tables;
    if (tables.length === 0 && publication?.exists && !publication.allTables) {
      tables = publication.members;
    }
    if (tables.length === 0) {
      findings.push({
        id: 'tables',
        severity: 'warn',
        title: 'no tables to check',
        detail: 'Neither --tables nor a config names them, and the publication lists none, so keys, privileges and publication membership were not checked.',
        fix: { note: 'run doctor with --tables schema.table,... or --config FILE' },
      });
    }
    const tableFacts: TableFacts[] = [];
    for (const t of tables) {
      await attempt(`table:${tableKey(t)}`, `table ${tableKey(t)}`, async () => {
        const facts = await readTable(client, t, who.version_num);
        tableFacts.push(facts);
        const verdict = facts.exists ? await streamerVerdict(client, t, target.tableKeys) : ({ ok: false, code: 'TABLE_NOT_FOUND', message: '' } as const);
        findings.push(...tableFindings(facts, verdict, { user: who.user, tableKeys: target.tableKeys }));
      });
    }
    if (publication) {
      findings.push(
        ...publicationFindings(publication, {
          user: who.user,
          database: who.database,
          tables: tableFacts,
          canCreateInDatabase: role?.canCreate ?? false,
          managePublication: target.managePublication,
          serverVersion: who.version_num,
        }),
      );
    }
    if (slots) findings.push(...slotFindings(slots, { slotName: target.slotName, database: who.database }));
    return finish(report);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function finish(report: DoctorReport): DoctorReport {
  report.ready = exitCodeOf(report.findings) === 0;
  return report;
}

async function probeReplication(target: DoctorTarget): Promise<ReplicationProbe> {
  let connection: { client: pg.Client } | undefined;
  try {
    connection = await connect(target, true);
    await connection.client.query('IDENTIFY_SYSTEM');
    return { ok: true };
  } catch (err) {
    const cause = err instanceof PgRelayError && err.cause !== undefined ? err.cause : err;
    const code = (cause as { code?: unknown })?.code;
    return { ok: false, code: typeof code === 'string' ? code : undefined, message: describeError(cause).message };
  } finally {
    await connection?.client.end().catch(() => undefined);
  }
}

/** The streamer's verdict on the table's key (resolveTables from streamer/source.ts). */
async function streamerVerdict(client: pg.Client, table: TableName, tableKeys: Map<string, string[]>): Promise<KeyVerdict> {
  // resolveTables reads only `tables` and `tableKeys` of the config.
  const config = { tables: [table], tableKeys } as unknown as StreamerConfig;
  try {
    const info = (await resolveTables(client, config)).get(tableKey(table));
    return { ok: true, keyColumns: info?.keyColumns ?? [] };
  } catch (err) {
    // The key is fine there; the partitions' identity is the problem, and the partition
    // finding (tableFindings) says which ones and how to fix each.
    if (err instanceof SourceError && err.code === 'PARTITION_IDENTITY') return { ok: true, keyColumns: tableKeys.get(tableKey(table)) ?? [] };
    if (err instanceof SourceError) return { ok: false, code: err.code, message: err.message };
    throw err;
  }
}

async function readTable(client: pg.Client, name: TableName, versionNum: number): Promise<TableFacts> {
  const { rows } = await client.query<{
    oid: string;
    relkind: string;
    replident: string;
    owner: string;
    is_owner: boolean;
    can_select: boolean;
    schema_usage: boolean;
    pk: string[];
    toastable: string[];
    unique_index: { name: string; columns: string[] } | null;
  }>(TABLE_SQL, [name.schema, name.table]);
  const row = rows[0];
  if (!row) {
    return { name, exists: false, relkind: '', replident: '', primaryKey: [], owner: '', isOwner: false, canSelect: false, schemaUsage: false, toastable: [], uniqueIndex: null, leaves: [] };
  }
  let leaves: TableFacts['leaves'] = [];
  if (row.relkind === 'p' && versionNum >= 120000) {
    const result = await client.query<{ schema: string; table: string; replident: string; has_pk: boolean }>(LEAVES_SQL, [row.oid]);
    leaves = result.rows.map((l) => ({ name: { schema: l.schema, table: l.table }, replident: l.replident, hasPk: l.has_pk }));
  }
  return {
    name,
    exists: true,
    relkind: row.relkind,
    replident: row.replident,
    primaryKey: row.pk,
    owner: row.owner,
    isOwner: row.is_owner,
    canSelect: row.can_select,
    schemaUsage: row.schema_usage,
    toastable: row.toastable,
    uniqueIndex: row.unique_index,
    leaves,
  };
}

async function readPublication(client: pg.Client, name: string): Promise<PublicationFacts> {
  const { rows } = await client.query<{ all_tables: boolean; pubinsert: boolean; pubupdate: boolean; pubdelete: boolean; pubtruncate: boolean; viaroot: boolean | null; owner: string; may_alter: boolean }>(PUBLICATION_SQL, [name]);
  const row = rows[0];
  if (!row) {
    return { name, exists: false, owner: null, mayAlter: false, allTables: false, viaRoot: null, publish: { insert: true, update: true, delete: true, truncate: true }, members: [], filtered: [] };
  }
  const members = await client.query<TableName>(PUBLICATION_TABLES_SQL, [name]);
  const filtered = await client.query<{ name: string }>(PUBLICATION_FILTERS_SQL, [name]);
  return {
    name,
    exists: true,
    owner: row.owner,
    mayAlter: row.may_alter,
    allTables: row.all_tables,
    viaRoot: row.viaroot,
    publish: { insert: row.pubinsert, update: row.pubupdate, delete: row.pubdelete, truncate: row.pubtruncate },
    members: members.rows.map((r) => ({ schema: r.schema, table: r.table })),
    filtered: filtered.rows.map((r) => r.name),
  };
}
