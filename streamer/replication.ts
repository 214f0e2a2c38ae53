/**
 * The replication connection: a `pg` client in walsender mode (`replication: 'database'`),
 * START_REPLICATION with pgoutput, and the CopyBoth stream read directly from pg's
 * connection. We decode the pgoutput bytes ourselves (pgoutput.ts, decoder.ts), send standby
 * status updates ourselves with exactly the LSN the checkpoint calls safe, and never
 * acknowledge on a timer.
 *
 * Reads coalesce: after a socket read under COALESCE_BELOW bytes the socket pauses for
 * COALESCE_PAUSE_MS, so the walsender fills its buffer instead of waking us for every change
 * (docs/benchmarks.md: the walsender pays ≈10 µs a change when the reader drains each one at once,
 * ≈4.5 µs when data piles up). This costs at most a millisecond of latency.
 */
import pg from 'pg';
import { DecodeError } from '#core/errors.ts';
import { quoteIdent } from '#core/identifiers.ts';
import { formatLsn } from '#core/position.ts';

export interface ReplicationHandlers {
  /** One pgoutput message (the XLogData payload). Runs synchronously, in stream order. */
  onData(payload: Buffer): void;
  /** A primary keepalive: the server has sent everything before `walEnd`. */
  onKeepalive(walEnd: bigint, replyRequested: boolean): void;
}

export interface ReplicationOptions {
  slotName: string;
  publicationName: string;
  /** Ask for logical decoding messages (pg_logical_emit_message); PostgreSQL 14+. */
  messages: boolean;
}

/** pg's protocol connection: not in its typings, but stable and what CopyBoth needs. */
interface PgConnection {
  stream: { pause(): void; resume(): void; destroy(): void; on(event: 'data', listener: (chunk: Buffer) => void): void };
  on(event: 'copyData', listener: (msg: { chunk: Buffer }) => void): void;
  /** CopyBothResponse: the server streams from here on, and reads our CopyData. */
  on(event: 'replicationStart', listener: () => void): void;
  sendCopyFromChunk(buf: Buffer): void;
}

const XLOG_DATA = 0x77; // 'w'
const KEEPALIVE = 0x6b; // 'k'
const XLOG_HEADER = 25; // 'w' + walStart + walEnd + sendTime
const COALESCE_BELOW = 32 * 1024;
const COALESCE_PAUSE_MS = 1;
const STOP_TIMEOUT_MS = 5_000;
/** Milliseconds between the Unix and the PostgreSQL epoch. */
const PG_EPOCH_OFFSET_MS = 946_684_800_000;

export class ReplicationStream {
  private client: pg.Client | undefined;
  private connection: PgConnection | undefined;
  private paused = false;
  /** Set once the server answered START_REPLICATION with CopyBoth: only then may CopyData be written. */
  private copying = false;
  private coalescing = false;
  private stopping = false;
  private signalStopped!: () => void;
  /** Resolves when stop() is called. */
  private readonly stopped = new Promise<void>((resolve) => (this.signalStopped = resolve));

  constructor(
    private readonly clientConfig: pg.ClientConfig,
    private readonly opts: ReplicationOptions,
  ) {}

  /**
   * Stream from `startLsn` (0 = the slot's confirmed position) until `stop()` or an error.
   * Resolves when stopped, rejects with the server's or the socket's error.
   */
  async run(startLsn: bigint, handlers: ReplicationHandlers): Promise<void> {
    const client = new pg.Client({ ...this.clientConfig, replication: 'database' } as pg.ClientConfig);
    this.client = client;
    // pg creates its connection (and socket) with the client, so stop() can reach the socket
    // in every phase, connecting included.
    const connection = (client as unknown as { connection: PgConnection }).connection;
    this.connection = connection;
    client.on('error', () => {}); // a dead socket also rejects the query below; that is where we learn of it
    // When end() lands before the socket has connected, pg's connect() can stay pending for
    // ever (regression test in test/integration/replication.test.ts): stop() settles run().
    const connecting = client.connect();
    connecting.catch(() => {});
    try {
      await Promise.race([connecting, this.stopped]);
    } catch (err) {
      if (this.stopping) return;
      throw err;
    }
    if (this.stopping) return; // stop() is closing the client
    if (this.paused) connection.stream.pause(); // paused while we were connecting
    let failure: unknown;
    connection.on('replicationStart', () => (this.copying = true));
    connection.on('copyData', ({ chunk }) => {
      if (failure !== undefined || this.stopping) return;
      const tag = chunk[0];
      if (tag === XLOG_DATA) {
        handlers.onData(chunk.subarray(XLOG_HEADER));
      } else if (tag === KEEPALIVE) {
        handlers.onKeepalive(chunk.readBigUInt64BE(1), chunk[17] === 1);
      } else {
        failure = new DecodeError('PROTOCOL', `unexpected replication message 0x${(tag ?? 0).toString(16)}`);
        connection.stream.destroy();
      }
    });
    connection.stream.on('data', (chunk) => {
      if (chunk.length >= COALESCE_BELOW || this.stopping || this.coalescing) return;
      this.coalescing = true;
      connection.stream.pause();
      setTimeout(() => {
        this.coalescing = false;
        if (!this.paused && !this.stopping) connection.stream.resume();
      }, COALESCE_PAUSE_MS);
    });
    const options = [`proto_version '1'`, `publication_names '${this.opts.publicationName.replaceAll("'", "''")}'`];
    if (this.opts.messages) options.push(`messages 'true'`);
    try {
      await client.query(`START_REPLICATION SLOT ${quoteIdent(this.opts.slotName)} LOGICAL ${formatLsn(startLsn)} (${options.join(', ')})`);
    } catch (err) {
      if (failure !== undefined) throw failure;
      if (this.stopping) return;
      throw err;
    }
    if (failure !== undefined) throw failure;
  }

  /**
   * Standby status update: written, flushed and applied all set to `lsn`, which the server
   * takes as confirmed_flush_lsn. Not written (false) before the stream has started: CopyData
   * during authentication or START_REPLICATION is a protocol violation that ends the connection
   * (nothing is lost: the next update carries the same or a later position).
   */
  sendStatus(lsn: bigint, replyRequested = false): boolean {
    const conn = this.connection;
    if (!conn || !this.copying || this.stopping) return false;
    const buf = Buffer.alloc(34);
    buf[0] = 0x72; // 'r'
    buf.writeBigUInt64BE(lsn, 1);
    buf.writeBigUInt64BE(lsn, 9);
    buf.writeBigUInt64BE(lsn, 17);
    buf.writeBigInt64BE(BigInt(Date.now() - PG_EPOCH_OFFSET_MS) * 1000n, 25);
    buf[33] = replyRequested ? 1 : 0;
    conn.sendCopyFromChunk(buf);
    return true;
  }

  /** Stop reading from the socket (backpressure); status updates can still be written. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.connection?.stream.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (!this.coalescing) this.connection?.stream.resume();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Close the connection; a pending status update is written before the Terminate message.
   * The socket must be flowing for pg to see it end (a paused one never emits 'end'), so it
   * is resumed (anything still arriving is ignored), and destroyed if the close stalls.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.signalStopped();
    const client = this.client;
    if (!client) return;
    this.connection?.stream.resume();
    const stalled = setTimeout(() => this.connection?.stream.destroy(), STOP_TIMEOUT_MS);
    try {
      await client.end().catch(() => {});
    } finally {
      clearTimeout(stalled);
    }
  }
}
