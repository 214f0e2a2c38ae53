/**
 * Replication slots invalidated for real ("lost"), the way a consumer that fell too far behind
 * loses its slot in production — not a slot dropped, faked or mocked.
 *
 * How it works. At every checkpoint PostgreSQL decides which old WAL segments it may remove. A
 * slot normally pins everything from its restart_lsn onwards, but `max_slot_wal_keep_size` caps
 * that: a slot whose restart_lsn lies further behind the checkpoint's position than the cap
 * allows is invalidated by that checkpoint — wal_status becomes 'lost', restart_lsn NULL, and
 * (PostgreSQL 17+) invalidation_reason 'wal_removed'; a walsender holding the slot is terminated
 * first. The cap is counted in whole WAL segments (16MB unless initdb said otherwise), rounded
 * down, so `1MB` means "no segment at all": any slot whose restart_lsn is in a segment older than
 * the checkpoint's redo segment is invalidated. `wal_keep_size` must be 0, or it would keep those
 * segments (and the slot) alive.
 *
 * So one round is enough to lose an idle slot: write one WAL record (pg_switch_wal does nothing
 * on a segment nothing was written to), switch to the next segment, CHECKPOINT — the redo point is
 * now in a newer segment than the slot's restart_lsn. `invalidateSlot` repeats that round until
 * the slot reads 'lost', bounded by a deadline and a small number of rounds (each costs one
 * segment). The WAL record is a non-transactional logical message (pg_logical_emit_message):
 * no scratch table to create or clean up, and pgoutput consumers ignore messages unless they
 * ask for them.
 *
 * Needs a superuser (pg_switch_wal, CHECKPOINT) on a dedicated server started with
 * `LOST_SLOT_SETTINGS` — never the suite's shared server: the cap would invalidate every other
 * test's idle slots too.
 */
import type pg from 'pg';
import { withClient } from './postgres.ts';

/** Server settings under which a CHECKPOINT invalidates a slot left one WAL segment behind. */
export const LOST_SLOT_SETTINGS: string[] = ['max_slot_wal_keep_size=1MB', 'wal_keep_size=0'];

export interface InvalidateSlotOptions {
  /** Give up after this long. @default 15_000 */
  timeoutMs?: number;
  /** Give up after this many switch-and-checkpoint rounds (one WAL segment each). @default 5 */
  maxRounds?: number;
}

export interface LostSlot {
  /** 'lost'. */
  walStatus: string;
  /** 'wal_removed' on PostgreSQL 17+; null before (the column does not exist). */
  invalidationReason: string | null;
  /** Kept by PostgreSQL after the invalidation: the last position the consumer confirmed. */
  confirmedFlushLsn: string | null;
  /** NULL once the slot is lost. */
  restartLsn: string | null;
}

interface SlotRow {
  wal_status: string | null;
  safe_wal_size: string | null;
  invalidation_reason: string | null;
  restart_lsn: string | null;
  confirmed_flush_lsn: string | null;
  active_pid: string | null;
}

// Through to_jsonb so servers without a column (invalidation_reason before 17) answer NULL.
const SLOT_SQL = `
  SELECT to_jsonb(s) ->> 'wal_status' AS wal_status,
         to_jsonb(s) ->> 'safe_wal_size' AS safe_wal_size,
         to_jsonb(s) ->> 'invalidation_reason' AS invalidation_reason,
         to_jsonb(s) ->> 'restart_lsn' AS restart_lsn,
         to_jsonb(s) ->> 'confirmed_flush_lsn' AS confirmed_flush_lsn,
         to_jsonb(s) ->> 'active_pid' AS active_pid
    FROM pg_replication_slots s WHERE slot_name = $1`;

/**
 * Generates WAL and checkpoints on the server of `url` (superuser) until slot `slotName` is
 * invalidated (wal_status 'lost'), and returns what pg_replication_slots then says about it.
 * The server must run with `LOST_SLOT_SETTINGS`; the slot should be inactive (an active one's
 * walsender is terminated by the checkpoint, which also works).
 */
export async function invalidateSlot(url: string, slotName: string, opts: InvalidateSlotOptions = {}): Promise<LostSlot> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const maxRounds = opts.maxRounds ?? 5;
  const deadline = performance.now() + timeoutMs;
  return withClient(url, async (client) => {
    const settings = await readSettings(client);
    if (Number(settings.server_version_num) < 130000) {
      throw new Error(`invalidateSlot: PostgreSQL ${settings.server_version_num} has no wal_status or max_slot_wal_keep_size (13+ needed)`);
    }
    if (settings.max_slot_wal_keep_size === '-1') {
      throw new Error(
        `invalidateSlot: replication slot ${slotName} cannot be lost: the server has max_slot_wal_keep_size=-1 (no cap); start it with LOST_SLOT_SETTINGS`,
      );
    }
    let rounds = 0;
    for (;;) {
      const slot = await readSlotRow(client, slotName);
      if (slot === undefined) throw new Error(`invalidateSlot: replication slot ${slotName} does not exist`);
      if (slot.wal_status === 'lost') {
        return {
          walStatus: slot.wal_status,
          invalidationReason: slot.invalidation_reason,
          confirmedFlushLsn: slot.confirmed_flush_lsn,
          restartLsn: slot.restart_lsn,
        };
      }
      if (rounds >= maxRounds || performance.now() >= deadline) {
        const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
        throw new Error(
          `invalidateSlot: replication slot ${slotName} is still not lost after ${rounds} WAL switches and checkpoints ` +
            `(${Math.round(timeoutMs - Math.max(0, deadline - performance.now()))} ms): ` +
            `wal_status=${slot.wal_status}, safe_wal_size=${slot.safe_wal_size}, restart_lsn=${slot.restart_lsn}, ` +
            `active_pid=${slot.active_pid}, current WAL lsn=${rows[0]?.lsn}; server has ` +
            `max_slot_wal_keep_size=${settings.max_slot_wal_keep_size}, wal_keep_size=${settings.wal_keep_size}, ` +
            `wal_segment_size=${settings.wal_segment_size} (start it with LOST_SLOT_SETTINGS)`,
        );
      }
      rounds += 1;
      // One record, so the switch has something to close; then a new segment; then a checkpoint
      // whose redo point is in that segment, past the slot's restart_lsn.
      await client.query(`SELECT pg_logical_emit_message(false, 'pgrelay-test-lost-slot', $1)`, [`round ${rounds}`]);
      await client.query('SELECT pg_switch_wal()');
      await client.query('CHECKPOINT');
    }
  });
}

async function readSlotRow(client: pg.Client, slotName: string): Promise<SlotRow | undefined> {
  const { rows } = await client.query<SlotRow>(SLOT_SQL, [slotName]);
  return rows[0];
}

async function readSettings(client: pg.Client): Promise<Record<string, string>> {
  const { rows } = await client.query<{ name: string; setting: string; unit: string | null }>(
    `SELECT name, setting, unit FROM pg_settings WHERE name IN ('server_version_num', 'max_slot_wal_keep_size', 'wal_keep_size', 'wal_segment_size')`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.setting === '-1' ? '-1' : `${r.setting}${r.unit ?? ''}`]));
}
