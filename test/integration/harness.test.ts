/**
 * Proves the test helpers: the shared PostgreSQL decodes with pgoutput, test databases are
 * isolated and dropped with their slots, fauxqs keeps FIFO order per group, and the proxy cuts
 * and restores the network.
 */
import { existsSync } from 'node:fs';
import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import pg from 'pg';
import { describe, expect, inject, it, onTestFinished } from 'vitest';
import { startProxy } from '#test/helpers/net-proxy.ts';
import { createTestDatabase, startTestPostgres, testDatabase, withClient } from '#test/helpers/postgres.ts';
import {
  createFifoQueue,
  dlqUrlOf,
  drainQueue,
  queueArn,
  receiveUntil,
  sqsClient,
  type ReceivedMessage,
} from '#test/helpers/sqs.ts';
import { waitFor, waitForValue } from '#test/helpers/wait.ts';

function clientFor(endpoint: string, config: Parameters<typeof sqsClient>[1] = {}): SQSClient {
  const client = sqsClient(endpoint, config);
  onTestFinished(() => client.destroy());
  return client;
}

async function slotsOf(database: string): Promise<Array<{ slot_name: string; active: boolean }>> {
  return withClient(inject('pgUrl'), async (client) => {
    const { rows } = await client.query<{ slot_name: string; active: boolean }>(
      'SELECT slot_name, active FROM pg_replication_slots WHERE database = $1',
      [database],
    );
    return rows;
  });
}

async function databaseExists(name: string): Promise<boolean> {
  return withClient(inject('pgUrl'), async (client) => {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return rowCount === 1;
  });
}

describe('test PostgreSQL', () => {
  it('has wal_level=logical and decodes a committed insert through a pgoutput slot', async () => {
    const db = await testDatabase('harness pgoutput');
    onTestFinished(() => db.drop());

    const changes = await withClient(db.url, async (client) => {
      const { rows } = await client.query<{ wal_level: string }>('SHOW wal_level');
      expect(rows[0]?.wal_level).toBe('logical');
      await client.query('CREATE TABLE item (id int PRIMARY KEY, label text)');
      await client.query('CREATE PUBLICATION harness_pub FOR TABLE item');
      // Slot names are cluster-wide: the database name makes this one unique.
      await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [db.name]);
      await client.query("INSERT INTO item VALUES (1, 'harness-label')");
      const peeked = await client.query<{ data: Buffer }>(
        `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
           'proto_version', '1', 'publication_names', 'harness_pub')`,
        [db.name],
      );
      return peeked.rows.map((row) => row.data);
    });

    // Begin, Relation, Insert, Commit — identified by pgoutput's message type bytes.
    expect(changes.map((data) => String.fromCharCode(data[0] ?? 0))).toEqual(['B', 'R', 'I', 'C']);
    expect(changes[2]?.includes('harness-label')).toBe(true);
  });

  it('createTestDatabase isolates databases, and drop() removes one with its slots, active ones too', async () => {
    const pgUrl = inject('pgUrl');
    const first = await createTestDatabase(pgUrl, 'Harness Isolation: first!');
    const second = await createTestDatabase(pgUrl, 'Harness Isolation: first!');
    onTestFinished(() => first.drop());
    onTestFinished(() => second.drop());

    expect(first.name).toMatch(/^harness_isolation_first_[0-9a-f]{10}$/);
    expect(first.name).not.toBe(second.name);
    expect(first.name.length).toBeLessThanOrEqual(50);
    expect((await createTestDatabase(pgUrl, 'x'.repeat(200)).then(async (db) => {
      await db.drop();
      return db.name;
    })).length).toBeLessThanOrEqual(50);

    await withClient(first.url, async (client) => {
      await client.query('CREATE TABLE only_in_first (id int PRIMARY KEY)');
      await client.query('CREATE PUBLICATION harness_pub FOR TABLE only_in_first');
      await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [first.name]);
    });
    const seenFromSecond = await withClient(second.url, async (client) => {
      const { rows } = await client.query<{ found: string | null }>("SELECT to_regclass('only_in_first')::text AS found");
      return rows[0]?.found;
    });
    expect(seenFromSecond).toBeNull();

    // Hold the slot with a streaming walsender, as the streamer would.
    const replication = new pg.Client({ connectionString: `${first.url}?replication=database` });
    replication.on('error', () => undefined);
    await replication.connect();
    const streaming = replication
      .query(`START_REPLICATION SLOT ${first.name} LOGICAL 0/0 (proto_version '1', publication_names 'harness_pub')`)
      .then(
        () => 'ended',
        (err: unknown) => (err as { code?: string }).code ?? 'error',
      );
    await waitFor(async () => (await slotsOf(first.name)).some((slot) => slot.active), {
      message: 'the walsender to hold the slot',
    });

    await first.drop();

    expect(await databaseExists(first.name)).toBe(false);
    expect(await slotsOf(first.name)).toEqual([]);
    expect(await streaming).toBe('57P01'); // admin_shutdown: pg_terminate_backend
    await replication.end().catch(() => undefined);
    expect(await databaseExists(second.name)).toBe(true);
    await first.drop(); // a second call is harmless
  });

  it('startTestPostgres applies extra settings and stop() removes the server and its files', async () => {
    const server = await startTestPostgres({ flags: ['wal_level=replica', '-c', 'max_connections=20'] });
    onTestFinished(() => server.stop());

    const settings = await withClient(server.url, async (client) => {
      const { rows } = await client.query<{ name: string; setting: string }>(
        "SELECT name, setting FROM pg_settings WHERE name IN ('wal_level', 'max_connections', 'fsync') ORDER BY name",
      );
      return Object.fromEntries(rows.map((row) => [row.name, row.setting]));
    });
    expect(settings).toEqual({ fsync: 'off', max_connections: '20', wal_level: 'replica' });

    await server.stop();
    await expect(withClient(server.url, (client) => client.query('SELECT 1'))).rejects.toThrow();
    if (server.dataDir !== undefined) expect(existsSync(server.dataDir)).toBe(false);
  });
});

describe('test SQS (fauxqs)', () => {
  it('keeps order within each message group of a FIFO queue and drops duplicate dedup ids', async () => {
    const endpoint = inject('sqsEndpoint');
    const queueUrl = await createFifoQueue(endpoint, 'harness order');
    expect(queueUrl).toMatch(/\/harness-order-[0-9a-f]{8}\.fifo$/);
    const client = clientFor(endpoint);

    const sent = [
      ['a', 'a1'],
      ['b', 'b1'],
      ['a', 'a2'],
      ['a', 'a3'],
      ['b', 'b2'],
      ['a', 'a4'],
      ['a', 'a1'], // same deduplication id as the first: SQS drops it
    ] as const;
    for (const [group, body] of sent) {
      await client.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: body,
          MessageGroupId: group,
          MessageDeduplicationId: `dedup-${body}`,
        }),
      );
    }

    // fauxqs returns at most one message per group per receive: this takes several calls.
    const received = await receiveUntil(client, queueUrl, (all) => all.length >= 6, 10_000);
    const bodiesOf = (group: string, messages: ReceivedMessage[]) =>
      messages.filter((m) => m.groupId === group).map((m) => m.body);
    expect(bodiesOf('a', received)).toEqual(['a1', 'a2', 'a3', 'a4']);
    expect(bodiesOf('b', received)).toEqual(['b1', 'b2']);
    for (const message of received) expect(message.deduplicationId).toBe(`dedup-${message.body}`);
    const sequenceOf = (body: string) => BigInt(received.find((m) => m.body === body)?.sequenceNumber ?? '-1');
    expect(sequenceOf('a1') < sequenceOf('a2') && sequenceOf('a2') < sequenceOf('a4')).toBe(true);

    expect(await drainQueue(client, queueUrl, { waitTimeSeconds: 0 })).toEqual([]);
  });

  it('creates a DLQ with a redrive policy when asked', async () => {
    const endpoint = inject('sqsEndpoint');
    const queueUrl = await createFifoQueue(endpoint, 'harness dlq', {
      dlq: true,
      maxReceiveCount: 1,
      contentBasedDeduplication: true,
    });
    const client = clientFor(endpoint);
    const { Attributes = {} } = await client.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['All'] }),
    );
    expect(Attributes.ContentBasedDeduplication).toBe('true');
    expect(JSON.parse(Attributes.RedrivePolicy ?? '{}')).toEqual({
      deadLetterTargetArn: await queueArn(client, dlqUrlOf(queueUrl)),
      maxReceiveCount: 1,
    });

    await client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'poison', MessageGroupId: 'g' }));
    // Received once and never deleted, the message moves to the DLQ on the next receive.
    await waitForValue(async () => {
      const { Messages } = await client.send(
        new ReceiveMessageCommand({ QueueUrl: queueUrl, VisibilityTimeout: 0, WaitTimeSeconds: 0 }),
      );
      return Messages?.[0];
    });
    await client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 0 }));
    const dead = await receiveUntil(client, dlqUrlOf(queueUrl), (all) => all.length === 1, 5_000);
    expect(dead.map((m) => m.body)).toEqual(['poison']);
  });
});

describe('TCP proxy', () => {
  it('forwards to SQS, fails requests while blocked, and forwards again after unblock', async () => {
    const endpoint = inject('sqsEndpoint');
    const queueUrl = await createFifoQueue(endpoint, 'harness proxy');
    const target = new URL(endpoint);
    const proxy = await startProxy(target.hostname, Number(target.port));
    onTestFinished(() => proxy.close());
    const viaProxy = clientFor(`http://127.0.0.1:${proxy.port}`, { maxAttempts: 1 });
    const direct = clientFor(endpoint);
    const send = (body: string) =>
      viaProxy.send(
        new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body, MessageGroupId: 'g', MessageDeduplicationId: body }),
      );

    await send('before');
    expect(proxy.acceptedConnections).toBeGreaterThanOrEqual(1);

    proxy.block();
    await expect(send('while-blocked')).rejects.toThrow();

    proxy.unblock();
    await send('after');

    const received = await receiveUntil(direct, queueUrl, (all) => all.length >= 2, 10_000);
    expect(received.map((m) => m.body)).toEqual(['before', 'after']);
    expect(await drainQueue(direct, queueUrl, { waitTimeSeconds: 0 })).toEqual([]);
  });

  it('cuts a PostgreSQL session (reset), holds new ones (silent), and forwards after unblock', async () => {
    const server = new URL(inject('pgUrl'));
    const proxy = await startProxy(server.hostname, Number(server.port));
    onTestFinished(() => proxy.close());
    const viaProxy = new URL(server);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    const url = viaProxy.toString();

    const session = new pg.Client({ connectionString: url });
    const sessionErrors: Error[] = [];
    session.on('error', (err) => sessionErrors.push(err));
    await session.connect();
    onTestFinished(() => session.end().catch(() => undefined));
    expect((await session.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);

    proxy.block();
    await waitFor(() => sessionErrors.length > 0, { message: 'the proxied session to see the cut' });
    await expect(withClient(url, (client) => client.query('SELECT 1'))).rejects.toThrow();

    proxy.block('silent');
    const held = new pg.Client({ connectionString: url, connectionTimeoutMillis: 300 });
    held.on('error', () => undefined);
    await expect(held.connect()).rejects.toThrow(/timeout/i);
    await waitFor(() => proxy.openConnections === 0, { message: 'the timed-out connection to close' });

    proxy.unblock();
    const answer = await withClient(url, async (client) => (await client.query<{ one: number }>('SELECT 1 AS one')).rows);
    expect(answer).toEqual([{ one: 1 }]);
  });
});

describe('waitFor', () => {
  it('fails with the message and the last error when the condition never holds', async () => {
    let checks = 0;
    await expect(
      waitFor(
        () => {
          checks += 1;
          throw new Error('still broken');
        },
        { timeoutMs: 100, intervalMs: 10, message: 'the impossible' },
      ),
    ).rejects.toThrow(/Timed out after 100 ms .*waiting for the impossible; last error: still broken/);
    expect(checks).toBeGreaterThan(1);
  });
});
