/**
 * `pgrelay doctor`, the pure half: facts read from the database go in, findings come out.
 * Each finding says what is wrong and how to fix it on the platform the database runs on
 * (self-hosted, RDS, Aurora, Cloud SQL, Azure), so the fix can be pasted as it is.
 * streamer/doctor.ts reads the facts and prints the report.
 */
import { qualifiedName, quoteIdent, tableKey, type TableName } from '#core/identifiers.ts';
import type { SourceErrorCode } from '#core/errors.ts';
import { formatBytes } from '#core/bytes.ts';

/**
 * `ok`: nothing to do. `warn`: streaming works, but something deserves attention.
 * `block`: the streamer would stop or lose changes. `error`: the check itself could not run.
 */
export type Severity = 'ok' | 'warn' | 'block' | 'error';

export interface Fix {
  /** SQL to run as it is (statements end in `;`). */
  sql?: string;
  /** A change made outside SQL: RDS/Aurora parameter group, Cloud SQL flag, Azure server parameter. */
  parameterGroup?: string;
  note?: string;
}

export interface Finding {
  /** Stable: `check` or `check:subject` (`table.key:public.orders`, `slot:pgrelay_default`). */
  id: string;
  severity: Severity;
  /** One line: what was found. */
  title: string;
  /** Why it matters, with the numbers. */
  detail: string;
  fix?: Fix;
}

export type Platform = 'self-hosted' | 'rds' | 'aurora' | 'cloudsql' | 'azure';

export interface DoctorReport {
  ready: boolean;
  platform: Platform;
  /** host:port/database */
  target: string;
  user: string;
  serverVersion: string;
  findings: Finding[];
}

/** A slot that is not streaming and holds more WAL than this is worth a warning. */
export const RETAINED_WAL_WARN_BYTES = 1024 ** 3;
/** What doctor suggests for max_slot_wal_keep_size when it is unlimited. */
export const SUGGESTED_SLOT_WAL_KEEP_MB = 50 * 1024;

// --- platform ---------------------------------------------------------------------------

export interface PlatformFacts {
  /** Names of settings that exist on the server, at least those starting with rds., aurora., apg, cloudsql., azure. */
  settings: string[];
  /** Which of the providers' well-known roles exist. */
  roles: string[];
  /** The aurora_version() function exists. */
  auroraFunction: boolean;
}

/** Role names the query for PlatformFacts.roles asks about. */
export const PLATFORM_ROLES = ['rds_superuser', 'rds_replication', 'cloudsqlsuperuser', 'azure_pg_admin', 'azuresu'];

/** Each provider adds its own roles and settings to PostgreSQL; their presence names the platform. */
export function detectPlatform(f: PlatformFacts): Platform {
  const setting = (prefix: string) => f.settings.some((s) => s.startsWith(prefix));
  const role = (name: string) => f.roles.includes(name);
  const rds = role('rds_superuser') || role('rds_replication') || setting('rds.');
  if (f.auroraFunction || setting('aurora') || setting('apg_')) return 'aurora';
  if (rds) return 'rds';
  if (role('cloudsqlsuperuser') || setting('cloudsql.')) return 'cloudsql';
  if (role('azure_pg_admin') || role('azuresu') || setting('azure.')) return 'azure';
  return 'self-hosted';
}

export function platformName(p: Platform): string {
  return { 'self-hosted': 'self-hosted PostgreSQL', rds: 'Amazon RDS for PostgreSQL', aurora: 'Aurora PostgreSQL', cloudsql: 'Cloud SQL for PostgreSQL', azure: 'Azure Database for PostgreSQL' }[p];
}

/**
 * How to change a server setting on each platform. `value` is SQL-ready for ALTER SYSTEM;
 * `rawValue` is what a parameter group or flag takes (plain number in the setting's unit).
 */
export function settingFix(platform: Platform, name: string, value: string, opts: { restart: boolean; rawValue?: string }): Fix {
  const raw = opts.rawValue ?? value;
  switch (platform) {
    case 'self-hosted':
      return opts.restart
        ? { sql: `ALTER SYSTEM SET ${name} = ${value};`, note: 'then restart PostgreSQL (a -c setting on the server command line overrides ALTER SYSTEM)' }
        : { sql: `ALTER SYSTEM SET ${name} = ${value};\nSELECT pg_reload_conf();` };
    case 'rds':
    case 'aurora': {
      const group = platform === 'aurora' ? 'DB cluster parameter group' : 'DB parameter group';
      return {
        parameterGroup: `${name} = ${raw} in the ${group}`,
        note: opts.restart
          ? `then reboot the ${platform === 'aurora' ? 'writer instance' : 'instance'} (the parameter is static); ALTER SYSTEM is not available on ${platformName(platform)}`
          : `applies without a reboot (dynamic parameter); ALTER SYSTEM is not available on ${platformName(platform)}`,
      };
    }
    case 'cloudsql':
      return {
        parameterGroup: `database flag ${name}=${raw}`,
        note: `gcloud sql instances patch INSTANCE --database-flags=${name}=${raw} (the list replaces every flag already set: repeat those)${opts.restart ? '; the instance restarts' : ''}`,
      };
    case 'azure':
      return {
        parameterGroup: `server parameter ${name} = ${raw}`,
        note: `az postgres flexible-server parameter set --resource-group RG --server-name SERVER --name ${name} --value ${raw}${opts.restart ? '; then az postgres flexible-server restart --resource-group RG --name SERVER' : ''}`,
      };
  }
}

// --- server -------------------------------------------------------------------------------

export interface ServerFacts {
  versionNum: number;
  /** server_version, e.g. "18.4" */
  version: string;
  walLevel: string;
  inRecovery: boolean;
  maxReplicationSlots: number;
  usedReplicationSlots: number;
  maxWalSenders: number;
  usedWalSenders: number;
  /** MB; -1 is unlimited; null before PostgreSQL 13. */
  maxSlotWalKeepSizeMb: number | null;
  /** rds.logical_replication ('on'/'off') where it exists. */
  rdsLogicalReplication: string | null;
  /** azure.replication_support: only Azure's retired Single Server has it. */
  azureReplicationSupport: string | null;
}

export function versionFindings(s: Pick<ServerFacts, 'versionNum' | 'version' | 'inRecovery'>): Finding[] {
  const findings: Finding[] = [];
  if (s.versionNum < 100000) {
    findings.push({
      id: 'server.version',
      severity: 'block',
      title: `PostgreSQL ${s.version} has no built-in logical replication`,
      detail: 'pgrelay reads changes through the pgoutput plugin and a publication, both added in PostgreSQL 10.',
      fix: { note: 'upgrade to a supported PostgreSQL release (13 or later; pgrelay is tested on 18)' },
    });
  } else if (s.versionNum < 130000) {
    findings.push({
      id: 'server.version',
      severity: 'warn',
      title: `PostgreSQL ${s.version} is older than 13`,
      detail: 'Before 13 a partitioned table is published as its separate partitions (no publish_via_partition_root), and slots have no wal_status, so neither their risk nor max_slot_wal_keep_size can be watched.',
      fix: { note: 'upgrade to PostgreSQL 13 or later' },
    });
  } else {
    findings.push({ id: 'server.version', severity: 'ok', title: `PostgreSQL ${s.version}`, detail: 'Logical replication with publish_via_partition_root and slot WAL status.' });
  }
  if (s.inRecovery) {
    findings.push({
      id: 'server.standby',
      severity: 'block',
      title: 'connected to a standby (read replica), not the primary',
      detail: 'A publication cannot be created on a standby and pgrelay needs the primary\'s WAL position; point pgrelay at the primary.',
      fix: { note: 'use the primary\'s address (on Aurora the cluster (writer) endpoint, not the reader endpoint)' },
    });
  }
  return findings;
}

export function walLevelFinding(s: ServerFacts, platform: Platform): Finding {
  if (s.walLevel === 'logical') {
    return { id: 'server.wal_level', severity: 'ok', title: 'wal_level is logical', detail: 'The WAL carries what logical decoding needs.' };
  }
  const base = { id: 'server.wal_level', severity: 'block' as const, title: `wal_level is ${s.walLevel}; logical replication needs logical` };
  switch (platform) {
    case 'rds':
    case 'aurora': {
      const pending = s.rdsLogicalReplication === 'on' || s.rdsLogicalReplication === '1';
      const group = platform === 'aurora' ? 'DB cluster parameter group' : 'DB parameter group';
      return {
        ...base,
        detail: pending
          ? 'rds.logical_replication is already 1, but the instance has not been rebooted since it was set, so wal_level is not logical yet.'
          : `On ${platformName(platform)} wal_level cannot be set directly: it becomes logical when rds.logical_replication is 1 and the instance has been rebooted.`,
        fix: {
          parameterGroup: `rds.logical_replication = 1 in the ${group} attached to the ${platform === 'aurora' ? 'cluster' : 'instance'}`,
          note: `then reboot the ${platform === 'aurora' ? 'writer instance' : 'instance'}; SHOW wal_level should then say logical`,
        },
      };
    }
    case 'cloudsql':
      return {
        ...base,
        detail: 'On Cloud SQL logical decoding is turned on with the cloudsql.logical_decoding flag.',
        fix: {
          parameterGroup: 'database flag cloudsql.logical_decoding=on',
          note: 'gcloud sql instances patch INSTANCE --database-flags=cloudsql.logical_decoding=on (the list replaces every flag already set: repeat those); the instance restarts',
        },
      };
    case 'azure':
      return s.azureReplicationSupport !== null
        ? {
            ...base,
            detail: 'On Azure Database for PostgreSQL Single Server logical decoding is set with azure.replication_support.',
            fix: {
              parameterGroup: 'server parameter azure.replication_support = logical',
              note: 'az postgres server configuration set --resource-group RG --server-name SERVER --name azure.replication_support --value logical; then az postgres server restart --resource-group RG --name SERVER',
            },
          }
        : {
            ...base,
            detail: 'On Azure Database for PostgreSQL flexible server wal_level is a server parameter that needs a restart.',
            fix: settingFix('azure', 'wal_level', 'logical', { restart: true }),
          };
    case 'self-hosted':
      return {
        ...base,
        detail: 'wal_level can only change at server start.',
        fix: settingFix('self-hosted', 'wal_level', 'logical', { restart: true }),
      };
  }
}

/** Free replication slots and WAL senders: pgrelay needs one of each unless its slot already exists / streams. */
export function capacityFindings(s: ServerFacts, platform: Platform, own: { slotExists: boolean; slotActive: boolean }): Finding[] {
  const findings: Finding[] = [];
  const freeSlots = s.maxReplicationSlots - s.usedReplicationSlots;
  const slotsTitle = `${s.usedReplicationSlots} of max_replication_slots = ${s.maxReplicationSlots} in use`;
  if (!own.slotExists && freeSlots <= 0) {
    const wanted = Math.max(10, s.usedReplicationSlots + 2);
    findings.push({
      id: 'capacity.replication_slots',
      severity: 'block',
      title: `no free replication slot (${slotsTitle})`,
      detail: 'pgrelay creates one logical slot at first start. Raise max_replication_slots, or drop a slot nothing uses (see the slot findings).',
      fix: settingFix(platform, 'max_replication_slots', String(wanted), { restart: true }),
    });
  } else {
    findings.push({ id: 'capacity.replication_slots', severity: 'ok', title: `${freeSlots} replication slot${freeSlots === 1 ? '' : 's'} free (${slotsTitle})`, detail: own.slotExists ? 'pgrelay\'s slot exists already.' : 'pgrelay needs one.' });
  }
  const freeSenders = s.maxWalSenders - s.usedWalSenders;
  const sendersTitle = `${s.usedWalSenders} of max_wal_senders = ${s.maxWalSenders} in use`;
  if (!own.slotActive && freeSenders <= 0) {
    const wanted = Math.max(10, s.usedWalSenders + 2);
    findings.push({
      id: 'capacity.wal_senders',
      severity: 'block',
      title: `no free WAL sender (${sendersTitle})`,
      detail: 'The streamer\'s replication connection is served by a WAL sender process; standbys and other replication clients use them too.',
      fix: settingFix(platform, 'max_wal_senders', String(wanted), { restart: true }),
    });
  } else {
    findings.push({ id: 'capacity.wal_senders', severity: 'ok', title: `${freeSenders} WAL sender${freeSenders === 1 ? '' : 's'} free (${sendersTitle})`, detail: own.slotActive ? 'pgrelay\'s slot is streaming already.' : 'pgrelay needs one.' });
  }
  return findings;
}

export function walKeepFinding(s: ServerFacts, platform: Platform): Finding | undefined {
  if (s.maxSlotWalKeepSizeMb === null) return undefined;
  if (s.maxSlotWalKeepSizeMb >= 0) {
    return {
      id: 'server.max_slot_wal_keep_size',
      severity: 'ok',
      title: `max_slot_wal_keep_size = ${formatBytes(s.maxSlotWalKeepSizeMb * 1024 * 1024)}`,
      detail: 'A slot that falls further behind is invalidated instead of filling the disk; then its tables need a new bootstrap.',
    };
  }
  const gb = SUGGESTED_SLOT_WAL_KEEP_MB / 1024;
  return {
    id: 'server.max_slot_wal_keep_size',
    severity: 'warn',
    title: 'max_slot_wal_keep_size is unlimited (-1)',
    detail: `A slot whose reader stops keeps every WAL file from then on, until the disk is full and PostgreSQL stops. With a limit PostgreSQL invalidates the slot instead (pgrelay then needs a new bootstrap). Pick a size the disk can spare and larger than the WAL written during the longest outage you want to survive; ${gb} GB is an example.`,
    fix: settingFix(platform, 'max_slot_wal_keep_size', `'${gb}GB'`, { restart: false, rawValue: String(SUGGESTED_SLOT_WAL_KEEP_MB) }),
  };
}

// --- the role -------------------------------------------------------------------------------

export interface RoleFacts {
  user: string;
  superuser: boolean;
  replication: boolean;
  /** Member of rds_replication (RDS/Aurora). */
  rdsReplication: boolean;
}

export function replicationRoleFinding(r: RoleFacts, platform: Platform): Finding {
  if (r.superuser) {
    return { id: 'role.replication', severity: 'ok', title: `${r.user} is a superuser`, detail: 'It may replicate; a role with only REPLICATION, SELECT on the tables and ownership of the publication is enough and safer.' };
  }
  if (r.replication) return { id: 'role.replication', severity: 'ok', title: `${r.user} has the REPLICATION attribute`, detail: 'It may create the slot and stream from it.' };
  if (r.rdsReplication) return { id: 'role.replication', severity: 'ok', title: `${r.user} is a member of rds_replication`, detail: 'It may create the slot and stream from it.' };
  const rds = platform === 'rds' || platform === 'aurora';
  return {
    id: 'role.replication',
    severity: 'block',
    title: `${r.user} may not replicate: it has no REPLICATION attribute${rds ? ' and is not a member of rds_replication' : ''}`,
    detail: 'Creating a logical slot and opening a replication connection need it.',
    fix: rds
      ? { sql: `GRANT rds_replication TO ${quoteIdent(r.user)};`, note: `run as the master user; ${platformName(platform)} does not allow ALTER ROLE ... REPLICATION` }
      : {
          sql: `ALTER ROLE ${quoteIdent(r.user)} WITH REPLICATION;`,
          note: platform === 'cloudsql' ? 'run as a cloudsqlsuperuser member (e.g. postgres)' : platform === 'azure' ? 'run as the server admin (azure_pg_admin)' : 'run as a superuser',
        },
  };
}

/** The outcome of opening a replication connection and running IDENTIFY_SYSTEM. */
export type ReplicationProbe = { ok: true } | { ok: false; code: string | undefined; message: string };

export function replicationConnectionFinding(probe: ReplicationProbe, user: string): Finding {
  if (probe.ok) return { id: 'role.replication_connection', severity: 'ok', title: 'a replication connection works', detail: `${user} opened a WAL sender connection and ran IDENTIFY_SYSTEM.` };
  const hba = probe.code === '28000';
  return {
    id: 'role.replication_connection',
    severity: 'block',
    title: `a replication connection as ${user} failed: ${probe.message}`,
    detail: 'The streamer reads changes over a replication connection (replication=database).',
    fix: {
      note: hba
        ? 'add a pg_hba.conf line for this user and client address; a logical replication connection matches the database name, not the "replication" keyword'
        : 'see the message; the role needs REPLICATION and a free WAL sender',
    },
  };
}

// --- TLS ------------------------------------------------------------------------------------

export interface SslFacts {
  host: string;
  encrypted: boolean;
  /** TLS version when encrypted. */
  version: string | null;
  /** The client checks the server certificate (verify-ca / verify-full). */
  verified: boolean;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('/') || /^127\./.test(host) || host === '::1' || host === '[::1]';
}

export function sslFinding(s: SslFacts, platform: Platform): Finding {
  const verifyFix: Fix = {
    note: `connect with --ssl-mode verify-full --ca-bundle FILE (database.sslMode and caBundle in the config)${platform === 'rds' || platform === 'aurora' ? '; the RDS CA bundle: https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem' : ''}`,
  };
  if (s.encrypted && s.verified) return { id: 'connection.ssl', severity: 'ok', title: `TLS in use (${s.version ?? 'TLS'}), server certificate verified`, detail: 'Credentials and row data travel encrypted to the server pgrelay expects.' };
  if (isLoopback(s.host)) {
    return { id: 'connection.ssl', severity: 'ok', title: `${s.encrypted ? 'TLS in use' : 'not encrypted'} on a loopback connection (${s.host})`, detail: 'Nothing leaves this machine; use verify-full for a remote database.' };
  }
  if (s.encrypted) {
    return { id: 'connection.ssl', severity: 'warn', title: `TLS in use (${s.version ?? 'TLS'}) but the server certificate is not verified`, detail: 'sslMode require encrypts but would also talk to an impostor.', fix: verifyFix };
  }
  return { id: 'connection.ssl', severity: 'warn', title: `the connection to ${s.host} is not encrypted`, detail: 'Passwords and every changed row would cross the network in clear text.', fix: verifyFix };
}

// --- tables ---------------------------------------------------------------------------------

export interface TableFacts {
  name: TableName;
  exists: boolean;
  /** r: table, p: partitioned table, v, m, f ...: not publishable. */
  relkind: string;
  /** d: default (primary key), n: nothing, f: full, i: index */
  replident: string;
  primaryKey: string[];
  owner: string;
  /** The doctor's user owns the table (or is a superuser / member of its owner). */
  isOwner: boolean;
  canSelect: boolean;
  schemaUsage: boolean;
  /** Columns whose values may be stored out of line (TOAST): text, jsonb, bytea, arrays ... */
  toastable: string[];
  /** A unique, non-partial index on NOT NULL columns: a replica identity candidate. */
  uniqueIndex: { name: string; columns: string[] } | null;
  /** Leaf partitions of a partitioned table (their own replica identity is what decoding uses). */
  leaves: { name: TableName; replident: string; hasPk: boolean }[];
}

/** What resolveTables (streamer/source.ts) decided for the table: the streamer's own verdict. */
export type KeyVerdict = { ok: true; keyColumns: string[] } | { ok: false; code: SourceErrorCode; message: string };

export function tableFindings(t: TableFacts, verdict: KeyVerdict, ctx: { user: string; tableKeys: Map<string, string[]> }): Finding[] {
  const key = tableKey(t.name);
  const q = qualifiedName(t.name);
  if (!t.exists) {
    return [{
      id: `table.exists:${key}`,
      severity: 'block',
      title: `table ${key} does not exist`,
      detail: 'Names are case-sensitive: a mixed-case name is written quoted in the config ("Schema"."Table").',
      fix: { note: 'correct the name in tables (or --tables), create the table, or remove it from the list' },
    }];
  }
  if (t.relkind !== 'r' && t.relkind !== 'p') {
    return [{ id: `table.exists:${key}`, severity: 'block', title: `${key} is not a table (relkind ${t.relkind})`, detail: 'Only tables and partitioned tables can be published.', fix: { note: 'remove it from tables; publish the table it reads from instead' } }];
  }
  const findings: Finding[] = [];
  const grants: string[] = [];
  if (!t.schemaUsage) grants.push(`GRANT USAGE ON SCHEMA ${quoteIdent(t.name.schema)} TO ${quoteIdent(ctx.user)};`);
  if (!t.canSelect) grants.push(`GRANT SELECT ON ${q} TO ${quoteIdent(ctx.user)};`);
  findings.push(
    grants.length === 0
      ? { id: `table.privileges:${key}`, severity: 'ok', title: `${ctx.user} may read ${key}`, detail: 'Bootstrap reads the table with SELECT.' }
      : {
          id: `table.privileges:${key}`,
          severity: 'block',
          title: `${ctx.user} may not read ${key}${t.schemaUsage ? '' : ` (no USAGE on schema ${t.name.schema})`}`,
          detail: 'Bootstrap reads the table with SELECT.',
          fix: { sql: grants.join('\n'), note: `run as the table owner (${t.owner}) or a superuser` },
        },
  );
  findings.push(keyFinding(t, verdict, ctx.tableKeys));
  const needsFull = t.replident === 'f';
  if (t.relkind === 'p') {
    const bad = t.leaves.filter((l) => !(l.replident === 'f' || (!needsFull && (l.replident === 'i' || (l.replident === 'd' && l.hasPk)))));
    if (bad.length > 0 && verdict.ok) {
      findings.push({
        id: `table.partitions:${key}`,
        severity: 'block',
        title: `partitions of ${key} lack the replica identity the table needs: ${bad.map((l) => tableKey(l.name)).join(', ')}`,
        detail: 'Changes are decoded per partition, with each partition\'s own replica identity; ALTER TABLE on the partitioned table does not change its partitions, nor does it reach partitions created later.',
        fix: { sql: bad.map((l) => `ALTER TABLE ${qualifiedName(l.name)} REPLICA IDENTITY FULL;`).join('\n') },
      });
    }
  }
  if (verdict.ok && !needsFull && t.toastable.length > 0) {
    findings.push({
      id: `table.toast:${key}`,
      severity: 'warn',
      title: `${key} has columns stored out of line (TOAST) without REPLICA IDENTITY FULL: ${t.toastable.join(', ')}`,
      detail: 'An update that leaves a large value unchanged does not carry it: the event names the column in `unchanged` instead of its value. REPLICA IDENTITY FULL makes PostgreSQL log the old row, from which pgrelay fills it, at the cost of more WAL per update and delete.',
      fix: { sql: `ALTER TABLE ${q} REPLICA IDENTITY FULL;`, note: t.relkind === 'p' ? 'and the same for each partition' : 'skip it if consumers handle `unchanged`' },
    });
  }
  return findings;
}

function keyFinding(t: TableFacts, verdict: KeyVerdict, tableKeys: Map<string, string[]>): Finding {
  const key = tableKey(t.name);
  const q = qualifiedName(t.name);
  const id = `table.key:${key}`;
  if (verdict.ok) {
    const source = tableKeys.has(key) ? 'tableKeys' : t.replident === 'i' ? 'replica identity index' : 'primary key';
    return { id, severity: 'ok', title: `${key} is keyed by (${verdict.keyColumns.join(', ')}) from its ${source}`, detail: `Node ids are ${t.name.table}:<${verdict.keyColumns.join(', ')}>.` };
  }
  // The streamer's own sentence is the detail; the title and the fix are chosen by its code.
  const block = { id, severity: 'block' as const, detail: `The streamer would stop with: ${verdict.message}` };
  const configured = tableKeys.get(key);
  const tableKeysNote = `give its key in the config: "tableKeys": {"${key}": ["column", ...]} (columns that identify a row)`;
  const useIndex = t.uniqueIndex && `ALTER TABLE ${q} REPLICA IDENTITY USING INDEX ${quoteIdent(t.uniqueIndex.name)};`;
  switch (verdict.code) {
    case 'REPLICA_IDENTITY':
      if (t.replident === 'n') {
        const title = `${key} has REPLICA IDENTITY NOTHING: its updates and deletes carry no key`;
        if (t.primaryKey.length > 0) return { ...block, title, fix: { sql: `ALTER TABLE ${q} REPLICA IDENTITY DEFAULT;` } };
        if (useIndex) return { ...block, title, fix: { sql: useIndex, note: 'or add a primary key' } };
        return { ...block, title, fix: { sql: `ALTER TABLE ${q} REPLICA IDENTITY FULL;`, ...(configured ? {} : { note: `and ${tableKeysNote}` }) } };
      }
      return { ...block, title: `${key}: deletes would not carry every tableKeys column (${configured?.join(', ') ?? ''})`, fix: { sql: `ALTER TABLE ${q} REPLICA IDENTITY FULL;` } };
    case 'NO_USABLE_KEY': {
      if (configured) return { ...block, title: `tableKeys for ${key} name columns it does not have`, fix: { note: 'correct tableKeys in the config' } };
      const title = `${key} has no primary key, so pgrelay cannot tell its rows apart`;
      if (useIndex && t.uniqueIndex) {
        return {
          ...block,
          title,
          detail: `${block.detail}. The unique index ${t.uniqueIndex.name} on NOT NULL (${t.uniqueIndex.columns.join(', ')}) can serve as the key.`,
          fix: { sql: useIndex, note: 'or add a primary key' },
        };
      }
      if (t.replident === 'f') return { ...block, title, fix: { note: `it has REPLICA IDENTITY FULL already: ${tableKeysNote}, or add a primary key` } };
      return { ...block, title, fix: { sql: `ALTER TABLE ${q} REPLICA IDENTITY FULL;`, note: `and ${tableKeysNote}; or add a primary key instead` } };
    }
    default:
      return { ...block, title: `${key} cannot be streamed (${verdict.code})` };
  }
}

// --- publication ----------------------------------------------------------------------------

export interface PublicationFacts {
  name: string;
  exists: boolean;
  owner: string | null;
  /** The doctor's user owns the publication (or is a superuser / member of its owner). */
  mayAlter: boolean;
  allTables: boolean;
  /** null before PostgreSQL 13. */
  viaRoot: boolean | null;
  publish: { insert: boolean; update: boolean; delete: boolean; truncate: boolean };
  /** Every table it publishes (pg_publication_tables). */
  members: TableName[];
  /** Tables it publishes with a row filter or a column list (PostgreSQL 15+). */
  filtered: string[];
}

/** The statement the streamer runs when the publication is missing (streamer/source.ts ensurePublication). */
export function createPublicationSql(name: string, tables: TableName[], serverVersion: number): string {
  return `CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${tables.map(qualifiedName).join(', ')}${serverVersion >= 130000 ? ' WITH (publish_via_partition_root = true)' : ''};`;
}

export function publicationFindings(
  p: PublicationFacts,
  ctx: { user: string; database: string; tables: TableFacts[]; canCreateInDatabase: boolean; managePublication: boolean; serverVersion: number },
): Finding[] {
  const publishable = ctx.tables.filter((t) => t.exists && (t.relkind === 'r' || t.relkind === 'p'));
  const notOwned = publishable.filter((t) => !t.isOwner);
  const ownersNote = notOwned.length > 0 ? `run as the owner of ${notOwned.map((t) => `${tableKey(t.name)} (${t.owner})`).join(', ')}, or a superuser` : undefined;
  const id = 'publication';
  if (!p.exists) {
    if (publishable.length === 0) {
      return [{ id, severity: 'block', title: `publication ${p.name} does not exist`, detail: 'No table to put in it was given or found.', fix: { note: 'name the tables with --tables or --config, then run doctor again for the statement' } }];
    }
    const sql = createPublicationSql(p.name, publishable.map((t) => t.name), ctx.serverVersion);
    const reasons: string[] = [];
    if (!ctx.managePublication) reasons.push('managePublication is false');
    if (!ctx.canCreateInDatabase) reasons.push(`${ctx.user} has no CREATE privilege on database ${ctx.database}`);
    if (notOwned.length > 0) reasons.push(`${ctx.user} does not own ${notOwned.map((t) => tableKey(t.name)).join(', ')}`);
    if (reasons.length === 0) {
      return [{ id, severity: 'ok', title: `publication ${p.name} does not exist yet; the streamer will create it`, detail: `${ctx.user} may create it (CREATE on the database, owner of the tables). To create it ahead instead, run the statement below.`, fix: { sql } }];
    }
    return [{
      id,
      severity: 'block',
      title: `publication ${p.name} does not exist`,
      detail: `The streamer cannot create it: ${reasons.join('; ')}. Creating a publication for tables needs CREATE on the database and ownership of each table.`,
      fix: { sql, note: [ownersNote ?? 'run as a superuser or the tables\' owner', `then ALTER PUBLICATION ${quoteIdent(p.name)} OWNER TO ${quoteIdent(ctx.user)}; lets the streamer add tables later (it must own them too)`].join('; ') },
    }];
  }
  const findings: Finding[] = [];
  const who = p.mayAlter ? `${ctx.user} may alter it` : `only ${p.owner ?? 'its owner'} (or a superuser) may alter it`;
  findings.push({ id, severity: 'ok', title: `publication ${p.name} exists (owner ${p.owner ?? 'unknown'})`, detail: `${p.allTables ? 'It publishes ALL TABLES' : `It publishes ${p.members.length} table${p.members.length === 1 ? '' : 's'}`}; ${who}.` });
  const missingActions = (['insert', 'update', 'delete', 'truncate'] as const).filter((a) => !p.publish[a]);
  if (missingActions.length > 0) {
    findings.push({
      id: 'publication.publish',
      severity: 'block',
      title: `publication ${p.name} does not publish ${missingActions.join(', ')}`,
      detail: 'Those changes would never reach pgrelay: they are lost without an error.',
      fix: { sql: `ALTER PUBLICATION ${quoteIdent(p.name)} SET (publish = 'insert, update, delete, truncate');`, note: p.mayAlter ? undefined : `run as ${p.owner ?? 'its owner'} or a superuser` },
    });
  }
  if (!p.allTables) {
    const present = new Set(p.members.map(tableKey));
    const missing = publishable.filter((t) => !present.has(tableKey(t.name)));
    if (missing.length > 0) {
      const sql = `ALTER PUBLICATION ${quoteIdent(p.name)} ADD TABLE ${missing.map((t) => qualifiedName(t.name)).join(', ')};`;
      const canAdd = ctx.managePublication && p.mayAlter && missing.every((t) => t.isOwner);
      const names = missing.map((t) => tableKey(t.name)).join(', ');
      findings.push(
        canAdd
          ? { id: 'publication.tables', severity: 'ok', title: `publication ${p.name} lacks ${names}; the streamer will add ${missing.length === 1 ? 'it' : 'them'}`, detail: `${ctx.user} owns the publication and the tables.`, fix: { sql } }
          : {
              id: 'publication.tables',
              severity: 'block',
              title: `publication ${p.name} lacks ${names}`,
              detail: `Their changes would not be streamed, and the streamer cannot add them: ${!ctx.managePublication ? 'managePublication is false' : !p.mayAlter ? `${who}` : `${ctx.user} does not own ${missing.filter((t) => !t.isOwner).map((t) => tableKey(t.name)).join(', ')}`}.`,
              fix: { sql, note: `run as the owner of the publication and of the tables, or a superuser` },
            },
      );
    } else if (publishable.length > 0) {
      findings.push({ id: 'publication.tables', severity: 'ok', title: `publication ${p.name} publishes every configured table`, detail: publishable.map((t) => tableKey(t.name)).join(', ') });
    }
  }
  const partitioned = publishable.filter((t) => t.relkind === 'p');
  if (p.viaRoot === false && partitioned.length > 0) {
    const canAlter = ctx.managePublication && p.mayAlter;
    findings.push({
      id: 'publication.via_root',
      severity: canAlter ? 'ok' : 'block',
      title: canAlter
        ? `publication ${p.name} publishes partitions under their own names; the streamer will set publish_via_partition_root`
        : `publication ${p.name} publishes the partitions of ${partitioned.map((t) => tableKey(t.name)).join(', ')} under their own names`,
      detail: 'pgrelay expects changes under the partitioned table\'s name (publish_via_partition_root = true).',
      fix: { sql: `ALTER PUBLICATION ${quoteIdent(p.name)} SET (publish_via_partition_root = true);` },
    });
  }
  if (p.filtered.length > 0) {
    findings.push({
      id: 'publication.filters',
      severity: 'warn',
      title: `publication ${p.name} filters rows or columns of ${p.filtered.join(', ')}`,
      detail: 'pgrelay sees only what passes the row filter or column list; bootstrap reads whole tables, so the two would disagree.',
      fix: { note: 'drop the filter unless it is intended: ALTER PUBLICATION ... SET TABLE without WHERE / column list' },
    });
  }
  return findings;
}

// --- slots ----------------------------------------------------------------------------------

export interface SlotFacts {
  name: string;
  slotType: string;
  plugin: string | null;
  database: string | null;
  active: boolean;
  /** reserved | extended | unreserved | lost; null before 13. */
  walStatus: string | null;
  /** WAL written since the position the reader confirmed. */
  lagBytes: number | null;
  /** WAL kept on disk for it (since restart_lsn). */
  retainedBytes: number | null;
  /** PostgreSQL 17+: why it was invalidated. */
  invalidationReason: string | null;
}

function slotState(s: SlotFacts): string {
  const parts = [s.active ? 'active' : 'inactive'];
  if (s.lagBytes !== null) parts.push(`${formatBytes(s.lagBytes)} behind`);
  if (s.retainedBytes !== null) parts.push(`retains ${formatBytes(s.retainedBytes)} of WAL`);
  if (s.walStatus !== null) parts.push(`wal_status ${s.walStatus}`);
  return parts.join(', ');
}

const dropSql = (name: string) => `SELECT pg_drop_replication_slot('${name.replaceAll("'", "''")}');`;

export function slotFindings(slots: SlotFacts[], ctx: { slotName: string; database: string }): Finding[] {
  const findings: Finding[] = [];
  const own = slots.find((s) => s.name === ctx.slotName);
  const id = `slot:${ctx.slotName}`;
  if (!own) {
    findings.push({ id, severity: 'ok', title: `slot ${ctx.slotName} does not exist yet; the streamer creates it at first start`, detail: 'Changes are captured from that moment; bootstrap loads what was there before.' });
  } else if (own.slotType !== 'logical' || own.plugin !== 'pgoutput') {
    findings.push({
      id,
      severity: 'block',
      title: `slot ${ctx.slotName} exists but is ${own.slotType}/${own.plugin ?? 'no plugin'}, not logical/pgoutput`,
      detail: 'The streamer can only read a logical slot with the pgoutput plugin.',
      fix: { sql: dropSql(ctx.slotName), note: 'only if nothing else uses it; otherwise give pgrelay another slotName (--slot)' },
    });
  } else if (own.database !== ctx.database) {
    findings.push({
      id,
      severity: 'block',
      title: `slot ${ctx.slotName} belongs to database ${own.database}, not ${ctx.database}`,
      detail: 'A logical slot decodes one database.',
      fix: { note: 'give pgrelay another slotName (--slot), or drop the slot from its own database if nothing uses it' },
    });
  } else if (own.walStatus === 'lost' || own.invalidationReason !== null) {
    findings.push({
      id,
      severity: 'block',
      title: `slot ${ctx.slotName} was invalidated${own.invalidationReason ? ` (${own.invalidationReason})` : ''}: the WAL it still needed is gone`,
      detail: 'Changes after its last confirmed position were removed before pgrelay read them; they cannot be streamed any more.',
      fix: { sql: dropSql(ctx.slotName), note: 'then start the streamer (it creates a new slot) and bootstrap every table again (pgrelay bootstrap SCHEMA.TABLE)' },
    });
  } else if (own.walStatus === 'unreserved') {
    findings.push({
      id,
      severity: 'warn',
      title: `slot ${ctx.slotName} is about to be invalidated (${slotState(own)})`,
      detail: 'It holds more WAL than max_slot_wal_keep_size allows; at the next checkpoint PostgreSQL may remove WAL it needs.',
      fix: { note: 'get the streamer running and caught up now, or raise max_slot_wal_keep_size' },
    });
  } else if (!own.active && (own.retainedBytes ?? 0) > RETAINED_WAL_WARN_BYTES) {
    findings.push({ id, severity: 'warn', title: `slot ${ctx.slotName} is inactive and retains ${formatBytes(own.retainedBytes ?? 0)} of WAL`, detail: 'Nothing reads it (is the streamer running?); the server keeps WAL for it meanwhile.', fix: { note: 'start the streamer, or drop the slot if pgrelay is gone' } });
  } else {
    findings.push({ id, severity: 'ok', title: `slot ${ctx.slotName}: ${slotState(own)}`, detail: 'pgrelay\'s slot.' });
  }
  for (const s of slots) {
    if (s.name === ctx.slotName) continue;
    const sid = `slot.other:${s.name}`;
    const what = `slot ${s.name} (${s.slotType}${s.plugin ? `/${s.plugin}` : ''}${s.database ? `, database ${s.database}` : ''}, not pgrelay's)`;
    if (s.walStatus === 'lost' || s.invalidationReason !== null) {
      findings.push({ id: sid, severity: 'warn', title: `${what} is invalidated`, detail: 'It cannot be used again but still takes one of max_replication_slots.', fix: { sql: dropSql(s.name), note: 'after checking nothing expects it' } });
    } else if (!s.active && (s.retainedBytes ?? 0) > RETAINED_WAL_WARN_BYTES) {
      findings.push({ id: sid, severity: 'warn', title: `${what} is inactive and retains ${formatBytes(s.retainedBytes ?? 0)} of WAL`, detail: 'An abandoned slot keeps WAL until the disk fills.', fix: { sql: dropSql(s.name), note: 'only if nothing uses it any more' } });
    } else {
      findings.push({ id: sid, severity: 'ok', title: `${what}: ${slotState(s)}`, detail: 'Another slot on this server.' });
    }
  }
  return findings;
}

// --- the report -----------------------------------------------------------------------------

/** 0 ready, 1 something blocks streaming, 2 a check could not run. */
export function exitCodeOf(findings: Finding[]): 0 | 1 | 2 {
  if (findings.some((f) => f.severity === 'block')) return 1;
  if (findings.some((f) => f.severity === 'error')) return 2;
  return 0;
}

const MARKS = {
  unicode: { ok: '✓', warn: '!', block: '✗', error: '?' },
  ascii: { ok: '[ok]   ', warn: '[warn] ', block: '[BLOCK]', error: '[error]' },
} as const;

export function formatReport(report: DoctorReport, opts: { unicode: boolean }): string {
  const marks = opts.unicode ? MARKS.unicode : MARKS.ascii;
  const pad = ' '.repeat(opts.unicode ? 4 : 10);
  const lines = [`pgrelay doctor: ${report.target} as ${report.user}, ${platformName(report.platform)} ${report.serverVersion}`];
  for (const f of report.findings) {
    lines.push(`${marks[f.severity]} ${f.title}`);
    if (f.severity === 'ok' && !f.fix) continue;
    if (f.severity !== 'ok') lines.push(`${pad}${f.detail}`);
    if (f.fix?.parameterGroup) lines.push(`${pad}change: ${f.fix.parameterGroup}`);
    if (f.fix?.sql) {
      lines.push(`${pad}${f.severity === 'ok' ? 'optional' : 'fix'}:`);
      for (const line of f.fix.sql.split('\n')) lines.push(`${pad}  ${line}`);
    }
    if (f.fix?.note) lines.push(`${pad}${f.fix.note}`);
  }
  const count = (s: Severity) => report.findings.filter((f) => f.severity === s).length;
  const parts = [`${count('block')} blocking`, `${count('warn')} warning${count('warn') === 1 ? '' : 's'}`, `${count('ok')} ok`];
  if (count('error') > 0) parts.push(`${count('error')} not checked`);
  const verdict = count('block') > 0 ? 'NOT READY' : count('error') > 0 ? 'INCOMPLETE' : 'READY';
  lines.push(`${verdict}: ${parts.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

export interface StateSchemaFacts {
  schema: string;
  user: string;
  exists: boolean;
  /** USAGE and CREATE on the schema (the monitor adds its tables there). */
  usable: boolean;
  /** Both state tables exist and the user may read and write them. */
  tablesWritable: boolean;
  /** CREATE on the database: the monitor can make the schema itself. */
  canCreateSchema: boolean;
}

/** Where the monitor keeps its memory: ready, creatable on its first run, or the grant that is missing. */
export function stateSchemaFinding(f: StateSchemaFacts): Finding {
  const id = 'state.schema';
  if (f.exists && (f.tablesWritable || f.usable)) {
    return { id, severity: 'ok', title: `pgrelay's state schema ${f.schema} is usable by ${f.user}`, detail: 'The monitor keeps its observations and bootstrap requests there.' };
  }
  if (!f.exists && f.canCreateSchema) {
    return { id, severity: 'ok', title: `the monitor can create pgrelay's state schema ${f.schema}`, detail: `${f.user} has CREATE on the database; the first monitor run makes the schema and its two tables.` };
  }
  const schema = quoteIdent(f.schema);
  const user = quoteIdent(f.user);
  return {
    id,
    severity: 'warn',
    title: f.exists ? `${f.user} cannot use pgrelay's state schema ${f.schema}` : `${f.user} cannot create pgrelay's state schema ${f.schema}`,
    detail:
      'Streaming works without it, but the monitor then cannot tell a dropped slot from a new one, measure how long the streamer has not acknowledged, keep its restart cool-down, or record bootstrap requests.',
    fix: { sql: f.exists ? `GRANT USAGE, CREATE ON SCHEMA ${schema} TO ${user};\nGRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${user};` : `CREATE SCHEMA ${schema} AUTHORIZATION ${user};` },
  };
}
