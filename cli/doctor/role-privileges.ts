/**
 * The role and its privileges, as replication needs them: whether the user may replicate
 * (superuser, the REPLICATION attribute, or rds_replication on RDS/Aurora), whether a real
 * replication connection opens and answers IDENTIFY_SYSTEM (pg_hba.conf, WAL senders), and
 * whether the user has CREATE on the database (the publication family needs that one), and
 * whether it may call pg_logical_emit_message (the bootstrap writes its marks into the WAL with
 * it). SELECT on the configured tables is checked per table in tables.ts.
 */
import type pg from 'pg';
import { describeError } from '#core/errors.ts';
import { quoteIdent } from '#core/identifiers.ts';
import { ConnectError, type ConnectionProvider } from '#shared/connection.ts';
import { platformName, type Platform } from './platform.ts';
import type { Finding } from './finding.ts';
import { singleRow } from '#shared/single-row.ts';

export interface RoleFacts {
  user: string;
  superuser: boolean;
  replication: boolean;
  /** Member of rds_replication (RDS/Aurora). */
  rdsReplication: boolean;
}

const ROLE_SQL = `
SELECT r.rolsuper AS superuser, r.rolreplication AS replication,
       CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication')
            THEN pg_has_role(current_user, 'rds_replication', 'MEMBER') ELSE false END AS rds_replication,
       has_database_privilege(current_database(), 'CREATE') AS can_create
FROM pg_roles r WHERE r.rolname = current_user`;

/** The role's replication facts, and CREATE on the database (the streamer creates the publication with it). */
export async function readRoleFacts(client: pg.Client, user: string): Promise<{ role: RoleFacts; canCreateInDatabase: boolean }> {
  const row = await singleRow<{ superuser: boolean; replication: boolean; rds_replication: boolean; can_create: boolean }>(client, ROLE_SQL);
  return { role: { user, superuser: row.superuser, replication: row.replication, rdsReplication: row.rds_replication }, canCreateInDatabase: row.can_create };
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

/** Opens a replication connection as the streamer would and runs IDENTIFY_SYSTEM; never throws. */
export async function probeReplication(connections: ConnectionProvider, statementTimeoutMs: number): Promise<ReplicationProbe> {
  let client: pg.Client | undefined;
  try {
    client = await connections.connect({ applicationName: 'pgrelay-doctor', replication: true, statementTimeoutMs });
    await client.query('IDENTIFY_SYSTEM');
    return { ok: true };
  } catch (err) {
    // PostgreSQL's own words and SQLSTATE say more here than the connection sentence.
    const cause = err instanceof ConnectError && err.cause !== undefined ? err.cause : err;
    const code = (cause as { code?: unknown })?.code;
    return { ok: false, code: typeof code === 'string' ? code : undefined, message: describeError(cause).message };
  } finally {
    await client?.end().catch(() => undefined);
  }
}

/** EXECUTE on the text form of pg_logical_emit_message, as PostgreSQL resolves the streamer's call. */
export interface EmitMessageFacts {
  /** The function as GRANT names it: (boolean, text, text) before PostgreSQL 17, (boolean, text, text, boolean) since. */
  signature: string;
  canExecute: boolean;
}

// PostgreSQL 17 added a fourth argument (flush, with a default): the three-argument form is gone there.
const EMIT_MESSAGE_SQL = `
SELECT p.oid::regprocedure::text AS signature, has_function_privilege(p.oid, 'EXECUTE') AS can_execute
FROM (SELECT COALESCE(to_regprocedure('pg_catalog.pg_logical_emit_message(boolean,text,text)'),
                      to_regprocedure('pg_catalog.pg_logical_emit_message(boolean,text,text,boolean)'))::oid AS oid) AS p
WHERE p.oid IS NOT NULL`;

/** Undefined when the server has no such function (before PostgreSQL 9.6). */
export async function readEmitMessageFacts(client: pg.Client): Promise<EmitMessageFacts | undefined> {
  const { rows } = await client.query<{ signature: string; can_execute: boolean }>(EMIT_MESSAGE_SQL);
  const row = rows[0];
  return row === undefined ? undefined : { signature: row.signature.replaceAll(',', ', '), canExecute: row.can_execute };
}

/**
 * The bootstrap frames each chunk with marks written by pg_logical_emit_message; without
 * EXECUTE on it every load fails. PostgreSQL grants it to PUBLIC; hardened servers and managed
 * platforms may revoke that and leave it to superusers (RDS: rds_superuser, rds_replication).
 */
export function emitMessageFinding(f: EmitMessageFacts, user: string, platform: Platform): Finding {
  const id = 'role.emit_message';
  const detail = 'The bootstrap writes its marks into the WAL with it, to line each chunk it reads up with the stream (and the monitor its heartbeat and gap notices, when it runs as this user).';
  if (f.canExecute) return { id, severity: 'ok', title: `${user} may call ${f.signature}`, detail };
  const rds = platform === 'rds' || platform === 'aurora';
  return {
    id,
    severity: 'block',
    title: `${user} may not call ${f.signature}, so every bootstrap fails`,
    detail,
    fix: {
      sql: `GRANT EXECUTE ON FUNCTION pg_catalog.${f.signature} TO ${quoteIdent(user)};`,
      note: rds ? 'run as the master user (a member of rds_superuser)' : 'run as a superuser',
    },
  };
}
