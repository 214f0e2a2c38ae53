import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionProvider, secretsManagerSource } from '#shared/connection.ts';
import { startFakeSecretsManager } from '#test/helpers/fake-secrets-manager.ts';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { receiveUntil, testFifoQueue } from '#test/helpers/sqs.ts';
import { changesOf, slotNameFor, startStreamer } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';
import { parseStreamerConfig } from '#core/config.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ARN = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:pgrelay-db-AbCdEf';
const FIRST = 'rotation-first-9c1e';
const SECOND = 'rotation-second-4b7d';

describe('credentials from Secrets Manager', () => {
  it('reads the secret, and after a rotation re-reads it when PostgreSQL rejects the old password', async () => {
    const db = await testDatabase('rotation');
    const queue = await testFifoQueue('rotation');
    const sm = await startFakeSecretsManager();
    const role = `app_${db.name}`.slice(0, 63);
    const slot = slotNameFor(db.url);
    cleanups.push(async () => {
      await sm.close();
      queue.client.destroy();
      await db.drop();
      await withClient(new URL('/postgres', db.url).toString(), (c) => c.query(`DROP ROLE IF EXISTS ${role}`));
    });
    // The publication and slot exist already (made by an administrator); the app role only streams.
    await withClient(db.url, async (c) => {
      await c.query(`CREATE ROLE ${role} LOGIN REPLICATION PASSWORD '${FIRST}'`);
      await c.query('CREATE TABLE t (id int PRIMARY KEY)');
      await c.query('CREATE PUBLICATION pgrelay_default FOR TABLE t');
      await c.query(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`);
    });
    sm.put(ARN, { username: role, password: FIRST, engine: 'postgres' });
    const server = new URL(db.url);
    const input = {
      database: { host: server.hostname, port: Number(server.port), name: db.name, secretArn: ARN, sslMode: 'disable' as const },
      tables: ['t'],
      slotName: slot,
      queueUrl: queue.queueUrl,
      sqsEndpoint: queue.endpoint,
      partitions: 1,
      statusIntervalMs: 200,
      reconnect: { initialDelayMs: 50, maxDelayMs: 300 },
    };
    const secrets = secretsManagerSource('us-east-1', sm.endpoint, { accessKeyId: 'test', secretAccessKey: 'test' });
    const r = startStreamer(input, { secrets });
    cleanups.push(() => r.stop());
    await r.ready;
    await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (1)'));
    await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).some((c) => c.key?.id === 1));
    expect(sm.reads).toEqual([ARN]);

    // Rotate: the database and the secret get the new password; the old session is cut.
    await withClient(db.url, async (c) => {
      await c.query(`ALTER ROLE ${role} PASSWORD '${SECOND}'`);
      sm.put(ARN, { username: role, password: SECOND, engine: 'postgres' });
      await c.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active`, [slot]);
    });
    await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (2)'));
    await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).some((c) => c.key?.id === 2), 20_000);
    await waitFor(() => sm.reads.length >= 2);
    expect(sm.rejected).toEqual([]);
    // Secrets never reach the logs.
    const logText = JSON.stringify(r.logs);
    expect(logText).not.toContain(FIRST);
    expect(logText).not.toContain(SECOND);
    expect(logText).toContain('28P01'); // the rejected login was logged by its code
  });

  it('says which secret is malformed', async () => {
    const sm = await startFakeSecretsManager();
    cleanups.push(() => sm.close());
    sm.put(ARN, { user: 'x' });
    const config = parseStreamerConfig({ database: { host: 'db', name: 'app', secretArn: ARN }, tables: ['t'], queueUrl: 'http://localhost/q.fifo' });
    const provider = new ConnectionProvider(config.database, secretsManagerSource('us-east-1', sm.endpoint, { accessKeyId: 'a', secretAccessKey: 'b' }));
    await expect(provider.clientConfig()).rejects.toThrow(`secret ${ARN} lacks username or password`);
  });
});
