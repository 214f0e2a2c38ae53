import { describe, expect, it } from 'vitest';
import { parseStreamerConfig } from '#core/config.ts';
import { ConnectionProvider } from '#shared/connection.ts';
import { ReplicationStream } from '#streamer/replication.ts';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { slotNameFor } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';

async function prepare(hint: string) {
  const db = await testDatabase(hint);
  const slot = slotNameFor(db.url);
  await withClient(db.url, async (c) => {
    await c.query('CREATE TABLE t (id int PRIMARY KEY)');
    await c.query('CREATE PUBLICATION p FOR TABLE t');
    await c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  });
  const config = parseStreamerConfig({ database: { url: db.url }, tables: ['t'], queueUrl: 'http://localhost/q.fifo' });
  const clientConfig = await new ConnectionProvider(config.database).clientConfig();
  const slotActive = async () => (await withClient(db.url, (c) => c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot]))).rowCount === 1;
  return { db, slot, clientConfig, slotActive };
}

describe('replication stream', () => {
  // Regression: when START_REPLICATION was refused (slot held by another process), the reply
  // arrived as a small read, the 1 ms read-coalescing pause stopped the socket, and closing
  // the client inside that millisecond waited forever for an 'end' the paused socket never
  // emitted: the streamer waiting for a deploy's old task hung on shutdown.
  it('stops promptly after START_REPLICATION was refused because the slot is in use', async () => {
    const { db, slot, clientConfig, slotActive } = await prepare('refused');
    try {
      const holder = new ReplicationStream(clientConfig, { slotName: slot, publicationName: 'p', messages: true });
      const holding = holder.run(0n, { onData: () => {}, onKeepalive: () => {} });
      await waitFor(slotActive);
      for (let i = 0; i < 10; i++) {
        const waiting = new ReplicationStream(clientConfig, { slotName: slot, publicationName: 'p', messages: true });
        await expect(waiting.run(0n, { onData: () => {}, onKeepalive: () => {} })).rejects.toMatchObject({ code: '55006' });
        const t0 = performance.now();
        await waiting.stop();
        expect(performance.now() - t0).toBeLessThan(4_000);
      }
      await holder.stop();
      await holding;
    } finally {
      await db.drop();
    }
  });

  // Regression (seen under load in CI): stop() while the client was still connecting could not
  // reach the socket, and run() never settled.
  it('stop() during connect settles both stop() and run(), every time', async () => {
    const { db, slot, clientConfig } = await prepare('connecting');
    try {
      for (let i = 0; i < 20; i++) {
        const stream = new ReplicationStream(clientConfig, { slotName: slot, publicationName: 'p', messages: true });
        const running = stream.run(0n, { onData: () => {}, onKeepalive: () => {} });
        running.catch(() => {});
        // Let the connection get somewhere different each round: none, some, or all of the handshake.
        for (let k = 0; k < i % 5; k++) await new Promise((r) => setImmediate(r));
        const t0 = performance.now();
        await stream.stop();
        await running.catch(() => {});
        expect(performance.now() - t0).toBeLessThan(6_000);
      }
    } finally {
      await db.drop();
    }
  }, 120_000);

  it('stops promptly while paused', async () => {
    const db = await testDatabase('paused');
    const slot = slotNameFor(db.url);
    try {
      await withClient(db.url, async (c) => {
        await c.query('CREATE TABLE t (id int PRIMARY KEY)');
        await c.query('CREATE PUBLICATION p FOR TABLE t');
        await c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      });
      const config = parseStreamerConfig({ database: { url: db.url }, tables: ['t'], queueUrl: 'http://localhost/q.fifo' });
      const stream = new ReplicationStream(await new ConnectionProvider(config.database).clientConfig(), { slotName: slot, publicationName: 'p', messages: true });
      let payloads = 0;
      const running = stream.run(0n, { onData: () => payloads++, onKeepalive: () => {} });
      await waitFor(async () => (await withClient(db.url, (c) => c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot]))).rowCount === 1);
      await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (1)'));
      await waitFor(() => payloads >= 3); // Begin, Relation, Insert, Commit
      stream.pause();
      const t0 = performance.now();
      await stream.stop();
      await running;
      expect(performance.now() - t0).toBeLessThan(4_000); // well before the 5 s destroy fallback
      await waitFor(async () => (await withClient(db.url, (c) => c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot]))).rowCount === 0);
    } finally {
      await db.drop();
    }
  });
  // Regression (seen when test files ran side by side): the status timer wrote a standby status
  // update while the connection was still authenticating, and the server ended it with
  // "expected SASL response, got message type 100" — a reconnect every time auth was slow.
  it('a status update asked for before the stream has started is not written, in every phase of the handshake', async () => {
    const { db, slot, clientConfig, slotActive } = await prepare('early_status');
    try {
      for (let i = 0; i < 10; i++) {
        const stream = new ReplicationStream(clientConfig, { slotName: slot, publicationName: 'p', messages: true });
        let keepalives = 0;
        const running = stream.run(0n, { onData: () => {}, onKeepalive: () => keepalives++ });
        running.catch(() => {});
        // Ask for one before connecting and at every turn of the event loop until the slot is held.
        const sent: boolean[] = [stream.sendStatus(0n)];
        let asking = true;
        const ask = (): void => {
          if (!asking) return;
          sent.push(stream.sendStatus(0n));
          setImmediate(ask);
        };
        ask();
        await waitFor(slotActive, { message: `round ${i}: the slot held` });
        asking = false;
        // Streaming now: a status update asking for a reply is written and answered with a keepalive.
        await waitFor(() => stream.sendStatus(0n, true) && keepalives > 0, { message: `round ${i}: a keepalive answering the status update` });
        await stream.stop();
        await expect(running).resolves.toBeUndefined();
        expect(sent[0], `round ${i}: the first, before connecting`).toBe(false);
      }
    } finally {
      await db.drop();
    }
  }, 120_000);
});
