/**
 * The replication connection. The only importer of pg-logical-replication: it gives us the
 * walsender connection and the CopyBoth framing; we hand it a plugin whose `parse` passes
 * the raw pgoutput bytes to our own decoder, switch its acknowledgement off completely
 * (`auto: false` alone still acknowledges on a timer; `timeoutSeconds: 0` stops that), and
 * write standby status updates ourselves with exactly the LSN the checkpoint calls safe.
 */
import { LogicalReplicationService } from 'pg-logical-replication';
import type { Client, ClientConfig } from 'pg';
import { formatLsn, parseLsn } from '#core/position.ts';
import { quoteIdent } from '#core/identifiers.ts';

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

interface InternalConnection {
  stream: { pause(): void; resume(): void; destroy(): void };
  sendCopyFromChunk(buf: Buffer): void;
}

/** Microseconds between the Unix and the PostgreSQL epoch. */
const PG_EPOCH_OFFSET_MS = 946_684_800_000;

export class ReplicationStream {
  private readonly service: LogicalReplicationService;
  private handlers: ReplicationHandlers | undefined;
  private paused = false;
  /** Bytes of pgoutput payload received (for metrics). */
  receivedBytes = 0;

  constructor(
    private readonly clientConfig: ClientConfig,
    private readonly opts: ReplicationOptions,
  ) {
    this.service = new LogicalReplicationService(clientConfig, {
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: false },
    });
    // Errors also reject `run()`; this listener only keeps EventEmitter2 from throwing.
    this.service.on('error', () => {});
    this.service.on('heartbeat', (lsn: string, _timestamp: number, shouldRespond: boolean) => {
      this.handlers?.onKeepalive(parseLsn(lsn), shouldRespond);
    });
  }

  /**
   * Stream from `startLsn` (0 = the slot's confirmed position) until `stop()` or an error.
   * Resolves when stopped, rejects with the server's or the socket's error.
   */
  async run(startLsn: bigint, handlers: ReplicationHandlers): Promise<void> {
    this.handlers = handlers;
    const plugin = {
      name: 'pgoutput',
      parse: (payload: Buffer) => {
        this.receivedBytes += payload.length;
        handlers.onData(payload);
        return undefined;
      },
      start: (client: Client, slotName: string, lsn: string) => {
        const options = [`proto_version '1'`, `publication_names '${this.opts.publicationName.replaceAll("'", "''")}'`];
        if (this.opts.messages) options.push(`messages 'true'`);
        return client.query(`START_REPLICATION SLOT ${quoteIdent(slotName)} LOGICAL ${lsn} (${options.join(', ')})`);
      },
    };
    // The library's own types want one of its plugin classes; ours has the same shape.
    await this.service.subscribe(plugin as never, this.opts.slotName, formatLsn(startLsn));
  }

  private connection(): InternalConnection | undefined {
    return (this.service as unknown as { _connection: InternalConnection | null })._connection ?? undefined;
  }

  /**
   * Standby status update: written, flushed and applied all set to `lsn`, which the
   * server takes as confirmed_flush_lsn. (The library's acknowledge() adds one.)
   */
  sendStatus(lsn: bigint, replyRequested = false): boolean {
    const conn = this.connection();
    if (!conn || this.service.isStop()) return false;
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
    this.connection()?.stream.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.connection()?.stream.resume();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  async stop(): Promise<void> {
    this.handlers = undefined;
    await this.service.stop().catch(() => {});
  }

  /** Drop the connection at once (tests of connection loss use the server side instead). */
  destroy(): void {
    this.connection()?.stream.destroy();
  }
}
