/**
 * What streamer integration tests share: a database and queue per test, cleaned up after it
 * (register `afterEach(runCleanups)`), a streamer stopped after it, and assertions on what
 * arrived.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { expect } from 'vitest';
import { parseLsn, positionKey } from '#core/position.ts';
import { readSlot } from '#streamer/source.ts';
import { createTestDatabase, testDatabase, withClient } from './postgres.ts';
import { testFifoQueue } from './sqs.ts';
import { slotNameFor, startStreamer, streamerConfig, type ReceivedChange, type RunningStreamer } from './streamer.ts';

export type Db = Awaited<ReturnType<typeof testDatabase>>;
export type Queue = { endpoint: string; queueUrl: string; client: SQSClient };

const cleanups: (() => Promise<void>)[] = [];

/** Register a cleanup for the current test; they run newest first. */
export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

/** Use as `afterEach(runCleanups)`. A step that hangs fails with its own source, not a bare hook timeout. */
export async function runCleanups(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) {
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`cleanup step did not finish in 60 s: ${c.toString().slice(0, 300)}`)), 60_000);
    });
    try {
      await Promise.race([c(), stuck]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A fresh database (with `ddl` applied; on `serverUrl`, else the suite's server) and FIFO queue, dropped after the test. */
export async function setupDbAndQueue(hint: string, ddl: string, serverUrl?: string): Promise<{ db: Db; queue: Queue }> {
  const db = serverUrl === undefined ? await testDatabase(hint) : await createTestDatabase(serverUrl, hint);
  const queue = await testFifoQueue(hint);
  onCleanup(async () => {
    queue.client.destroy();
    await db.drop();
  });
  await withClient(db.url, (c) => c.query(ddl));
  return { db, queue };
}

/** An in-process streamer, stopped after the test. */
export function runStreamer(cfg: Parameters<typeof streamerConfig>[0], opts?: Parameters<typeof startStreamer>[1]): RunningStreamer {
  const r = startStreamer(streamerConfig(cfg), opts);
  onCleanup(() => r.stop());
  return r;
}

export const currentLsn = (url: string): Promise<bigint> =>
  withClient(url, async (c) => parseLsn((await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l));

export const confirmedLsn = (url: string): Promise<bigint> =>
  withClient(url, async (c) => (await readSlot(c, slotNameFor(url)))?.confirmedFlushLsn ?? 0n);

export const posKey = (c: ReceivedChange): string => positionKey(parseLsn(c.position.commitLsn), c.position.seq);

/** First occurrence of each position, in receive order (duplicates after a crash dropped). */
export function firstOccurrences(changes: ReceivedChange[]): ReceivedChange[] {
  const seen = new Set<string>();
  return changes.filter((c) => (seen.has(posKey(c)) ? false : (seen.add(posKey(c)), true)));
}

/** Per node, positions must increase in the order received. */
export function expectOrderPerNode(changes: ReceivedChange[]): void {
  const last = new Map<string, string>();
  for (const c of changes) {
    const node = `${c.table}:${JSON.stringify(c.key)}`;
    const prev = last.get(node);
    if (prev !== undefined) expect(posKey(c) > prev, `${node}: ${posKey(c)} after ${prev}`).toBe(true);
    last.set(node, posKey(c));
  }
}
