/**
 * A logical replication slot invalidated for real by max_slot_wal_keep_size (wal_status 'lost'),
 * and what everyone who touches it afterwards is told: a consumer's START_REPLICATION, the SQL
 * decoding and advance functions, the streamer's own slot check (`ensureSlot`), and a consumer
 * that was streaming from the slot at the moment it was lost. Then the way out: drop the slot
 * and create it again under the same name.
 *
 * A dedicated server with LOST_SLOT_SETTINGS, never the suite's shared one (the cap would
 * invalidate other tests' idle slots). Verified against PostgreSQL 18 (embedded); the texts
 * PostgreSQL 16/17 use instead are asserted when the server is one of those.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '#core/errors.ts';
import { silentLogger } from '#streamer/log.ts';
import { ensureSlot, readSlot } from '#streamer/source.ts';
import { invalidateSlot, LOST_SLOT_SETTINGS } from '#test/helpers/lost-slot.ts';
import { createTestDatabase, startTestPostgres, withClient, type TestPostgres } from '#test/helpers/postgres.ts';
import { waitFor } from '#test/helpers/wait.ts';

type Database = Awaited<ReturnType<typeof createTestDatabase>>;

interface PgFailure {
  code: string | undefined;
  severity: string | undefined;
  message: string;
  detail: string | undefined;
}

function failureOf(err: unknown): PgFailure {
  const e = err as { code?: string; severity?: string; message?: string; detail?: string };
  return { code: e.code, severity: e.severity, message: e.message ?? String(err), detail: e.detail };
}

/** A client in walsender mode, the way a logical replication consumer connects. */
async function replicationClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, replication: 'database' } as pg.ClientConfig);
  client.on('error', () => undefined); // the server may end the session; the query reports why
  await client.connect();
  return client;
}

function startReplicationSql(slot: string): string {
  return `START_REPLICATION SLOT ${slot} LOGICAL 0/0 (proto_version '1', publication_names 'pub')`;
}

/**
 * What the server answers a START_REPLICATION on `slot` that it must refuse. Fails if the
 * server starts streaming instead (the query would then run until the stream ends).
 */
async function refusedStartReplication(url: string, slot: string): Promise<PgFailure> {
  const client = await replicationClient(url);
  let timer: NodeJS.Timeout | undefined;
  try {
    const outcome = await Promise.race([
      client.query(startReplicationSql(slot)).then(
        () => ({ streamed: true as const }),
        (err: unknown) => ({ failure: failureOf(err) }),
      ),
      new Promise<{ streamed: true }>((resolve) => {
        timer = setTimeout(() => resolve({ streamed: true }), 10_000);
      }),
    ]);
    if ('streamed' in outcome) throw new Error(`START_REPLICATION on ${slot} was not refused`);
    return outcome.failure;
  } finally {
    clearTimeout(timer);
    await client.end().catch(() => undefined);
  }
}

async function refusedQuery(url: string, sql: string): Promise<PgFailure> {
  return withClient(url, async (client) => {
    try {
      await client.query(sql);
    } catch (err) {
      return failureOf(err);
    }
    throw new Error(`not refused: ${sql}`);
  });
}

interface SlotView {
  active: boolean;
  active_pid: number | null;
  wal_status: string | null;
  safe_wal_size: string | null;
  restart_lsn: string | null;
  confirmed_flush_lsn: string | null;
  invalidation_reason: string | null;
}

async function slotView(url: string, slot: string): Promise<SlotView | undefined> {
  const { rows } = await withClient(url, (c) =>
    c.query<SlotView>(
      `SELECT active, active_pid, wal_status, safe_wal_size::text, restart_lsn::text, confirmed_flush_lsn::text,
              to_jsonb(s) ->> 'invalidation_reason' AS invalidation_reason
         FROM pg_replication_slots s WHERE slot_name = $1`,
      [slot],
    ),
  );
  return rows[0];
}

describe('a replication slot lost to max_slot_wal_keep_size', () => {
  let server: TestPostgres | undefined;
  let db: Database | undefined;
  let url: string;
  let version: number;

  /** Texts PostgreSQL uses when a lost slot is acquired (START_REPLICATION, peek, advance). */
  function lostSlotError(slot: string): { message: string; detail: string } {
    if (version >= 180000) {
      return {
        message: `can no longer access replication slot "${slot}"`,
        detail: 'This replication slot has been invalidated due to "wal_removed".',
      };
    }
    return {
      message: `can no longer get changes from replication slot "${slot}"`,
      detail: 'This slot has been invalidated because it exceeded the maximum reserved size.',
    };
  }

  beforeAll(async () => {
    server = await startTestPostgres({ flags: LOST_SLOT_SETTINGS });
    db = await createTestDatabase(server.url, 'lost_slot');
    url = db.url;
    version = await withClient(url, async (c) => {
      await c.query('CREATE TABLE t (id int PRIMARY KEY, v text)');
      await c.query('CREATE PUBLICATION pub FOR TABLE t');
      const { rows } = await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
      return Number(rows[0]?.v);
    });
  });

  afterAll(async () => {
    await db?.drop();
    await server?.stop();
  });

  const IDLE = 'idle_slot';
  let confirmedBefore: string | null;

  it('invalidateSlot loses an idle slot: wal_status lost, restart_lsn NULL, confirmed_flush_lsn kept', async () => {
    await withClient(url, (c) => c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [IDLE]));
    await withClient(url, (c) => c.query(`INSERT INTO t VALUES (1, 'never streamed')`));
    const before = await slotView(url, IDLE);
    expect(before).toMatchObject({ active: false, wal_status: 'reserved', invalidation_reason: null });
    expect(before?.restart_lsn).not.toBeNull();
    confirmedBefore = before?.confirmed_flush_lsn ?? null;
    expect(confirmedBefore).not.toBeNull();

    const lost = await invalidateSlot(url, IDLE);

    expect(lost).toEqual({
      walStatus: 'lost',
      invalidationReason: version >= 170000 ? 'wal_removed' : null,
      confirmedFlushLsn: confirmedBefore,
      restartLsn: null,
    });
    // What the streamer's slot check reads from pg_replication_slots.
    expect(await slotView(url, IDLE)).toEqual({
      active: false,
      active_pid: null,
      wal_status: 'lost',
      safe_wal_size: null,
      restart_lsn: null,
      confirmed_flush_lsn: confirmedBefore,
      invalidation_reason: version >= 170000 ? 'wal_removed' : null,
    });
  });

  it('START_REPLICATION on the lost slot is refused with SQLSTATE 55000', async () => {
    const failure = await refusedStartReplication(url, IDLE);
    expect(failure.code).toBe('55000'); // object_not_in_prerequisite_state
    expect(failure.severity).toBe('ERROR');
    if (version >= 160000) {
      expect({ message: failure.message, detail: failure.detail }).toEqual(lostSlotError(IDLE));
    } else {
      expect(failure.message).toContain(`"${IDLE}"`);
    }
    // Refused every time: the error is not transient, a retry gets the same answer.
    expect((await refusedStartReplication(url, IDLE)).code).toBe('55000');
  });

  it('the SQL decoding and advance functions refuse it the same way', async () => {
    for (const sql of [
      `SELECT * FROM pg_logical_slot_peek_changes('${IDLE}', NULL, NULL)`,
      `SELECT * FROM pg_logical_slot_peek_binary_changes('${IDLE}', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub')`,
      `SELECT * FROM pg_logical_slot_get_binary_changes('${IDLE}', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub')`,
      `SELECT pg_replication_slot_advance('${IDLE}', pg_current_wal_lsn())`,
    ]) {
      const failure = await refusedQuery(url, sql);
      expect(failure.code, sql).toBe('55000');
      expect(failure.message, sql).toContain(`"${IDLE}"`);
      if (version >= 180000) expect({ message: failure.message, detail: failure.detail }, sql).toEqual(lostSlotError(IDLE));
    }
  });

  it("the streamer's slot check refuses it with SLOT_LOST; readSlot still reports the last confirmed position", async () => {
    await withClient(url, async (c) => {
      const slot = await readSlot(c, IDLE);
      expect(slot).toMatchObject({ walStatus: 'lost', active: false, activePid: null, plugin: 'pgoutput', slotType: 'logical' });
      expect(slot?.confirmedFlushLsn).toBeGreaterThan(0n);
      const err = await ensureSlot(c, IDLE, silentLogger).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SourceError);
      expect(err).toMatchObject({ code: 'PGRELAY_SLOT_LOST' });
      expect((err as Error).message).toContain(`pgrelay slot drop --slot ${IDLE}`);
      expect((err as Error).message).toContain('recreateLostSlot');
    });
  });

  it('a consumer streaming from the slot when it is lost is cut off (57P01), then refused with 55000', async () => {
    const slot = 'active_slot';
    await withClient(url, (c) => c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]));
    const consumer = await replicationClient(url);
    try {
      const streaming = consumer.query(startReplicationSql(slot)).then(
        () => undefined,
        (err: unknown) => failureOf(err),
      );
      await waitFor(async () => (await slotView(url, slot))?.active === true, {
        message: `walsender to hold ${slot}`,
      });

      const lost = await invalidateSlot(url, slot);

      expect(lost.walStatus).toBe('lost');
      // The checkpointer terminates the walsender to release the slot, then invalidates it.
      expect(await streaming).toEqual({
        code: '57P01', // admin_shutdown
        severity: 'FATAL',
        message: 'terminating connection due to administrator command',
        detail: undefined,
      });
      expect(await slotView(url, slot)).toMatchObject({ active: false, active_pid: null, wal_status: 'lost', restart_lsn: null });
    } finally {
      await consumer.end().catch(() => undefined);
    }
    const reconnect = await refusedStartReplication(url, slot);
    expect(reconnect.code).toBe('55000');
    if (version >= 160000) expect({ message: reconnect.message, detail: reconnect.detail }).toEqual(lostSlotError(slot));
  });

  it('the lost slot can be dropped and created again under the same name: reserved, and it decodes', async () => {
    await withClient(url, async (c) => {
      await c.query('SELECT pg_drop_replication_slot($1)', [IDLE]);
      expect(await readSlot(c, IDLE)).toBeUndefined();
      await c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [IDLE]);
    });
    const fresh = await slotView(url, IDLE);
    expect(fresh).toMatchObject({ active: false, wal_status: 'reserved', invalidation_reason: null });
    expect(fresh?.restart_lsn).not.toBeNull();
    expect(fresh?.safe_wal_size).not.toBeNull();

    await withClient(url, async (c) => {
      const slot = await ensureSlot(c, IDLE, silentLogger);
      expect(slot).toMatchObject({ walStatus: 'reserved', created: false });
      await c.query(`INSERT INTO t VALUES (2, 'after the new slot')`);
      // Begin, relation, insert, commit: the new slot streams what was committed after it was made.
      const { rows } = await c.query(
        `SELECT lsn FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', 'pub')`,
        [IDLE],
      );
      expect(rows).toHaveLength(4);
    });
  });
});
