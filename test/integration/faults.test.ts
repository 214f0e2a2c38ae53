import { afterEach, describe, expect, it } from 'vitest';
import { parseLsn } from '#core/position.ts';
import { startProxy } from '#test/helpers/net-proxy.ts';
import { withClient } from '#test/helpers/postgres.ts';
import {
  confirmedLsn,
  currentLsn,
  expectOrderPerNode,
  firstOccurrences,
  onCleanup,
  posKey,
  runCleanups,
  runStreamer,
  setupDbAndQueue,
} from '#test/helpers/scenario.ts';
import { receiveUntil, type ReceivedMessage } from '#test/helpers/sqs.ts';
import { changesOf, slotNameFor, spawnStreamer, startStreamer, streamerConfig } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';

afterEach(runCleanups);

describe('faults', () => {
  it('kill -9 between send and acknowledge, restart: every change present, order per node intact', async () => {
    const { db, queue } = await setupDbAndQueue('crash', 'CREATE TABLE acc (id int PRIMARY KEY, v int)');
    const config = streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['acc'], partitions: 4 });
    // A long status interval keeps the window between SQS acceptance and acknowledgement open.
    const first = spawnStreamer({ ...config, statusIntervalMs: 30_000 });
    onCleanup(async () => {
      first.child.kill('SIGKILL');
      await first.exited;
    });
    await waitFor(() => first.output().includes('"msg":"streaming"'), { timeoutMs: 30_000, message: 'first streamer streaming' });
    await withClient(db.url, (c) => c.query('INSERT INTO acc SELECT g, 0 FROM generate_series(1, 20) g'));
    const rounds = 30;
    let written = 0;
    const writer = withClient(db.url, async (c) => {
      for (let r = 1; r <= rounds; r++) {
        await c.query('UPDATE acc SET v = $1', [r]);
        written = r;
      }
    });
    const received: ReceivedMessage[] = [];
    // Kill once SQS holds part of the stream, while the writer may still be going.
    received.push(...(await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).length >= 100, 30_000)));
    first.child.kill('SIGKILL');
    await first.exited;
    const lastSent = changesOf(received).reduce((max, c) => (parseLsn(c.tx.commitLsn) > max ? parseLsn(c.tx.commitLsn) : max), 0n);
    expect(await confirmedLsn(db.url)).toBeLessThan(lastSent); // the kill fell inside the unacknowledged window
    await writer;
    expect(written).toBe(rounds);

    const second = spawnStreamer(config);
    onCleanup(async () => {
      second.child.kill('SIGTERM');
      await second.exited;
    });
    const total = 20 + 20 * rounds;
    received.push(
      ...(await receiveUntil(queue.client, queue.queueUrl, (ms) => new Set(changesOf([...received, ...ms]).map(posKey)).size >= total, 30_000)),
    );
    const all = changesOf(received);
    const unique = firstOccurrences(all);
    expect(unique).toHaveLength(total);
    expectOrderPerNode(unique);
    // Each node saw v = 1..rounds in order, with no gap.
    for (let id = 1; id <= 20; id++) {
      const values = unique.filter((c) => c.op === 'update' && c.key?.id === id).map((c) => c.after?.v);
      expect(values).toEqual(Array.from({ length: rounds }, (_, i) => i + 1));
    }
    // Duplicates, if any, are exact repeats of an earlier position.
    expect(all.length).toBeGreaterThanOrEqual(unique.length);
  });

  it('SIGTERM flushes, acknowledges and exits 0; a restart re-sends nothing', async () => {
    const { db, queue } = await setupDbAndQueue('sigterm', 'CREATE TABLE t (id int PRIMARY KEY)');
    const config = streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['t'], partitions: 2 });
    // Status reports and linger are long: only the shutdown path can flush and acknowledge in time.
    const child = spawnStreamer({ ...config, statusIntervalMs: 30_000, batch: { lingerMs: 60_000 }, metricsIntervalMs: 1_000 });
    onCleanup(async () => {
      child.child.kill('SIGKILL');
      await child.exited;
    });
    await waitFor(() => child.output().includes('"msg":"streaming"'), { timeoutMs: 30_000 });
    await withClient(db.url, (c) => c.query('INSERT INTO t SELECT generate_series(1, 50)'));
    const t0 = performance.now();
    // Wait until the streamer has begun reading the transaction (its changes sit in the
    // lingering batch): from there a graceful stop finishes it. The server having sent it is
    // not enough: under load the process may not have read its socket yet.
    const decoded = () =>
      child
        .output()
        .split('\n')
        .filter((l) => l.includes('"ChangesStreamed"'))
        .reduce((n, l) => n + ((JSON.parse(l) as { ChangesStreamed: number }).ChangesStreamed ?? 0), 0);
    await waitFor(() => decoded() > 0, { timeoutMs: 15_000, message: () => `the streamer decoding the transaction; output:\n${child.output().slice(-2000)}` });
    child.child.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    expect(performance.now() - t0).toBeLessThan(25_000);
    expect(child.output()).toContain('"msg":"stopped"');
    const received = changesOf(await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).length >= 50));
    expect(received).toHaveLength(50);
    expect(await confirmedLsn(db.url)).toBeGreaterThanOrEqual(parseLsn(received[0]!.tx.commitLsn));

    const again = startStreamer(config);
    onCleanup(() => again.stop());
    await again.ready;
    await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (999)'));
    const after = changesOf(await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).some((c) => c.key?.id === 999)));
    expect(after.map((c) => c.key?.id)).toEqual([999]);
  });

  it('a stop in the middle of a transaction finishes it, confirms it, and leaves the next one whole for the restart', async () => {
    const { db, queue } = await setupDbAndQueue('midtx', 'CREATE TABLE t (id int PRIMARY KEY, body text)');
    const proxy = await startProxy('127.0.0.1', Number(new URL(queue.endpoint).port));
    onCleanup(() => proxy.close());
    const rows = 6_000;
    const input = {
      dbUrl: db.url,
      queueUrl: queue.queueUrl,
      sqsEndpoint: `http://127.0.0.1:${proxy.port}`,
      tables: ['t'],
      partitions: 2,
      maxInFlightBytes: 1024 * 1024,
      batch: { maxBytes: 256 * 1024, lingerMs: 10 },
      shutdownTimeoutMs: 60_000,
    };
    const r = runStreamer(input, { sqsRetry: { initialMs: 20, maxMs: 100 } });
    await r.ready;
    // SQS unreachable: reading stops at the in-flight limit, well inside the big transaction.
    proxy.block();
    await withClient(db.url, async (c) => {
      await c.query(`INSERT INTO t SELECT g, repeat('x', 500) FROM generate_series(1, $1::int) g`, [rows]);
      await c.query(`INSERT INTO t SELECT g, 'next' FROM generate_series($1::int + 1, $1::int + 10) g`, [rows]);
    });
    await waitFor(() => r.streamer.stats().paused, { timeoutMs: 20_000, message: 'reading paused at the in-flight limit' });
    const readBeforeStop = r.streamer.stats().changes;
    expect(readBeforeStop).toBeGreaterThan(0);
    expect(readBeforeStop).toBeLessThan(rows); // the stop comes mid-transaction

    const stopped = r.streamer.stop('test: stop mid-transaction');
    proxy.unblock();
    await stopped;
    await r.done;

    const first = changesOf(await receiveUntil(queue.client, queue.queueUrl, (ms) => new Set(changesOf(ms).map((c) => c.key?.id)).size >= rows, 20_000));
    const ids = new Set(first.map((c) => c.key?.id as number));
    expect(ids.size).toBe(rows); // the whole first transaction...
    expect([...ids].every((id) => id <= rows)).toBe(true); // ...and nothing of the second
    const commitOfFirst = parseLsn(first[0]!.tx.commitLsn);
    expect(first.every((c) => parseLsn(c.tx.commitLsn) === commitOfFirst)).toBe(true);
    const confirmed = await confirmedLsn(db.url);
    expect(confirmed).toBeGreaterThan(commitOfFirst); // confirmed past its commit on the way out

    // The restart reads the second transaction whole, and nothing of the first again.
    const again = runStreamer({ ...input, sqsEndpoint: queue.endpoint });
    await again.ready;
    const second = changesOf(await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).length >= 10));
    expect(second.map((c) => c.key?.id as number).sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => rows + 1 + i));
    expect(parseLsn(second[0]!.tx.commitLsn)).toBeGreaterThan(confirmed);
  });

  it('SQS unreachable: retries, pauses reading at the in-flight limit, acknowledges nothing unsent, then delivers everything', async () => {
    const { db, queue } = await setupDbAndQueue('sqsdown', 'CREATE TABLE blobs (id int PRIMARY KEY, body text)');
    const proxy = await startProxy('127.0.0.1', Number(new URL(queue.endpoint).port));
    onCleanup(() => proxy.close());
    const maxInFlight = 1024 * 1024;
    const r = runStreamer({
      dbUrl: db.url,
      queueUrl: queue.queueUrl,
      sqsEndpoint: `http://127.0.0.1:${proxy.port}`,
      tables: ['blobs'],
      partitions: 4,
      maxInFlightBytes: maxInFlight,
      batch: { maxBytes: 64 * 1024, lingerMs: 10 },
    });
    await r.ready;
    const start = await confirmedLsn(db.url);
    proxy.block();
    // ~4 MB of changes: four times the in-flight limit.
    await withClient(db.url, async (c) => {
      for (let i = 0; i < 40; i++) await c.query(`INSERT INTO blobs SELECT g, repeat(md5(g::text), 32) FROM generate_series($1::int * 100 + 1, $1::int * 100 + 100) g`, [i]);
    });
    const end = await currentLsn(db.url);
    await waitFor(() => r.streamer.stats().paused && r.streamer.stats().failedRequests > 0, { timeoutMs: 20_000, message: 'reading paused while SQS is down' });
    let peak = 0;
    for (let i = 0; i < 20; i++) {
      peak = Math.max(peak, r.streamer.stats().inFlightBytes);
      await waitFor(() => r.streamer.stats().failedRequests > i, { timeoutMs: 10_000 });
    }
    expect(peak).toBeGreaterThan(maxInFlight / 2);
    expect(peak).toBeLessThan(maxInFlight * 1.5); // bounded: the limit plus at most one socket read
    expect(await confirmedLsn(db.url)).toBeLessThan(end);
    expect(r.logs.some((l) => l.msg === 'sqs send failed, retrying')).toBe(true);

    proxy.unblock();
    const changes = changesOf(await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).length >= 4000, 60_000));
    expect(new Set(changes.map((c) => c.key?.id)).size).toBe(4000);
    await waitFor(async () => (await confirmedLsn(db.url)) >= end - 1n && (await confirmedLsn(db.url)) > start, { timeoutMs: 20_000, message: 'slot confirmed to the end' });
  });

  it('reconnects after the replication connection is killed and loses nothing', async () => {
    const { db, queue } = await setupDbAndQueue('reconnect', 'CREATE TABLE t (id int PRIMARY KEY)');
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['t'], partitions: 2 });
    await r.ready;
    await withClient(db.url, (c) => c.query('INSERT INTO t SELECT generate_series(1, 100)'));
    await withClient(db.url, (c) => c.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '${slotNameFor(db.url)}' AND active`));
    await withClient(db.url, (c) => c.query('INSERT INTO t SELECT generate_series(101, 200)'));
    await waitFor(() => r.streamer.stats().sessions >= 2, { timeoutMs: 20_000, message: 'a second session' });
    await withClient(db.url, (c) => c.query('INSERT INTO t SELECT generate_series(201, 300)'));
    const changes = changesOf(await receiveUntil(queue.client, queue.queueUrl, (ms) => new Set(changesOf(ms).map((c) => c.key?.id)).size >= 300, 30_000));
    expect(new Set(changes.map((c) => c.key?.id)).size).toBe(300);
    expect(r.logs.some((l) => l.msg === 'replication connection lost; delivering what was read, then reconnecting')).toBe(true);
  });

  it('waits with a clear log line while another process holds the slot, then takes over', async () => {
    const { db, queue } = await setupDbAndQueue('slotheld', 'CREATE TABLE t (id int PRIMARY KEY)');
    const cfg = { dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['t'], partitions: 1 };
    const a = runStreamer(cfg);
    await a.ready;
    const b = runStreamer(cfg);
    await waitFor(() => b.logs.some((l) => l.msg === 'replication slot is in use by another process; waiting for it to be released'), { timeoutMs: 20_000 });
    await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (1)'));
    await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).length >= 1);
    await a.stop();
    await waitFor(() => b.streamer.stats().sessions >= 2 && b.logs.filter((l) => l.msg === 'streaming').length > b.logs.filter((l) => String(l.msg).startsWith('replication slot is in use')).length, { timeoutMs: 20_000 });
    await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (2)'));
    const changes = changesOf(await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).some((c) => c.key?.id === 2), 20_000));
    expect(changes.map((c) => c.key?.id)).toContain(2);
  });

  it('stops with SLOT_LOST, rather than retrying or recreating it, when the slot is dropped under it', async () => {
    const { db, queue } = await setupDbAndQueue('slotdropped', 'CREATE TABLE t (id int PRIMARY KEY)');
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['t'], partitions: 1 });
    await r.ready;
    const slot = slotNameFor(db.url);
    await withClient(db.url, async (c) => {
      // End the walsender, then drop the slot before the streamer reconnects.
      for (let i = 0; i < 50; i++) {
        await c.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active`, [slot]);
        const dropped = await c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, [slot]);
        if (dropped.rowCount === 1) return;
      }
      throw new Error('could not drop the slot between reconnects');
    });
    await expect(r.done).rejects.toMatchObject({ code: 'PGRELAY_SLOT_LOST' });
    await expect(r.done).rejects.toThrow(/was dropped while the streamer was running/);
    const slots = await withClient(db.url, (c) => c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]));
    expect(slots.rowCount).toBe(0); // not silently recreated
  });

  it("advances an idle slot's confirmed_flush_lsn while an unpublished table takes writes", async () => {
    const { db, queue } = await setupDbAndQueue('idle', 'CREATE TABLE published (id int PRIMARY KEY); CREATE TABLE busy (id serial PRIMARY KEY, payload text)');
    const r = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['published'], partitions: 1 });
    await r.ready;
    const start = await confirmedLsn(db.url);
    await withClient(db.url, async (c) => {
      for (let i = 0; i < 50; i++) await c.query(`INSERT INTO busy (payload) SELECT repeat('x', 500) FROM generate_series(1, 100)`);
    });
    const afterWrites = await currentLsn(db.url);
    expect(afterWrites - start).toBeGreaterThan(1_000_000n);
    await waitFor(async () => (await confirmedLsn(db.url)) >= afterWrites, { timeoutMs: 20_000, message: 'idle slot confirmed past the foreign writes' });
    expect(r.streamer.stats().changes).toBe(0);
  });
});
