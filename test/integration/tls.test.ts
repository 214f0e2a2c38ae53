import { chmodSync, chownSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStreamerConfig, type SslMode } from '#core/config.ts';
import { ConnectionProvider } from '#shared/connection.ts';
import { prepareEmbedded } from '#dev/postgres/binaries.ts';
import { createTestDatabase, startTestPostgres, withClient, type TestPostgres } from '#test/helpers/postgres.ts';
import { receiveUntil, testFifoQueue } from '#test/helpers/sqs.ts';
import { changesOf, startStreamer, streamerConfig } from '#test/helpers/streamer.ts';

const fixtures = fileURLToPath(new URL('../fixtures/tls/', import.meta.url));
const CA = path.join(fixtures, 'ca.pem');
const OTHER_CA = path.join(fixtures, 'other-ca.pem');

describe('TLS to the database', () => {
  let server: TestPostgres;
  let keyDir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;

  beforeAll(async () => {
    // PostgreSQL insists its key is private to the server's OS user, and (as root) that user
    // may not be able to enter the clone: certificate and key go where it can read them.
    const { dataRoot, runAs } = await prepareEmbedded();
    keyDir = mkdtempSync(path.join(dataRoot, 'pgrelay-tls-'));
    const cert = path.join(keyDir, 'server.pem');
    const key = path.join(keyDir, 'server.key');
    copyFileSync(path.join(fixtures, 'server.pem'), cert);
    copyFileSync(path.join(fixtures, 'server.key'), key);
    chmodSync(key, 0o600);
    if (runAs) for (const file of [keyDir, cert, key]) chownSync(file, runAs.uid, runAs.gid);
    server = await startTestPostgres({ flags: ['ssl=on', `ssl_cert_file=${cert}`, `ssl_key_file=${key}`] });
    db = await createTestDatabase(server.url, 'tls');
  });

  afterAll(async () => {
    await db?.drop();
    await server?.stop();
    rmSync(keyDir, { recursive: true, force: true });
  });

  /** Connect through ConnectionProvider (the streamer's path) and report whether TLS is in use. */
  async function connect(host: string, sslMode: SslMode, caBundle?: string): Promise<boolean> {
    const url = new URL(db.url);
    url.hostname = host;
    const config = parseStreamerConfig({ database: { url: url.toString(), sslMode, ...(caBundle ? { caBundle } : {}) }, tables: ['t'], queueUrl: 'http://localhost/q.fifo' });
    const client = new pg.Client(await new ConnectionProvider(config.database).clientConfig());
    client.on('error', () => {});
    await client.connect();
    try {
      const { rows } = await client.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      return rows[0]!.ssl;
    } finally {
      await client.end();
    }
  }

  it('verify-full checks the chain and the host name', async () => {
    expect(await connect('localhost', 'verify-full', CA)).toBe(true);
    await expect(connect('127.0.0.1', 'verify-full', CA)).rejects.toThrow(/does not match|altnames/i);
    await expect(connect('localhost', 'verify-full', OTHER_CA)).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
  });

  it('verify-ca checks the chain only; require encrypts without checking; disable does not encrypt', async () => {
    expect(await connect('127.0.0.1', 'verify-ca', CA)).toBe(true);
    await expect(connect('127.0.0.1', 'verify-ca', OTHER_CA)).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    expect(await connect('127.0.0.1', 'require')).toBe(true);
    expect(await connect('127.0.0.1', 'disable')).toBe(false);
  });

  it('streams over a verify-full replication connection', async () => {
    const queue = await testFifoQueue('tls');
    await withClient(db.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY)'));
    const url = new URL(db.url);
    url.hostname = 'localhost';
    const base = streamerConfig({ dbUrl: url.toString(), queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['t'], partitions: 1 });
    const r = startStreamer({ ...base, database: { url: url.toString(), sslMode: 'verify-full', caBundle: CA } });
    try {
      await r.ready;
      await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (7)'));
      const changes = changesOf(await receiveUntil(queue.client, queue.queueUrl, (ms) => changesOf(ms).length >= 1));
      expect(changes[0]!.key).toEqual({ id: 7 });
      const walsenderSsl = await withClient(db.url, (c) =>
        c.query<{ ssl: boolean }>(`SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_replication r ON r.pid = s.pid`),
      );
      expect(walsenderSsl.rows.map((row) => row.ssl)).toEqual([true]);
    } finally {
      await r.stop();
      queue.client.destroy();
    }
  });
});
