/**
 * The monitor's heartbeat, end to end: a real streamer on a real slot, a real monitor run,
 * foreign WAL (an unpublished table of the same database, a table of another database) and
 * published tables that stay quiet. The requirement: the slot still advances, so that WAL is
 * never retained for long.
 *
 * The streamer confirms two kinds of positions outside transactions: walsender keepalives and
 * non-transactional logical messages (the heartbeat). While it is connected, PostgreSQL's own
 * keepalives carry the slot past foreign WAL too (the last test records that). To show what the
 * heartbeat alone does, one test puts the streamer behind a proxy that drops every keepalive
 * the server sends, and records the standby status updates the streamer sends back.
 *
 * How much WAL the slot retains is a property of the whole server: an open transaction of any
 * session holds the slot's restart point where it began. So this file has a server of its own
 * (no other test file's sessions, no autovacuum), where only what a test does decides it.
 */
import { once } from 'node:events';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseStreamerConfig } from '#core/config.ts';
import { formatLsn, parseLsn } from '#core/position.ts';
import { parseMonitorConfig, type MonitorConfig, type MonitorConfigInput } from '#monitor/config.ts';
import { runMonitor, type MonitorSummary } from '#monitor/handler.ts';
import { ConnectionProvider } from '#shared/connection.ts';
import { emfProblems } from '#test/helpers/emf.ts';
import { createTestDatabase, startTestPostgres, withClient, type TestPostgres } from '#test/helpers/postgres.ts';
import { confirmedLsn, onCleanup, runCleanups, runStreamer, setupDbAndQueue, type Db, type Queue } from '#test/helpers/scenario.ts';
import { drainQueue } from '#test/helpers/sqs.ts';
import { streamerConfig, type RunningStreamer } from '#test/helpers/streamer.ts';
import { waitFor, waitForValue } from '#test/helpers/wait.ts';

afterEach(runCleanups);

let server: TestPostgres;
beforeAll(async () => {
  server = await startTestPostgres({ flags: ['autovacuum=off'] });
});
afterAll(async () => {
  await server?.stop();
});

const MiB = 1024 * 1024;
/** Rows of foreign writes per round: 500 characters each, ≈ 5.6 MB of WAL a round. */
const ROWS_PER_ROUND = 10_000;
const ROUNDS = 5;
/**
 * The slot's lag the final monitor run may see. What is left after a confirmed heartbeat is
 * the monitor's own bookkeeping (its slot-watch row, a few hundred bytes) and the server's own
 * background records since: kilobytes. 1 MiB is under a fifth of
 * one round of foreign writes and under 4 % of the test's total, so a slot that skipped even
 * one round, let alone held the whole test's WAL, fails it. The same bound holds the retained
 * WAL after two checkpoints (measured: a few hundred bytes; without them, the whole ≈ 32 MB).
 */
const LAG_BOUND = MiB;

const TABLES = `
  CREATE TABLE quiet (id int PRIMARY KEY, note text);
  CREATE TABLE busy (id bigserial PRIMARY KEY, body text NOT NULL);
`;

const lsnOf = async (url: string, expr: string): Promise<bigint> =>
  withClient(url, async (c) => parseLsn((await c.query<{ l: string }>(`SELECT (${expr})::text AS l`)).rows[0]!.l));

/** Writes `rows` rows of 500 characters into `table`; returns the WAL the transaction wrote and where it ended. */
async function writeForeign(url: string, table: string, rows: number): Promise<{ bytes: bigint; end: bigint }> {
  return withClient(url, async (c) => {
    const at = async () => parseLsn((await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l);
    const start = await at();
    await c.query(`INSERT INTO ${table} (body) SELECT repeat('x', 500) FROM generate_series(1, $1::int)`, [rows]);
    const end = await at();
    return { bytes: end - start, end };
  });
}

/** A streamer on `db` (tables: quiet), and a monitor config naming the same slot and publication. */
function startPair(db: Db, queue: Queue, monitorInput: Partial<MonitorConfigInput> = {}, streamerDbUrl = db.url): { r: RunningStreamer; cfg: MonitorConfig } {
  // No initial load of `quiet`: its markers would be traffic, and these tests are about a silent stream.
  const tables = [{ table: 'public.quiet', bootstrap: 'off' as const }];
  const input = { dbUrl: streamerDbUrl, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables, sourceId: 'hb-test' };
  const streamer = parseStreamerConfig(streamerConfig(input));
  const r = runStreamer(input);
  const cfg = parseMonitorConfig({
    sourceId: 'hb-test',
    database: { url: db.url },
    slotName: streamer.slotName,
    publicationName: streamer.publicationName,
    tables,
    ...monitorInput,
  });
  return { r, cfg };
}

/** One monitor run, as the Lambda does it: a fresh connection provider, one EMF line. */
async function monitor(cfg: MonitorConfig): Promise<{ summary: MonitorSummary; doc: Record<string, unknown> }> {
  const lines: string[] = [];
  const summary = await runMonitor(cfg, { connections: new ConnectionProvider(cfg.database), write: (line) => void lines.push(line) });
  expect(lines).toHaveLength(1);
  const doc = JSON.parse(lines[0] as string) as Record<string, unknown>;
  expect(emfProblems(doc)).toEqual([]);
  return { summary, doc };
}

function heartbeatOf(summary: MonitorSummary): bigint {
  const beats = summary.actions.filter((a) => a.kind === 'heartbeat');
  expect(beats, JSON.stringify(summary.findings)).toHaveLength(1);
  return parseLsn((beats[0] as { lsn: string }).lsn);
}

async function waitConfirmed(url: string, lsn: bigint, what: string): Promise<void> {
  await waitFor(async () => (await confirmedLsn(url)) >= lsn, { timeoutMs: 15_000, message: `the slot to confirm ${formatLsn(lsn)} (${what})` });
}

async function waitStreaming(r: RunningStreamer, cfg: MonitorConfig): Promise<void> {
  await r.ready;
  await waitFor(async () => (await withClient(cfg.database.url as string, (c) => c.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active`, [cfg.slotName]))).rowCount === 1, {
    message: `slot ${cfg.slotName} to be active`,
  });
}

/** Nothing reached the changes queue: the streamer sent nothing, and a drain finds nothing. */
async function expectNothingSent(r: RunningStreamer, queue: Queue): Promise<void> {
  expect(r.streamer.stats()).toMatchObject({ changes: 0, messages: 0, requests: 0 });
  expect(await drainQueue(queue.client, queue.queueUrl, { waitTimeSeconds: 1 })).toEqual([]);
}

/**
 * Rounds of foreign writes, each followed by a monitor run whose heartbeat the slot must confirm
 * before the next round. Returns the foreign WAL written and the last heartbeat.
 */
async function heartbeatRounds(slotDbUrl: string, cfg: MonitorConfig, write: () => Promise<{ bytes: bigint }>): Promise<{ foreign: bigint }> {
  let foreign = 0n;
  for (let round = 1; round <= ROUNDS; round++) {
    foreign += (await write()).bytes;
    const { summary } = await monitor(cfg);
    expect(summary.slotState).toBe('ok');
    await waitConfirmed(slotDbUrl, heartbeatOf(summary), `heartbeat of round ${round}`);
  }
  return { foreign };
}

/**
 * The final look: the slot sits at (or past) the last heartbeat, its lag is small, and its
 * acknowledged position moved since the previous run.
 *
 * Retained WAL is released in PostgreSQL's own steps: a slot may restart only from a
 * running-transactions record (logged by a CHECKPOINT, and every 15 s of activity by the
 * background writer, which is what bounds retention in production), and the walsender keeps one
 * such candidate at a time: one decoded while an older candidate still waits for its
 * confirmation is passed over. So a confirmed heartbeat may first apply a candidate from the
 * middle of the foreign writes (seen in CI: 21 MB still retained). Two rounds of CHECKPOINT and
 * confirmed heartbeat are always enough: the first applies whatever was pending, the second one
 * whose record lies after every foreign write.
 */
async function expectSlotCaughtUp(slotDbUrl: string, cfg: MonitorConfig, foreign: bigint): Promise<void> {
  let beat = 0n;
  for (const round of ['first', 'second']) {
    await withClient(slotDbUrl, (c) => c.query('CHECKPOINT'));
    beat = heartbeatOf((await monitor(cfg)).summary);
    await waitConfirmed(slotDbUrl, beat, `heartbeat after the ${round} checkpoint`);
  }
  const { summary, doc } = await monitor(cfg);
  const lag = doc.SlotLagBytes as number;
  const retained = doc.SlotRetainedWalBytes as number;
  expect(foreign).toBeGreaterThan(20n * BigInt(MiB));
  // At or past the last confirmed heartbeat when this run looked...
  expect(BigInt(lag)).toBeLessThanOrEqual(parseLsn(doc.currentWalLsn as string) - beat);
  // ...which is close to the end of the WAL, though far more than that was written meanwhile.
  expect(lag).toBeLessThan(LAG_BOUND);
  // And PostgreSQL may recycle the foreign WAL: the slot restarts from after the checkpoint.
  expect(retained).toBeLessThan(LAG_BOUND);
  expect(doc).toMatchObject({ slotState: 'ok', SlotActive: 1, SlotLost: 0, SlotLastAckAgeSeconds: 0 });
  expect(summary).toMatchObject({ lagBytes: lag, retainedWalBytes: retained, lastAckAgeSeconds: 0, slotLost: false });
}

describe('monitor heartbeat: a slot whose tables are quiet still advances', () => {
  it('past heavy writes to an unpublished table of the same database', async () => {
    const { db, queue } = await setupDbAndQueue('hb_busy', TABLES, server.url);
    const { r, cfg } = startPair(db, queue);
    expect(cfg.heartbeat).toBe(true); // the default, not switched on here
    await waitStreaming(r, cfg);

    const start = await lsnOf(db.url, 'pg_current_wal_lsn()');
    const { foreign } = await heartbeatRounds(db.url, cfg, () => writeForeign(db.url, 'busy', ROWS_PER_ROUND));
    await expectSlotCaughtUp(db.url, cfg, foreign);
    expect((await lsnOf(db.url, 'pg_current_wal_lsn()')) - start).toBeGreaterThanOrEqual(foreign);
    await expectNothingSent(r, queue);
  });

  it('past heavy writes to a table in another database on the same server', async () => {
    const { db, queue } = await setupDbAndQueue('hb_home', TABLES, server.url);
    const other = await createTestDatabase(server.url, 'hb_elsewhere');
    onCleanup(() => other.drop());
    await withClient(other.url, (c) => c.query('CREATE TABLE elsewhere (id bigserial PRIMARY KEY, body text NOT NULL)'));
    const { r, cfg } = startPair(db, queue);
    await waitStreaming(r, cfg);

    // Only the other database is written to: this one sees nothing but the monitor's runs.
    const { foreign } = await heartbeatRounds(db.url, cfg, () => writeForeign(other.url, 'elsewhere', ROWS_PER_ROUND));
    await expectSlotCaughtUp(db.url, cfg, foreign);
    expect(await withClient(db.url, async (c) => (await c.query('SELECT count(*)::int AS n FROM busy')).rows[0].n)).toBe(0);
    await expectNothingSent(r, queue);
  });

  it('with every walsender keepalive dropped on the way, the heartbeat alone moves the slot', async () => {
    const { db, queue } = await setupDbAndQueue('hb_nokeepalive', TABLES, server.url);
    const proxy = await keepaliveDroppingProxy(db.url);
    onCleanup(() => proxy.close());
    const { r, cfg } = startPair(db, queue, {}, proxy.url);
    await waitStreaming(r, cfg);
    const c0 = await confirmedLsn(db.url);

    // Control: foreign writes and a monitor run without a heartbeat.
    const { end: busyEnd } = await writeForeign(db.url, 'busy', ROWS_PER_ROUND);
    const silent = await monitor({ ...cfg, heartbeat: false });
    expect(silent.summary.actions.filter((a) => a.kind === 'heartbeat')).toEqual([]);
    // The server did tell the streamer it had read past all of it: in a keepalive the proxy dropped...
    const told = await waitForValue(() => proxy.droppedKeepalives.find((k) => k.walEnd >= busyEnd), {
      timeoutMs: 15_000,
      message: `a keepalive at or past ${formatLsn(busyEnd)}`,
    });
    // ...and several status updates later (one every 200 ms), the streamer still confirms only where it started.
    const later = await waitForValue(() => {
      const after = proxy.statusUpdates.filter((s) => s.at > told.at);
      return after.length >= 5 ? after : undefined;
    }, { message: 'five status updates after the dropped keepalive' });
    expect(new Set(later.map((s) => formatLsn(s.flush)))).toEqual(new Set([formatLsn(c0)]));
    expect(await confirmedLsn(db.url)).toBe(c0);

    // The heartbeat: a logical message the streamer decodes from the data stream and confirms.
    const { summary } = await monitor(cfg);
    const beat = heartbeatOf(summary);
    await waitConfirmed(db.url, beat, 'the heartbeat, with no keepalive reaching the streamer');
    const confirmed = await confirmedLsn(db.url);
    expect(confirmed).toBeGreaterThanOrEqual(busyEnd);
    // The streamer confirmed exactly the heartbeat's position: nothing else could have told it of one.
    expect(proxy.statusUpdates.some((s) => s.flush === beat)).toBe(true);
    expect(proxy.statusUpdates.every((s) => s.flush === c0 || s.flush === beat)).toBe(true);

    const { doc } = await monitor(cfg);
    expect(doc).toMatchObject({ slotState: 'ok', SlotActive: 1, SlotLastAckAgeSeconds: 0 });
    expect(doc.SlotLagBytes as number).toBeLessThan(LAG_BOUND);
    expect(doc.SlotLagBytes as number).toBe(Number(parseLsn(doc.currentWalLsn as string) - beat));
    expect(proxy.droppedKeepalives.length).toBeGreaterThan(0);
    await expectNothingSent(r, queue);
  });

  it('releases retained WAL within two checkpoints even when an older restart point is pending', async () => {
    const { db, queue } = await setupDbAndQueue('hb_pending', TABLES, server.url);
    const proxy = await keepaliveDroppingProxy(db.url);
    onCleanup(() => proxy.close());
    // Behind the proxy only heartbeats confirm anything, so a restart point decoded between two
    // heartbeats waits for its confirmation, as it does when a busy streamer acknowledges slowly.
    const { r, cfg } = startPair(db, queue, {}, proxy.url);
    await waitStreaming(r, cfg);
    const retained = async () => Number((await monitor(cfg)).doc.SlotRetainedWalBytes);

    const restartLsn = () => lsnOf(db.url, `(SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${cfg.slotName}')`);
    // Which running-transactions record the walsender holds as its pending restart point is
    // PostgreSQL's choice (about one run in twenty under load it had already moved past the
    // middle when the first heartbeat was confirmed). So the round is repeated, at most three
    // times, until it shows the state this test is about; the release is then asserted on it.
    let pending = false;
    for (let attempt = 0; attempt < 3 && !pending; attempt++) {
      await writeForeign(db.url, 'busy', ROWS_PER_ROUND);
      // A running-transactions record in the middle of the foreign writes: the restart point the
      // walsender holds on to until it is confirmed.
      const middle = await lsnOf(db.url, 'pg_log_standby_snapshot()');
      const { bytes: secondHalf } = await writeForeign(db.url, 'busy', ROWS_PER_ROUND);

      await withClient(db.url, (c) => c.query('CHECKPOINT'));
      await waitConfirmed(db.url, heartbeatOf((await monitor(cfg)).summary), 'heartbeat after the first checkpoint');
      // The checkpoint's own record was passed over: the slot restarts from the middle (or earlier)...
      pending = BigInt(await retained()) >= secondHalf && (await restartLsn()) <= middle;
    }
    expect(pending, 'a restart point from the middle of the writes was pending in one of three rounds').toBe(true);

    await withClient(db.url, (c) => c.query('CHECKPOINT'));
    await waitConfirmed(db.url, heartbeatOf((await monitor(cfg)).summary), 'heartbeat after the second checkpoint');
    // ...and one more round releases everything the foreign writes left behind.
    expect(await retained()).toBeLessThan(LAG_BOUND);
    await expectNothingSent(r, queue);
  });

  it('for the record: without the heartbeat, keepalives reaching the streamer also carry the slot past foreign WAL', async () => {
    const { db, queue } = await setupDbAndQueue('hb_keepalive', TABLES, server.url);
    const { r, cfg } = startPair(db, queue, { heartbeat: false });
    await waitStreaming(r, cfg);
    const c0 = await confirmedLsn(db.url);
    const { end } = await writeForeign(db.url, 'busy', ROWS_PER_ROUND);
    const { summary } = await monitor(cfg);
    expect(summary.actions.filter((a) => a.kind === 'heartbeat')).toEqual([]);
    await waitConfirmed(db.url, end, 'foreign WAL, by keepalives only');
    expect(end - c0).toBeGreaterThan(5n * BigInt(MiB));
    await expectNothingSent(r, queue);
  });
});

// --- a PostgreSQL proxy that drops walsender keepalives ----------------------------------------

interface KeepaliveDroppingProxy {
  /** `dbUrl` pointed at the proxy. */
  url: string;
  /** Primary keepalive messages the server sent and the proxy did not pass on. */
  droppedKeepalives: { walEnd: bigint; at: number }[];
  /** Standby status updates the client sent (passed on), with the flush position they confirm. */
  statusUpdates: { flush: bigint; at: number }[];
  close(): Promise<void>;
}

/**
 * Forwards PostgreSQL connections (no TLS), reading the protocol's framing in both directions:
 * from the server it drops CopyData messages carrying a primary keepalive ('k'), passing
 * everything else (XLogData included) unchanged; from the client it notes standby status
 * updates ('r'). Plain connections never see a CopyData, so they pass untouched.
 */
async function keepaliveDroppingProxy(dbUrl: string): Promise<KeepaliveDroppingProxy> {
  const target = new URL(dbUrl);
  const droppedKeepalives: KeepaliveDroppingProxy['droppedKeepalives'] = [];
  const statusUpdates: KeepaliveDroppingProxy['statusUpdates'] = [];
  const sockets = new Set<net.Socket>();
  const COPY_DATA = 0x64; // 'd'

  /** Splits a byte stream into protocol messages; `untyped` first messages have no type byte (the startup packet). */
  const framer = (untyped: number, onMessage: (msg: Buffer) => void) => {
    let pending: Buffer = Buffer.alloc(0);
    let headless = untyped;
    return (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let offset = 0;
      for (;;) {
        const head = headless > 0 ? 0 : 1;
        if (pending.length - offset < head + 4) break;
        const size = head + pending.readUInt32BE(offset + head);
        if (pending.length - offset < size) break;
        onMessage(pending.subarray(offset, offset + size));
        offset += size;
        if (headless > 0) headless--;
      }
      pending = Buffer.from(pending.subarray(offset));
    };
  };

  const server = net.createServer((client) => {
    const upstream = net.connect({ host: target.hostname, port: Number(target.port || 5432) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true); // one write per protocol message: do not let Nagle hold them back
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on(
      'data',
      framer(1, (msg) => {
        if (msg[0] === COPY_DATA && msg[5] === 0x72 /* 'r' */) statusUpdates.push({ flush: msg.readBigUInt64BE(5 + 9), at: Date.now() });
        upstream.write(msg);
      }),
    );
    upstream.on(
      'data',
      framer(0, (msg) => {
        if (msg[0] === COPY_DATA && msg[5] === 0x6b /* 'k' */) {
          droppedKeepalives.push({ walEnd: msg.readBigUInt64BE(6), at: Date.now() });
          return;
        }
        client.write(msg);
      }),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = new URL(dbUrl);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    droppedKeepalives,
    statusUpdates,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
