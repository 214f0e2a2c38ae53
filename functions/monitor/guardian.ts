/**
 * One run of the slot guardian, over one ordinary connection (never a replication one):
 *
 *   1. make sure pgrelay's state schema exists (it remembers what earlier runs saw);
 *   2. read the slot, publication and tables (readStatus, the same reads as `pgrelay status`);
 *   3. under a session advisory lock (so two overlapping runs never act twice):
 *      - note when the acknowledged position last moved and since when the slot is inactive;
 *      - a slot invalidated, or dropped after pgrelay had seen it: alarm, and with
 *        recreateLostSlot create it again and request a re-read of every table, recording
 *        the WAL range that was lost;
 *      - a streamer that holds no slot while ECS says it runs, or holds it without
 *        acknowledging while WAL piles up: stop its task so the service starts a fresh one,
 *        at most once per cool-down;
 *      - configured tables missing from the publication: add them, or say which grant is missing;
 *      - configured tables never loaded: request their bootstrap;
 *      - write a heartbeat into the WAL, so a quiet slot still has something to acknowledge;
 *   4. one EMF document with the figures, findings and actions.
 *
 * Every decision is logged with its reason inside that document.
 */
import type { Client } from 'pg';
import { SourceError } from '#core/errors.ts';
import { qualifiedName, quoteIdent, tableKey } from '#core/identifiers.ts';
import { requestBootstrap } from '#shared/bootstrap-state.ts';
import { ensureStateSchema, readSlotWatch, writeSlotWatch, type SlotWatch } from '#shared/source-state.ts';
import { GAP_PREFIX, type GapNotice } from '#core/gap-notice.ts';
import { readStatus, type SlotDetails, type SourceStatus } from '#shared/source-status.ts';
import type { MonitorConfig } from './config.ts';
import { slotMetrics } from './metrics.ts';

/** The slice of the ECS API the guardian needs (see ecs.ts). */
export interface StreamerService {
  state(): Promise<{ desiredCount: number; runningCount: number; pendingCount: number; status: string; runningTaskArns: string[] }>;
  stopTask(taskArn: string, reason: string): Promise<void>;
}

export interface Finding {
  /** Stable code, for alarms and scripts. */
  code: string;
  severity: 'critical' | 'warning' | 'info';
  message: string;
}

export type Action =
  | { kind: 'heartbeat'; lsn: string }
  | { kind: 'stop-task'; taskArn: string; reason: string }
  | { kind: 'recreate-slot'; slotName: string; gapAfterLsn: string | null; gapUntilLsn: string }
  | { kind: 'add-to-publication'; tables: string[] }
  | { kind: 'request-bootstrap'; reason: 'initial' | 'gap'; tables: string[] }
  | { kind: 'gap-notice'; lsn: string; reason: GapNotice['reason']; tables: string[] };

export interface GuardianResult {
  status: SourceStatus;
  /** Seconds the acknowledged position has not moved (0: it moved since the last run); undefined on the first look. */
  lastAckAgeSeconds: number | undefined;
  /** Seconds the slot has been without a streamer; 0 while one is connected. */
  inactiveSeconds: number | undefined;
  /** The slot is gone (invalidated, or dropped after pgrelay saw it): changes were lost. */
  slotLost: boolean;
  findings: Finding[];
  actions: Action[];
}

export interface GuardianDeps {
  /** The streamer's ECS service, when configured. */
  service?: StreamerService;
  now: Date;
}

/** Prefix of the heartbeat's logical message; the streamer treats it as a keepalive. */
export const HEARTBEAT_PREFIX = 'pgrelay.heartbeat';

export async function guard(client: Client, config: MonitorConfig, deps: GuardianDeps): Promise<GuardianResult> {
  const findings: Finding[] = [];
  const actions: Action[] = [];
  const now = deps.now;

  let stateSchema: string | undefined = config.stateSchema;
  try {
    await ensureStateSchema(client, config.stateSchema);
  } catch (err) {
    if (!(err instanceof SourceError && err.reason === 'PRIVILEGE')) throw err;
    stateSchema = undefined;
    findings.push({ code: 'STATE_SCHEMA', severity: 'warning', message: `${err.message}. Until then the monitor cannot tell a dropped slot from a new one, measure acknowledgement age, or keep a cool-down, so it only reports.` });
  }

  // Read again after every change this run makes, so the document reports what is, not what was.
  const read = () => readStatus(client, { slotName: config.slotName, publicationName: config.publicationName, tables: config.tables, ...(stateSchema !== undefined ? { stateSchema } : {}) });
  let status = await read();
  if (stateSchema === undefined) {
    // Without memory the monitor can still fix the publication; everything else needs the state.
    if ((await addMissingTables(client, config, status, findings, actions)).length > 0) status = await read();
    return { status, findings, actions, lastAckAgeSeconds: undefined, inactiveSeconds: undefined, slotLost: status.slot.state !== 'ok' };
  }

  const lockKey = `pgrelay.monitor:${config.slotName}`;
  const { rows: lockRows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS locked', [lockKey]);
  if (lockRows[0]?.locked !== true) {
    findings.push({ code: 'RUN_OVERLAP', severity: 'info', message: `another monitor run holds the lock for slot ${config.slotName}; this run only reports` });
    return { status, findings, actions, lastAckAgeSeconds: undefined, inactiveSeconds: undefined, slotLost: status.slot.state === 'lost' || status.slot.state === 'foreign' };
  }
  try {
    const previous = await readSlotWatch(client, stateSchema, config.slotName);
    const slot = status.slot;
    let watch: SlotWatch | undefined = previous;
    let lastAckAgeSeconds: number | undefined;
    let inactiveSeconds: number | undefined;
    let slotLost = false;

    if (slot.state === 'ok') {
      watch = observe(previous, slot, config.slotName, now);
      lastAckAgeSeconds = previous === undefined || previous.lostAt !== null ? undefined : seconds(now, watch.confirmedSeenAt ?? now);
      inactiveSeconds = watch.inactiveSince === null ? 0 : seconds(now, watch.inactiveSince);
      try {
        await checkLiveness(config, deps, slot, watch, { lastAckAgeSeconds, inactiveSeconds }, findings, actions);
      } catch (err) {
        // A stop that went through before a later call failed still starts the cool-down.
        if (watch.lastStopAt === now) await writeSlotWatch(client, stateSchema, watch);
        throw err;
      }
    } else if (slot.state === 'lost' || (slot.state === 'missing' && previous !== undefined)) {
      slotLost = true;
      const lostAfterLsn = slot.state === 'lost' ? (slot.confirmedFlushLsn ?? previous?.confirmedLsn ?? null) : (previous?.confirmedLsn ?? null);
      const what =
        slot.state === 'lost'
          ? `was invalidated (${slot.invalidationReason ?? `wal_status ${slot.walStatus ?? 'lost'}`}): PostgreSQL removed WAL it still needed`
          : `was dropped (pgrelay had seen it since ${(previous as SlotWatch).registeredAt.toISOString()})`;
      const lostSince = previous?.lostAt ?? now;
      watch = { ...(previous ?? newWatch(config.slotName, now)), lostAt: lostSince, lostAfterLsn };
      findings.push({
        code: 'SLOT_LOST',
        severity: 'critical',
        message: `replication slot ${config.slotName} ${what}; changes committed after ${lostAfterLsn ?? 'its last acknowledged position'} were not streamed and cannot be. ${
          config.recreateLostSlot ? 'Recreating it and requesting a re-read of every table.' : 'Enable recreateLostSlot to have the monitor recreate it and re-read every table, or do it by hand: pgrelay slot drop, restart the streamer, bootstrap the tables.'
        }`,
      });
      if (config.recreateLostSlot) {
        const repaired = await recreateSlot(client, config, stateSchema, watch, slot, now, findings, actions);
        if (repaired !== undefined) {
          watch = repaired;
          status = await read();
        }
      }
    } else if (slot.state === 'missing') {
      findings.push({ code: 'SLOT_NOT_CREATED', severity: 'warning', message: `replication slot ${config.slotName} does not exist yet: the streamer creates it when it starts` });
    } else {
      slotLost = true;
      findings.push({ code: 'SLOT_FOREIGN', severity: 'critical', message: `replication slot ${config.slotName} is not a logical pgoutput slot of this database; pgrelay cannot stream from it: configure another slotName` });
    }

    const added = await addMissingTables(client, config, status, findings, actions);
    if (added.length > 0) {
      // A table pgrelay had loaded before and that then left the publication missed every change
      // meanwhile: it needs a re-read as much as a lost slot does. (A table never loaded gets its
      // initial request below.)
      const known = status.tables.filter((t) => added.includes(t.table) && t.bootstrap.state !== 'not-requested' && t.bootstrap.state !== 'untracked').map((t) => t.table);
      // Read after the ALTER committed: changes of these tables stream from (at latest) here.
      const resumedAt = (await client.query<{ lsn: string }>(`SELECT ${status.inRecovery ? 'pg_last_wal_replay_lsn()' : 'pg_current_wal_lsn()'}::text AS lsn`)).rows[0]?.lsn ?? null;
      const reread = await requestBootstrap(client, stateSchema, config.slotName, known, {
        reason: 'gap',
        by: 'pgrelay-monitor',
        gapUntilLsn: resumedAt,
        detail: 'the table was missing from the publication: its changes until it was added again were not streamed',
      });
      if (reread.length > 0) {
        actions.push({ kind: 'request-bootstrap', reason: 'gap', tables: reread });
        await emitGapNotice(client, { v: 1, slot: config.slotName, reason: 'table-unpublished', afterLsn: null, untilLsn: resumedAt, repair: 'bootstrap-requested', tables: reread }, findings, actions);
      }
      status = await read();
    }

    if (config.bootstrapNewTables && status.slot.state === 'ok') {
      const auto = new Set(config.tables.filter((t) => t.bootstrap === 'auto').map(tableKey));
      const never = status.tables.filter((t) => t.configured && t.inPublication && t.bootstrap.state === 'not-requested' && auto.has(t.table)).map((t) => t.table);
      const requested = await requestBootstrap(client, stateSchema, config.slotName, never, { reason: 'initial', by: 'pgrelay-monitor', detail: 'configured table never loaded' });
      if (requested.length > 0) {
        actions.push({ kind: 'request-bootstrap', reason: 'initial', tables: requested });
        status = await read();
      }
    }

    if (config.heartbeat && status.slot.state === 'ok' && !status.inRecovery && watch !== undefined) {
      const lsn = await heartbeat(client, config, now, findings);
      if (lsn !== undefined) {
        watch = { ...watch, heartbeatLsn: lsn, heartbeatAt: now };
        actions.push({ kind: 'heartbeat', lsn });
      }
    }

    if (watch !== undefined) await writeSlotWatch(client, stateSchema, watch);
    return { status, findings, actions, lastAckAgeSeconds, inactiveSeconds, slotLost };
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', [lockKey]).catch(() => undefined);
  }
}

function newWatch(slotName: string, now: Date): SlotWatch {
  return {
    slotName,
    generation: 1,
    registeredAt: now,
    confirmedLsn: null,
    confirmedSeenAt: null,
    inactiveSince: null,
    heartbeatLsn: null,
    heartbeatAt: null,
    lastStopAt: null,
    lastStopReason: null,
    lostAt: null,
    lostAfterLsn: null,
    recreatedAt: null,
    gapAfterLsn: null,
    gapUntilLsn: null,
  };
}

/** The watch row after looking at a healthy slot: when its position last moved, since when it is idle. */
function observe(previous: SlotWatch | undefined, slot: SlotDetails, slotName: string, now: Date): SlotWatch {
  const w = previous ?? newWatch(slotName, now);
  const moved = w.confirmedLsn !== slot.confirmedFlushLsn || w.confirmedSeenAt === null;
  return {
    ...w,
    // A slot seen healthy again after a loss was recreated (by us or by hand): a new generation.
    ...(w.lostAt !== null ? { generation: w.generation + 1, registeredAt: now, lostAt: null } : {}),
    confirmedLsn: slot.confirmedFlushLsn,
    confirmedSeenAt: moved ? now : w.confirmedSeenAt,
    inactiveSince: slot.active ? null : (w.inactiveSince ?? now),
  };
}

async function checkLiveness(
  config: MonitorConfig,
  deps: GuardianDeps,
  slot: SlotDetails,
  watch: SlotWatch,
  ages: { lastAckAgeSeconds: number | undefined; inactiveSeconds: number },
  findings: Finding[],
  actions: Action[],
): Promise<void> {
  const { inactiveSeconds: inactiveLimit, stalledSeconds, cooldownSeconds } = config.liveness;
  let reason: string | undefined;
  if (!slot.active && ages.inactiveSeconds >= inactiveLimit) {
    reason = `replication slot ${slot.name} has had no streamer connected for ${ages.inactiveSeconds} s (limit ${inactiveLimit} s)`;
  } else if (slot.active && ages.lastAckAgeSeconds !== undefined && ages.lastAckAgeSeconds >= stalledSeconds && (slot.lagBytes ?? 0) > 0) {
    reason = `the streamer (pid ${slot.activePid ?? '?'}) holds replication slot ${slot.name} but has acknowledged nothing for ${ages.lastAckAgeSeconds} s (limit ${stalledSeconds} s) while ${slot.lagBytes} bytes of WAL wait after ${slot.confirmedFlushLsn ?? '?'}`;
  }
  if (reason === undefined) return;
  if (deps.service === undefined || config.ecs === undefined) {
    findings.push({ code: 'STREAMER_STUCK', severity: 'critical', message: `${reason}; no ECS service is configured, so the monitor cannot restart it` });
    return;
  }
  const where = `ECS service ${config.ecs.service} in cluster ${config.ecs.cluster}`;
  const service = await deps.service.state();
  if (service.desiredCount === 0) {
    findings.push({ code: 'STREAMER_SCALED_DOWN', severity: 'critical', message: `${reason}; ${where} is scaled to 0 tasks, so nothing was stopped: PostgreSQL keeps WAL for the slot until a streamer runs again` });
    return;
  }
  if (service.runningTaskArns.length === 0) {
    findings.push({ code: 'STREAMER_NOT_RUNNING', severity: 'critical', message: `${reason}; ${where} has no running task (${service.pendingCount} pending): ECS is still starting one, see the service's events` });
    return;
  }
  if (watch.lastStopAt !== null && seconds(deps.now, watch.lastStopAt) < cooldownSeconds) {
    const until = new Date(watch.lastStopAt.getTime() + cooldownSeconds * 1000);
    findings.push({ code: 'STREAMER_STUCK', severity: 'critical', message: `${reason}; a task was already stopped at ${watch.lastStopAt.toISOString()} (${watch.lastStopReason ?? ''}), so the next stop waits for the cool-down until ${until.toISOString()}` });
    return;
  }
  const stopReason = `pgrelay monitor: ${reason}`;
  for (const taskArn of service.runningTaskArns) {
    await deps.service.stopTask(taskArn, stopReason);
    actions.push({ kind: 'stop-task', taskArn, reason: stopReason });
    watch.lastStopAt = deps.now;
    watch.lastStopReason = reason;
  }
  findings.push({ code: 'STREAMER_STOPPED', severity: 'warning', message: `${reason}; stopped ${service.runningTaskArns.join(', ')} so ${where} starts a fresh task` });
}

/**
 * Drops what is left of a lost slot and creates it again, then asks for every configured
 * table to be read again with the lost WAL range attached, so the re-read events can say
 * a gap was repaired. Returns the new watch row, or undefined when it could not act.
 */
async function recreateSlot(
  client: Client,
  config: MonitorConfig,
  stateSchema: string,
  watch: SlotWatch,
  slot: SourceStatus['slot'],
  now: Date,
  findings: Finding[],
  actions: Action[],
): Promise<SlotWatch | undefined> {
  const name = config.slotName;
  if (slot.state === 'lost' && slot.active) {
    findings.push({ code: 'SLOT_LOST_ACTIVE', severity: 'critical', message: `replication slot ${name} is lost but a session (pid ${slot.activePid ?? '?'}) still holds it; it is recreated once that session ends` });
    return undefined;
  }
  try {
    if (slot.state === 'lost') await client.query('SELECT pg_drop_replication_slot($1)', [name]);
    const { rows } = await client.query<{ lsn: string }>(`SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`, [name]);
    const gapUntilLsn = rows[0]?.lsn as string;
    const tables = config.tables.map(tableKey);
    await requestBootstrap(client, stateSchema, name, tables, {
      reason: 'gap',
      by: 'pgrelay-monitor',
      gapAfterLsn: watch.lostAfterLsn,
      gapUntilLsn,
      detail: `slot ${name} was lost at ${(watch.lostAt ?? now).toISOString()} and recreated at ${now.toISOString()}`,
    });
    actions.push({ kind: 'recreate-slot', slotName: name, gapAfterLsn: watch.lostAfterLsn, gapUntilLsn });
    actions.push({ kind: 'request-bootstrap', reason: 'gap', tables: [...tables].sort() });
    // Said in the new slot's stream too: its first events tell every consumer what was lost.
    await emitGapNotice(client, { v: 1, slot: name, reason: slot.state === 'lost' ? 'slot-invalidated' : 'slot-dropped', afterLsn: watch.lostAfterLsn, untilLsn: gapUntilLsn, repair: 'bootstrap-requested', tables }, findings, actions);
    findings.push({
      code: 'SLOT_RECREATED',
      severity: 'critical',
      message: `replication slot ${name} recreated at ${gapUntilLsn}; changes after ${watch.lostAfterLsn ?? 'the last acknowledged position'} and before ${gapUntilLsn} were lost and every table (${tables.join(', ')}) is requested for a re-read marked as a gap repair`,
    });
    return {
      ...watch,
      generation: watch.generation + 1,
      registeredAt: now,
      confirmedLsn: gapUntilLsn,
      confirmedSeenAt: now,
      inactiveSince: now,
      lostAt: null,
      recreatedAt: now,
      gapAfterLsn: watch.lostAfterLsn,
      gapUntilLsn,
      lastStopAt: null,
      lastStopReason: null,
    };
  } catch (err) {
    const code = (err as { code?: string }).code;
    const hint =
      code === '42501'
        ? 'the monitor user needs the REPLICATION attribute (on RDS/Aurora: GRANT rds_replication TO <user>)'
        : code === '55006'
          ? 'a session holds the slot; it is retried next run'
          : code === '53400'
            ? 'all replication slots are in use: raise max_replication_slots'
            : (err as Error).message;
    findings.push({ code: 'SLOT_RECREATE_FAILED', severity: 'critical', message: `could not recreate replication slot ${name}: ${hint}` });
    return undefined;
  }
}

async function addMissingTables(client: Client, config: MonitorConfig, status: SourceStatus, findings: Finding[], actions: Action[]): Promise<string[]> {
  const pub = status.publication;
  if (!pub.exists || pub.allTables || pub.missingTables.length === 0) return [];
  const existing = new Set(status.tables.filter((t) => t.exists).map((t) => t.table));
  const addable = config.tables.filter((t) => pub.missingTables.includes(tableKey(t)) && existing.has(tableKey(t)));
  if (addable.length === 0) return [];
  const sql = `ALTER PUBLICATION ${quoteIdent(pub.name)} ADD TABLE ${addable.map(qualifiedName).join(', ')}`;
  if (!config.managePublication) {
    findings.push({ code: 'PUBLICATION_MISSING_TABLES', severity: 'warning', message: `publication ${pub.name} lacks ${addable.map(tableKey).join(', ')} (managePublication is off): run ${sql}` });
    return [];
  }
  try {
    await client.query(sql);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const message =
      code === '42501'
        ? `cannot add ${addable.map(tableKey).join(', ')} to publication ${pub.name}: ${(err as Error).message}. Adding a table takes owning both the publication and the table; have their owner run: ${sql}`
        : `cannot add ${addable.map(tableKey).join(', ')} to publication ${pub.name}: ${(err as Error).message}`;
    findings.push({ code: 'PUBLICATION_MISSING_TABLES', severity: 'critical', message });
    return [];
  }
  const tables = addable.map(tableKey);
  actions.push({ kind: 'add-to-publication', tables });
  findings.push({ code: 'PUBLICATION_TABLES_ADDED', severity: 'warning', message: `added ${tables.join(', ')} to publication ${pub.name} (they were missing, so their changes were not streamed until now)` });
  return tables;
}

/**
 * A transactional logical message the streamer turns into one `gap` change per table (and the
 * transform into `label.gap` events): the loss is said in the stream, in order, not only in logs.
 */
async function emitGapNotice(client: Client, notice: GapNotice, findings: Finding[], actions: Action[]): Promise<void> {
  try {
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn', [GAP_PREFIX, JSON.stringify(notice)]);
    actions.push({ kind: 'gap-notice', lsn: rows[0]?.lsn as string, reason: notice.reason, tables: notice.tables });
  } catch (err) {
    findings.push({ code: 'GAP_NOTICE_FAILED', severity: 'critical', message: `could not write the gap notice into the stream (${(err as Error).message}); consumers learn of the lost changes only from this finding and the bootstrap requests` });
  }
}

/**
 * A non-transactional logical message: decoded by the slot right away, outside any
 * transaction, so the streamer acknowledges its position even when the published tables are
 * quiet and the WAL is all other tables' or other databases'.
 */
async function heartbeat(client: Client, config: MonitorConfig, now: Date, findings: Finding[]): Promise<string | undefined> {
  try {
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_logical_emit_message(false, $1, $2)::text AS lsn', [
      HEARTBEAT_PREFIX,
      JSON.stringify({ slot: config.slotName, source: config.sourceId, at: now.toISOString() }),
    ]);
    return rows[0]?.lsn;
  } catch (err) {
    const code = (err as { code?: string }).code;
    findings.push({
      code: 'HEARTBEAT_FAILED',
      severity: 'warning',
      message:
        code === '42501'
          ? `cannot write the heartbeat: ${(err as Error).message}; GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO <monitor user>`
          : `cannot write the heartbeat: ${(err as Error).message}`,
    });
    return undefined;
  }
}

function seconds(now: Date, since: Date): number {
  return Math.max(0, Math.round((now.getTime() - since.getTime()) / 1000));
}

/** The EMF document of a run. */
export function guardianMetrics(result: GuardianResult, sourceId: string, now: number): Record<string, unknown> {
  return slotMetrics(result.status, {
    sourceId,
    now,
    slotLost: result.slotLost,
    ...(result.lastAckAgeSeconds !== undefined ? { lastAckAgeSeconds: result.lastAckAgeSeconds } : {}),
    ...(result.inactiveSeconds !== undefined ? { inactiveSeconds: result.inactiveSeconds } : {}),
    findings: result.findings,
    actions: result.actions,
  });
}
