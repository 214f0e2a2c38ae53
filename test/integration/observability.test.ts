import { describe, expect, it } from 'vitest';
import { emfProblems } from '#test/helpers/emf.ts';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { receiveUntil, testFifoQueue } from '#test/helpers/sqs.ts';
import { changesOf, spawnStreamer, startStreamer, streamerConfig } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';

describe('observability', () => {
  it('emits valid embedded-metric documents with counts, and logs events of note, not rows', async () => {
    const db = await testDatabase('metrics');
    const queue = await testFifoQueue('metrics');
    await withClient(db.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY)'));
    const r = startStreamer({ ...streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['t'], partitions: 2 }), metricsIntervalMs: 1000 });
    try {
      await r.ready;
      await withClient(db.url, (c) => c.query('INSERT INTO t SELECT generate_series(1, 500)'));
      await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).length >= 500);
      const sum = (name: string) => r.metrics.reduce((n, m) => n + Number(m[name] ?? 0), 0);
      await waitFor(() => sum('ChangesStreamed') >= 500, { timeoutMs: 10_000, message: 'metrics counted the changes' });
      for (const doc of r.metrics) expect(emfProblems(doc)).toEqual([]);
      expect(sum('ChangesStreamed')).toBe(500);
      expect(sum('MessagesSent')).toBeGreaterThan(0);
      expect(sum('BytesSent')).toBeGreaterThan(500 * 100);
      const last = r.metrics[r.metrics.length - 1]!;
      expect(last).toMatchObject({ Source: 'default', Slot: expect.any(String), acknowledgedLsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/) });
      // 500 changes, a handful of lines: no per-row logging.
      expect(r.logs.length).toBeLessThan(10);
      for (const l of r.logs) expect(l).toMatchObject({ time: expect.any(String), level: expect.any(String), msg: expect.any(String) });
    } finally {
      await r.stop();
      queue.client.destroy();
      await db.drop();
    }
  });

  it('the process reports a bad configuration as one JSON line listing every problem, exit code 2', async () => {
    const child = spawnStreamer({ database: { url: 'mysql://nope' }, tables: ['a b'], queueUrl: 'https://example.com/q', partitions: -1 } as never);
    expect(await child.exited).toBe(2);
    const line = child.output().split('\n').find((l) => l.includes('invalid configuration'));
    expect(line).toBeDefined();
    const parsed = JSON.parse(line!) as { level: string; problems: string[] };
    expect(parsed.level).toBe('error');
    expect(parsed.problems.join('\n')).toMatch(/queueUrl[\s\S]*partitions|partitions[\s\S]*queueUrl/);
    expect(parsed.problems.length).toBeGreaterThanOrEqual(4);
    expect(child.output()).not.toMatch(/\n\s+at /); // no stack trace
  });
});
