/**
 * `diagnose(target)`: the whole doctor check, in order. Connects once (the shared
 * ConnectionProvider.connect; nothing is changed in the database), reads who and where it is,
 * then asks each check family in turn (platform, server settings, slots, role and privileges
 * with the bootstrap's pg_logical_emit_message, TLS, state schema and its bootstrap table,
 * publication, tables and keys) for its facts and findings. A family whose query fails becomes
 * one `error` finding and the others still run; only a failed connection (ConnectError) or a
 * failed identity query ends the check.
 */
import type pg from 'pg';
import { describeError } from '#core/errors.ts';
import { tableKey } from '#core/identifiers.ts';
import type { OperatorTarget } from '../args.ts';
import { detectPlatform, readPlatformFacts, type Platform } from './platform.ts';
import { publicationFindings, readPublicationFacts } from './publication.ts';
import type { Finding } from './finding.ts';
import { exitCodeOf, type DoctorReport } from './report.ts';
import { emitMessageFinding, probeReplication, readEmitMessageFacts, readRoleFacts, replicationConnectionFinding, replicationRoleFinding } from './role-privileges.ts';
import { capacityFindings, readServerFacts, readServerIdentity, versionFindings, walKeepFinding, walLevelFinding } from './server-settings.ts';
import { readSlotFacts, slotFindings } from './slots.ts';
import { bootstrapTableFinding, readBootstrapTableFacts, readStateSchemaFacts, stateSchemaFinding } from './state-schema.ts';
import { noTablesFinding, readTableFacts, streamerVerdict, tableFindings, type KeyVerdict, type TableFacts } from './tables.ts';
import { readSslFacts, sslFinding } from './tls.ts';

export interface DoctorTarget extends Pick<OperatorTarget, 'connections' | 'slotName' | 'publicationName' | 'tables' | 'stateSchema'> {
  /** tableKeys of the config, keyed by `schema.table`. */
  tableKeys: Map<string, string[]>;
  /** The streamer may create the publication / add tables to it (config managePublication). */
  managePublication: boolean;
}

/** A catalog query that hangs (a lock, a dying server) must not hang doctor. */
const STATEMENT_TIMEOUT_MS = 30_000;

/** Runs every check against the target; throws ConnectError when it cannot connect. */
export async function diagnose(target: DoctorTarget): Promise<DoctorReport> {
  const client = await target.connections.connect({ applicationName: 'pgrelay-doctor', statementTimeoutMs: STATEMENT_TIMEOUT_MS });
  try {
    return await runChecks(client, target);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function runChecks(client: pg.Client, target: DoctorTarget): Promise<DoctorReport> {
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

  const who = await readServerIdentity(client);
  const platform: Platform = (await attempt('platform', 'the platform', async () => detectPlatform(await readPlatformFacts(client)))) ?? 'self-hosted';
  const report: DoctorReport = { ready: false, platform, target: target.connections.describe(), user: who.user, serverVersion: who.version, findings };
  findings.push(...versionFindings(who));
  if (who.versionNum < 100000) return finish(report);

  // Read first: whether pgrelay's slot exists and streams decides the capacity findings.
  const slots = await attempt('slots', 'replication slots', () => readSlotFacts(client));
  const ownSlot = slots?.find((s) => s.name === target.slotName);

  await attempt('server', 'server settings', async () => {
    const server = await readServerFacts(client, who);
    findings.push(walLevelFinding(server, platform));
    findings.push(...capacityFindings(server, platform, { slotExists: ownSlot !== undefined, slotActive: ownSlot?.active === true }));
    const keep = walKeepFinding(server, platform);
    if (keep) findings.push(keep);
  });

  const role = await attempt('role.replication', 'the role', async () => {
    const { role, canCreateInDatabase } = await readRoleFacts(client, who.user);
    const finding = replicationRoleFinding(role, platform);
    findings.push(finding);
    return { canReplicate: finding.severity === 'ok', canCreateInDatabase };
  });
  if (role?.canReplicate) {
    // Only when the role may replicate: otherwise this fails for the reason already reported.
    findings.push(replicationConnectionFinding(await probeReplication(target.connections, STATEMENT_TIMEOUT_MS), who.user));
  }
  await attempt('role.emit_message', 'EXECUTE on pg_logical_emit_message', async () => {
    const emit = await readEmitMessageFacts(client);
    if (emit) findings.push(emitMessageFinding(emit, who.user, platform));
  });

  await attempt('connection.ssl', 'TLS', async () => {
    findings.push(sslFinding(await readSslFacts(client, target.connections), platform));
  });

  await attempt('state.schema', "pgrelay's state schema", async () => {
    findings.push(stateSchemaFinding(await readStateSchemaFacts(client, target.stateSchema, who.user)));
  });
  await attempt('state.bootstrap_table', 'the bootstrap requests table', async () => {
    const table = await readBootstrapTableFacts(client, target.stateSchema, who.user);
    if (table) findings.push(bootstrapTableFinding(table));
  });

  const publication = await attempt('publication', `publication ${target.publicationName}`, () => readPublicationFacts(client, target.publicationName));
  let tables = target.tables;
  if (tables.length === 0 && publication?.exists && !publication.allTables) {
    tables = publication.members;
  }
  if (tables.length === 0) findings.push(noTablesFinding());
  const tableFacts: TableFacts[] = [];
  for (const t of tables) {
    await attempt(`table:${tableKey(t)}`, `table ${tableKey(t)}`, async () => {
      const facts = await readTableFacts(client, t, who.versionNum);
      tableFacts.push(facts);
      const verdict: KeyVerdict = facts.exists ? await streamerVerdict(client, t, target.tableKeys) : { ok: false, code: 'TABLE_NOT_FOUND', message: '' };
      findings.push(...tableFindings(facts, verdict, { user: who.user, tableKeys: target.tableKeys }));
    });
  }
  if (publication) {
    findings.push(
      ...publicationFindings(publication, {
        user: who.user,
        database: who.database,
        tables: tableFacts,
        canCreateInDatabase: role?.canCreateInDatabase ?? false,
        managePublication: target.managePublication,
        serverVersion: who.versionNum,
      }),
    );
  }
  if (slots) findings.push(...slotFindings(slots, { slotName: target.slotName, database: who.database }));
  return finish(report);
}

function finish(report: DoctorReport): DoctorReport {
  report.ready = exitCodeOf(report.findings) === 0;
  return report;
}
