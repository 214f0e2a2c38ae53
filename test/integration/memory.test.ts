import { describe, expect, it } from 'vitest';
import { STREAMER_NODE_OPTIONS } from '#streamer/node-options.ts';
import { startProxy } from '#test/helpers/net-proxy.ts';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { receiveUntil, testFifoQueue } from '#test/helpers/sqs.ts';
import { changesOf, spawnStreamer, streamerConfig } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';

const MIB = 1024 * 1024;

describe('memory under the production heap limit', () => {
  it('holds the default in-flight limit of non-Latin text while SQS is down, and delivers it all after', async () => {
    const db = await testDatabase('memory');
    const queue = await testFifoQueue('memory');
    const proxy = await startProxy('127.0.0.1', Number(new URL(queue.endpoint).port));
    const config = {
      ...streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: `http://127.0.0.1:${proxy.port}`, tables: ['notes'] }),
      metricsIntervalMs: 1000,
    };
    delete (config as { partitions?: number }).partitions; // production defaults: 16 partitions, 16 MiB in flight
    const run = spawnStreamer(config, { nodeFlags: STREAMER_NODE_OPTIONS });
    try {
      await withClient(db.url, (c) => c.query('CREATE TABLE notes (id int PRIMARY KEY, body text)'));
      await waitFor(() => run.output().includes('"msg":"streaming"'), { timeoutMs: 30_000 });
      proxy.block();
      // 20,000 rows of ~2,000 CJK characters: 120 MB of UTF-8, ~4× the in-flight limit, held
      // by V8 as two-byte strings.
      const rows = 20_000;
      await withClient(db.url, async (c) => {
        for (let i = 0; i < 20; i++) {
          await c.query(`INSERT INTO notes SELECT g, repeat('東京大阪名古屋札幌', 250) || g FROM generate_series($1::int * 1000 + 1, $1::int * 1000 + 1000) g`, [i]);
        }
      });
      const inFlight = () =>
        run
          .output()
          .split('\n')
          .filter((l) => l.includes('"InFlightBytes"'))
          .map((l) => (JSON.parse(l) as { InFlightBytes: number }).InFlightBytes);
      await waitFor(() => inFlight().some((b) => b >= 8 * MIB), { timeoutMs: 60_000, message: 'in-flight bytes reached the pause threshold' });
      proxy.unblock();
      const changes = changesOf(await receiveUntil(queue.client, queue.queueUrl, (ms) => new Set(changesOf(ms).map((c) => c.key?.id)).size >= rows, 120_000));
      expect(new Set(changes.map((c) => c.key?.id)).size).toBe(rows);
      expect(run.child.exitCode).toBeNull(); // still running: no out-of-memory crash
      expect(Math.max(...inFlight())).toBeLessThan(16 * MIB * 1.5);
      expect(run.output()).not.toMatch(/heap out of memory|FATAL ERROR/);
    } finally {
      run.child.kill('SIGTERM');
      await run.exited;
      await proxy.close();
      queue.client.destroy();
      await db.drop();
    }
  }, 240_000);
});
