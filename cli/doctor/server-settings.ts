/**
 * Server settings, the first check family: which PostgreSQL this is and on which side of a
 * replica (server.version, server.standby), wal_level, whether a replication slot and a WAL
 * sender are free for pgrelay (capacity.*), and max_slot_wal_keep_size. Owns the identity query
 * every other family builds on (version, user, database), the settings query, and the pure
 * functions that turn their facts into findings, each fix phrased for the platform.
 */
import type pg from 'pg';
import { formatBytes } from '#core/bytes.ts';
import { settingFix, platformName, type Platform } from './platform.ts';
import type { Finding } from './finding.ts';
import { singleRow } from '#shared/single-row.ts';

/** What doctor suggests for max_slot_wal_keep_size when it is unlimited. */
export const SUGGESTED_SLOT_WAL_KEEP_MB = 50 * 1024;

/** Who and where doctor is connected: the server's version and role, the user and the database. */
export interface ServerIdentity {
  versionNum: number;
  /** server_version, e.g. "18.4" */
  version: string;
  inRecovery: boolean;
  user: string;
  database: string;
}

const IDENTITY_SQL = `
SELECT current_setting('server_version_num')::int AS version_num, current_setting('server_version') AS version,
       pg_is_in_recovery() AS in_recovery, current_user::text AS "user", current_database()::text AS database`;

export async function readServerIdentity(client: pg.Client): Promise<ServerIdentity> {
  const row = await singleRow<{ version_num: number; version: string; in_recovery: boolean; user: string; database: string }>(client, IDENTITY_SQL);
  return { versionNum: row.version_num, version: row.version, inRecovery: row.in_recovery, user: row.user, database: row.database };
}

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

export async function readServerFacts(client: pg.Client, identity: ServerIdentity): Promise<ServerFacts> {
  const row = await singleRow<{ wal_level: string; max_slots: number; max_senders: number; keep_mb: number | null; rds_logical_replication: string | null; azure_replication_support: string | null; used_slots: number; used_senders: number }>(client, SETTINGS_SQL);
  return {
    versionNum: identity.versionNum,
    version: identity.version,
    inRecovery: identity.inRecovery,
    walLevel: row.wal_level,
    maxReplicationSlots: row.max_slots,
    usedReplicationSlots: row.used_slots,
    maxWalSenders: row.max_senders,
    usedWalSenders: row.used_senders,
    maxSlotWalKeepSizeMb: row.keep_mb,
    rdsLogicalReplication: row.rds_logical_replication,
    azureReplicationSupport: row.azure_replication_support,
  };
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
