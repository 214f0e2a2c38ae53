/**
 * Replication slots: pgrelay's own (missing is fine, the streamer creates it; the wrong type,
 * plugin or database blocks; invalidated blocks with drop-and-bootstrap advice; about to be
 * invalidated or inactive with much WAL retained warns) and every other slot on the server
 * (invalidated or abandoned ones take a slot and keep WAL). Owns the slot query, which reads
 * columns of later versions through to_jsonb so one query serves every version.
 */
import type pg from 'pg';
import { formatBytes } from '#core/bytes.ts';
import type { Finding } from './finding.ts';

/** A slot that is not streaming and holds more WAL than this is worth a warning. */
export const RETAINED_WAL_WARN_BYTES = 1024 ** 3;

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

/** Every slot on the server, by name. */
export async function readSlotFacts(client: pg.Client): Promise<SlotFacts[]> {
  const { rows } = await client.query<{ name: string; slot_type: string; plugin: string | null; database: string | null; active: boolean; lag_bytes: number | null; retained_bytes: number | null; wal_status: string | null; invalidation_reason: string | null }>(SLOTS_SQL);
  return rows.map((r): SlotFacts => ({ name: r.name, slotType: r.slot_type, plugin: r.plugin, database: r.database, active: r.active, lagBytes: r.lag_bytes, retainedBytes: r.retained_bytes, walStatus: r.wal_status, invalidationReason: r.invalidation_reason }));
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
