/**
 * A replication session: one connection to the slot and the pipeline behind it (see the class).
 */
import type { TypeRegistry } from '#core/values/registry.ts';
import { formatLsn } from '#core/position.ts';
import { Batcher, type OutgoingMessage } from './batcher.ts';
import { Checkpoint, type TxMarker } from './checkpoint.ts';
import { Decoder, type ChangeSink, type TableInfo } from './decoder.ts';
import { ReplicationStream } from './replication.ts';
import type { PreparedSource } from './source.ts';
import { SqsSink } from './sqs-sink.ts';
import type { BootstrapHost, EmitChange } from './bootstrap/host.ts';
import { StreamView } from './bootstrap/stream-view.ts';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { StreamerConfig } from '#core/config.ts';
import type { PayloadStore } from '#core/payload-store.ts';
import type { ConnectionProvider } from '#shared/connection.ts';
import type { Logger } from './log.ts';

/** What a session needs from its streamer. */
export interface SessionDeps {
  config: StreamerConfig;
  log: Logger;
  sqs: SQSClient;
  /** Claim-check store for changes too large for SQS; without it such a change stops the streamer (CHANGE_TOO_LARGE). */
  payloads?: PayloadStore;
  connections: ConnectionProvider;
  /** SQS retry backoff bounds (tests shorten them). */
  sqsRetry?: { initialMs: number; maxMs: number };
}

/**
 * One replication connection's pipeline, in the order the data flows: replication stream →
 * decoder → batcher → SQS sink → checkpoint. It is the decoder's ChangeSink: transaction
 * boundaries and serialized changes arrive here in stream order and become markers the
 * checkpoint confirms once SQS accepted everything before them. The Streamer runs one at a
 * time, and starts the next from the position this one left safe.
 */
export class ReplicationSession implements ChangeSink, BootstrapHost {
  readonly checkpoint: Checkpoint;
  readonly batcher: Batcher;
  readonly sink: SqsSink;
  readonly decoder: Decoder;
  /** The bootstrap's view of this session's stream (its windows and marks). */
  readonly view: StreamView;
  /** Resolves when the session closed. */
  readonly ended: Promise<void>;
  private markEnded!: () => void;
  replication!: ReplicationStream;
  serverLsn = 0n;
  private marker: TxMarker | undefined;
  private commitLsn = 0n;
  private pausedForBackpressure = false;
  private pausedForTypes = false;
  private fatal: ((err: unknown) => void) | undefined;
  private fatalError: unknown;
  private timers: NodeJS.Timeout[] = [];
  private readonly resumeBelow: number;
  private closed = false;
  /** Set when shutting down: nothing decoded from here on is sent or confirmed. */
  private cut = false;
  /** While shutting down inside a transaction: called at its commit. */
  private transactionEnded: (() => void) | undefined;

  constructor(
    private readonly deps: SessionDeps,
    private readonly source: PreparedSource,
    types: TypeRegistry,
    private readonly startLsn: bigint,
    loadTypes: (oids: number[]) => Promise<void>,
  ) {
    const { config } = deps;
    this.checkpoint = new Checkpoint(startLsn);
    this.resumeBelow = config.maxInFlightBytes / 2;
    this.sink = new SqsSink({
      client: deps.sqs,
      queueUrl: config.queueUrl,
      maxConcurrentSends: config.maxConcurrentSends,
      log: deps.log,
      onAccepted: (m) => this.onAccepted(m),
      onFatal: (err) => this.fail(err),
      ...(deps.payloads ? { payloads: deps.payloads } : {}),
      sourceId: config.sourceId,
      ...(deps.sqsRetry ? { retryInitialMs: deps.sqsRetry.initialMs, retryMaxMs: deps.sqsRetry.maxMs } : {}),
    });
    this.batcher = new Batcher(
      {
        partitions: config.partitions,
        maxBytes: config.batch.maxBytes,
        maxChanges: config.batch.maxChanges,
        lingerMs: config.batch.lingerMs,
        oversized: deps.payloads !== undefined,
      },
      (m) => this.sink.enqueue(m),
    );
    this.ended = new Promise((resolve) => (this.markEnded = resolve));
    this.view = new StreamView(config.slotName, { watch: (ref, on) => this.decoder.watch(ref, on) });
    this.decoder = new Decoder({
      watcher: this.view,
      types,
      tables: source.tables as Map<string, TableInfo>,
      slotName: config.slotName,
      partitions: config.partitions,
      messagePrefixes: new Set(config.messages.prefixes),
      sink: this,
      loadTypes,
      pause: () => {
        this.pausedForTypes = true;
        this.replication.pause();
      },
      resume: () => {
        this.pausedForTypes = false;
        this.maybeResume();
      },
      onError: (err) => this.fail(err),
    });
  }

  get inFlightBytes(): number {
    return this.batcher.bufferedBytes + this.sink.pendingBytes;
  }

  /** The fatal error that ended this session, if one did. */
  get failure(): unknown {
    return this.fatalError;
  }

  async run(): Promise<void> {
    const { config, connections, log } = this.deps;
    const clientConfig = await connections.clientConfig({ replication: true, applicationName: `pgrelay-${config.sourceId}` });
    this.replication = new ReplicationStream(clientConfig, {
      slotName: config.slotName,
      publicationName: config.publicationName,
      messages: this.source.serverVersion >= 140000,
    });
    const failed = new Promise<never>((_, reject) => {
      this.fatal = reject;
    });
    failed.catch(() => {});
    if (this.fatalError !== undefined) throw this.fatalError;
    const lingerEvery = Math.max(5, Math.floor(config.batch.lingerMs / 2));
    this.timers.push(
      setInterval(() => this.batcher.flushDue(), lingerEvery),
      setInterval(() => this.replication.sendStatus(this.checkpoint.safeLsn), config.statusIntervalMs),
    );
    log.info('streaming', { slot: config.slotName, startLsn: formatLsn(this.startLsn) });
    try {
      await Promise.race([
        this.replication.run(this.startLsn, {
          onData: (payload) => this.decoder.handle(payload),
          onKeepalive: (walEnd, reply) => {
            if (walEnd > this.serverLsn) this.serverLsn = walEnd;
            this.decoder.keepalive(walEnd);
            if (reply) this.replication.sendStatus(this.checkpoint.safeLsn);
          },
        }),
        failed,
      ]);
    } finally {
      this.clearTimers();
    }
  }

  // --- ChangeSink: called by the decoder, in stream order ---
  // After the cut every call is ignored: the stream's rest (even of a chunk already parsed) is
  // neither sent nor confirmed, so the next start reads it again from the confirmed position.
  begin(_xid: number, commitLsn: bigint): void {
    if (this.cut) return;
    this.marker = this.checkpoint.begin();
    this.commitLsn = commitLsn;
  }

  change(partition: number, json: string, bytes: number, seq: number): void {
    if (this.cut) return;
    this.batcher.add(partition, json, bytes, this.marker as TxMarker, this.commitLsn, seq);
    this.checkBackpressure();
  }

  broadcast(json: string, bytes: number, seq: number): void {
    if (this.cut) return;
    for (let p = 0; p < this.deps.config.partitions; p++) this.batcher.add(p, json, bytes, this.marker as TxMarker, this.commitLsn, seq);
    this.checkBackpressure();
  }

  commit(endLsn: bigint): void {
    if (this.cut) return;
    if (endLsn > this.serverLsn) this.serverLsn = endLsn;
    if (this.marker) this.checkpoint.commit(this.marker, endLsn);
    this.marker = undefined;
    if (this.deps.config.batch.lingerMs === 0) this.batcher.flushAll();
    const ended = this.transactionEnded;
    if (ended) {
      this.cut = true; // now, before the next message of the same chunk is decoded
      this.transactionEnded = undefined;
      ended();
    }
  }

  keepalive(walEnd: bigint): void {
    if (this.cut) return;
    this.checkpoint.keepalive(walEnd);
  }

  // --- BootstrapHost: the bootstrap emits its reads and marks here, from the decoder's call at the mark ---

  stampLoad(ref: string, loadId: string | undefined): void {
    this.decoder.stampLoad(ref, loadId);
  }

  emitAt(lsn: bigint, produce: (emit: EmitChange) => number, onAccepted: () => void): void {
    if (this.cut) return;
    if (lsn > this.serverLsn) this.serverLsn = lsn;
    const marker = this.checkpoint.begin();
    marker.onAccepted = onAccepted;
    const batcher = this.batcher;
    let seq = 0;
    const emitted = produce((partition, json, bytes) => batcher.add(partition, json, bytes, marker, lsn, seq++));
    this.decoder.changes += emitted;
    this.checkpoint.commit(marker, lsn);
    this.checkBackpressure();
  }

  broadcastAt(lsn: bigint, json: string, onAccepted: () => void): void {
    if (this.cut) return;
    if (lsn > this.serverLsn) this.serverLsn = lsn;
    const marker = this.checkpoint.begin();
    marker.onAccepted = onAccepted;
    const bytes = Buffer.byteLength(json);
    for (let p = 0; p < this.deps.config.partitions; p++) this.batcher.add(p, json, bytes, marker, lsn, 0);
    this.decoder.changes++;
    this.checkpoint.commit(marker, lsn);
    this.checkBackpressure();
  }

  backlog(): { inFlightBytes: number; maxInFlightBytes: number; lagBytes: number } {
    const safe = this.checkpoint.safeLsn;
    return { inFlightBytes: this.inFlightBytes, maxInFlightBytes: this.deps.config.maxInFlightBytes, lagBytes: this.serverLsn > safe ? Number(this.serverLsn - safe) : 0 };
  }

  standalone(partition: number, json: string, bytes: number, lsn: bigint): void {
    if (this.cut) return;
    // Its own marker, closed at once at the message's LSN (the end of its WAL record, so a
    // restart from there does not decode it again): confirmed once SQS accepted it and
    // everything before it.
    if (lsn > this.serverLsn) this.serverLsn = lsn;
    const marker = this.checkpoint.begin();
    this.batcher.add(partition, json, bytes, marker, lsn, 0);
    this.checkpoint.commit(marker, lsn);
    this.checkBackpressure();
  }

  passed(lsn: bigint): void {
    if (this.cut) return;
    // A non-transactional message (the monitor's heartbeat, or anyone's) arrives outside any
    // transaction, in stream order: its position is safe to confirm once everything before it
    // is, exactly like a keepalive, which is what lets a quiet slot advance.
    if (lsn > this.serverLsn) this.serverLsn = lsn;
    this.checkpoint.keepalive(lsn);
  }

  private checkBackpressure(): void {
    if (!this.pausedForBackpressure && this.inFlightBytes >= this.deps.config.maxInFlightBytes) {
      this.pausedForBackpressure = true;
      this.replication.pause();
    }
  }

  private maybeResume(): void {
    if (this.pausedForBackpressure && this.inFlightBytes < this.resumeBelow) this.pausedForBackpressure = false;
    if (!this.pausedForBackpressure && !this.pausedForTypes && !this.closed) this.replication.resume();
  }

  private onAccepted(m: OutgoingMessage): void {
    for (let i = 0; i < m.markers.length; i++) this.checkpoint.accepted(m.markers[i] as TxMarker, m.counts[i] as number);
    if (this.pausedForBackpressure) this.maybeResume();
  }

  private fail(err: unknown): void {
    if (this.fatalError !== undefined) return;
    this.fatalError = err;
    this.sink.stop();
    this.fatal?.(err);
  }

  /** After the connection dropped: ship what was decoded, so the next session starts clean. */
  async drain(timeoutMs: number): Promise<void> {
    this.clearTimers();
    this.batcher.flushAll();
    await withTimeout(this.sink.idle(), timeoutMs);
  }

  /**
   * Graceful end: finish the transaction being read, stop there, deliver, acknowledge what SQS
   * accepted, disconnect. The server sends a transaction whole once it committed, so its end is
   * on the way; reading up to it (for at most half the time) means a restart does not send its
   * first part a second time. Past that half, the part read is delivered (duplicated later, as
   * at-least-once allows) and the rest left to the next start.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    if (this.marker !== undefined && !this.cut) {
      await withTimeout(new Promise<void>((resolve) => (this.transactionEnded = resolve)), timeoutMs / 2);
      this.transactionEnded = undefined;
    }
    this.cut = true;
    this.replication?.pause();
    this.clearTimers();
    this.batcher.flushAll();
    await withTimeout(this.sink.idle(), Math.max(0, deadline - performance.now()));
    this.replication?.sendStatus(this.checkpoint.safeLsn);
    await this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.markEnded();
    this.clearTimers();
    this.sink.stop();
    await this.replication?.stop();
  }

  private clearTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  if (!Number.isFinite(ms)) return p;
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    p.then(() => {
      clearTimeout(t);
      resolve();
    });
  });
}
