/**
 * The streamer: prepares the source, then runs replication sessions until stopped.
 * A session is one replication connection with its own decoder → batcher → SQS sink →
 * checkpoint chain. When a connection drops, the session's decoded changes are still
 * delivered (they are committed changes) before the next session starts from the safe
 * position, so a reconnect can neither reorder a message group nor lose a change.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import pg from 'pg';
import type { StreamerConfig } from '#core/config.ts';
import { DecodeError, DeliveryError, PgRelayError, SourceError, describeError } from '#core/errors.ts';
import type { PayloadStore } from '#core/payload-store.ts';
import { formatLsn } from '#core/position.ts';
import { TypeRegistry } from '#core/values.ts';
import { Batcher, type OutgoingMessage } from './batcher.ts';
import { Checkpoint, type TxMarker } from './checkpoint.ts';
import { ConnectionProvider, isAuthFailure } from '#shared/connection.ts';
import { Decoder, type ChangeSink, type TableInfo } from './decoder.ts';
import type { Logger } from './log.ts';
import { emfDocument } from '#core/emf.ts';
import { ReplicationStream } from './replication.ts';
import { SqsSink } from './sqs-sink.ts';
import { loadTypes, prepareSource, type PreparedSource } from './source.ts';

export interface StreamerDeps {
  config: StreamerConfig;
  log: Logger;
  sqs: SQSClient;
  /** Claim-check store for changes too large for SQS; without it such a change stops the streamer (CHANGE_TOO_LARGE). */
  payloads?: PayloadStore;
  connections: ConnectionProvider;
  /** Where EMF metric documents go (stdout in ECS). */
  writeMetrics?: (line: string) => void;
  /** SQS retry backoff bounds (tests shorten them). */
  sqsRetry?: { initialMs: number; maxMs: number };
}

/** Errors that no reconnect can cure: the streamer stops without acknowledging past them. */
export function isFatal(err: unknown): boolean {
  return err instanceof DecodeError || err instanceof DeliveryError || err instanceof SourceError || (err instanceof PgRelayError && err.code === 'INVALID_CONFIG');
}

/** SQLSTATE 55006: the slot is active for another process (e.g. the old task during a deploy). */
function isSlotInUse(err: unknown): boolean {
  return (err as { code?: unknown })?.code === '55006';
}

export interface StreamerStats {
  changes: number;
  messages: number;
  bytes: number;
  requests: number;
  failedRequests: number;
  failedEntries: number;
  /** Payload uploads that failed (retried); counted in the SendFailures metric. */
  failedUploads: number;
  /** Changes too large for SQS that were stored and sent by reference. */
  storedPayloads: number;
  confirmedLsn: string;
  serverLsn: string;
  lagBytes: number;
  inFlightBytes: number;
  sessions: number;
  paused: boolean;
}

export class Streamer {
  private readonly log: Logger;
  private stopping = false;
  private stopReason = '';
  private wakeBackoff: (() => void) | undefined;
  private session: Session | undefined;
  private prepared: PreparedSource | undefined;
  private types = new TypeRegistry();
  private safeLsn = 0n;
  private serverLsn = 0n;
  private sessions = 0;
  private readonly totals = { changes: 0, messages: 0, bytes: 0, requests: 0, failedRequests: 0, failedEntries: 0, failedUploads: 0, storedPayloads: 0 };
  private metricsTimer: NodeJS.Timeout | undefined;
  private lastMetrics = { ...this.totals };

  /** Resolves once the publication and slot exist: changes committed from then on are streamed. */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(private readonly deps: StreamerDeps) {
    this.log = deps.log;
    this.ready = new Promise((resolve) => (this.markReady = resolve));
  }

  /** Runs until `stop()` (resolves) or a fatal error (rejects). */
  async run(): Promise<void> {
    const { config } = this.deps;
    this.metricsTimer = setInterval(() => this.emitMetrics(), config.metricsIntervalMs);
    try {
      await this.withReconnect('prepare source', async () => {
        this.prepared = await this.withClient(async (client) => {
          const prepared = await prepareSource(client, config, this.log);
          this.types = new TypeRegistry(await loadTypes(client));
          return prepared;
        });
      });
      if (this.stopping || !this.prepared) return;
      this.log.info('source ready', {
        database: this.deps.connections.describe(),
        slot: config.slotName,
        publication: config.publicationName,
        slotCreated: this.prepared.slot.created,
        confirmedFlushLsn: formatLsn(this.prepared.slot.confirmedFlushLsn),
        tables: [...this.prepared.tables.values()].map((t) => ({ table: `${t.schema}.${t.table}`, key: t.keyColumns })),
      });
      this.safeLsn = this.prepared.slot.confirmedFlushLsn;
      this.markReady();
      let failures = 0;
      while (!this.stopping) {
        const session = new Session(this.deps, this.prepared, this.types, this.safeLsn, (lsn) => this.loadMissingTypes(lsn));
        this.session = session;
        this.sessions++;
        let lost: unknown;
        try {
          await session.run();
        } catch (err) {
          if (isFatal(err)) {
            await session.close();
            this.absorb(session);
            throw err;
          }
          lost = err;
        }
        if (this.stopping) {
          // stop() already shut the session down gracefully.
          this.absorb(session);
          break;
        }
        const lostCode = (lost as { code?: unknown })?.code;
        if (lostCode === '42704' || (lostCode === '55000' && /replication slot/.test(String((lost as Error).message)))) {
          // The slot was dropped (42704) or invalidated (55000, "can no longer access/get changes
          // from replication slot") under us. Recreating it would silently skip every change
          // since the last confirmed position, so deliver what was read, stop and say what it means.
          await session.drain(config.shutdownTimeoutMs);
          await session.close();
          this.absorb(session);
          const what = lostCode === '42704' ? 'was dropped' : 'was invalidated (PostgreSQL removed WAL it still needed)';
          throw new SourceError(
            'SLOT_LOST',
            `replication slot ${config.slotName} ${what} while the streamer was running: changes committed after ${formatLsn(this.safeLsn)} were not streamed and cannot be. Turn on the monitor's recreateLostSlot to recreate the slot and re-read every table, or accept the gap: pgrelay slot drop --slot ${config.slotName}, then start the streamer again`,
            { cause: lost },
          );
        }
        failures = session.checkpoint.safeLsn > this.safeLsn ? 1 : failures + 1;
        const delay = this.backoffDelay(failures);
        if (isSlotInUse(lost)) {
          this.log.warn('replication slot is in use by another process; waiting for it to be released', { slot: config.slotName, error: describeError(lost), retryInMs: delay });
        } else {
          if (isAuthFailure(lost)) this.deps.connections.invalidate();
          this.log.warn('replication connection lost; delivering what was read, then reconnecting', { error: describeError(lost ?? new Error('replication stream ended')), retryInMs: delay });
        }
        await session.drain(Infinity);
        await session.close();
        this.absorb(session);
        // SQS may have refused an entry for good while the session drained.
        if (session.failure !== undefined) throw session.failure;
        await this.backoff(delay);
      }
    } finally {
      clearInterval(this.metricsTimer);
      this.emitMetrics();
      this.session = undefined;
    }
  }

  /** Graceful stop: flush, wait for SQS (bounded by shutdownTimeoutMs), acknowledge, close. */
  async stop(reason: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stopReason = reason;
    this.log.info('stopping', { reason });
    this.wakeBackoff?.();
    await this.session?.shutdown(this.deps.config.shutdownTimeoutMs);
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  stats(): StreamerStats {
    const s = this.session;
    const safe = s ? s.checkpoint.safeLsn : this.safeLsn;
    const server = s && s.serverLsn > this.serverLsn ? s.serverLsn : this.serverLsn;
    return {
      changes: this.totals.changes + (s?.decoder.changes ?? 0),
      messages: this.totals.messages + (s?.sink.sentMessages ?? 0),
      bytes: this.totals.bytes + (s?.sink.sentBytes ?? 0),
      requests: this.totals.requests + (s?.sink.requests ?? 0),
      failedRequests: this.totals.failedRequests + (s?.sink.failedRequests ?? 0),
      failedEntries: this.totals.failedEntries + (s?.sink.failedEntries ?? 0),
      failedUploads: this.totals.failedUploads + (s?.sink.failedUploads ?? 0),
      storedPayloads: this.totals.storedPayloads + (s?.sink.storedPayloads ?? 0),
      confirmedLsn: formatLsn(safe),
      serverLsn: formatLsn(server),
      lagBytes: server > safe ? Number(server - safe) : 0,
      inFlightBytes: s ? s.inFlightBytes : 0,
      sessions: this.sessions,
      paused: s?.replication.isPaused ?? false,
    };
  }

  private absorb(session: Session): void {
    this.safeLsn = session.checkpoint.safeLsn;
    if (session.serverLsn > this.serverLsn) this.serverLsn = session.serverLsn;
    this.totals.changes += session.decoder.changes;
    this.totals.messages += session.sink.sentMessages;
    this.totals.bytes += session.sink.sentBytes;
    this.totals.requests += session.sink.requests;
    this.totals.failedRequests += session.sink.failedRequests;
    this.totals.failedEntries += session.sink.failedEntries;
    this.totals.failedUploads += session.sink.failedUploads;
    this.totals.storedPayloads += session.sink.storedPayloads;
    this.session = undefined;
  }

  private async loadMissingTypes(oids: number[]): Promise<void> {
    const types = await this.withClient((client) => loadTypes(client, oids));
    this.types.add(types);
  }

  private async withClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client(await this.deps.connections.clientConfig({ applicationName: 'pgrelay-setup' }));
    client.on('error', () => {}); // surfaced through the failing query instead
    try {
      await client.connect();
    } catch (err) {
      if (isAuthFailure(err)) this.deps.connections.invalidate();
      throw err;
    }
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => {});
    }
  }

  private async withReconnect(what: string, fn: () => Promise<void>): Promise<void> {
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        await fn();
        return;
      } catch (err) {
        if (isFatal(err)) throw err;
        const delay = this.backoffDelay(attempt);
        this.log.warn(`${what} failed; retrying`, { attempt, retryInMs: delay, error: describeError(err) });
        await this.backoff(delay);
      }
    }
  }

  private backoffDelay(attempt: number): number {
    const { initialDelayMs, maxDelayMs } = this.deps.config.reconnect;
    return Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(attempt - 1, 16));
  }

  private backoff(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.wakeBackoff = undefined;
        resolve();
      }
      this.wakeBackoff = done;
    });
  }

  private emitMetrics(): void {
    const write = this.deps.writeMetrics;
    if (!write) return;
    const s = this.stats();
    const d = (k: keyof typeof this.totals, now: number) => now - this.lastMetrics[k];
    const doc = emfDocument(
      { Source: this.deps.config.sourceId, Slot: this.deps.config.slotName },
      [
        { name: 'ChangesStreamed', value: d('changes', s.changes), unit: 'Count' },
        { name: 'BytesSent', value: d('bytes', s.bytes), unit: 'Bytes' },
        { name: 'MessagesSent', value: d('messages', s.messages), unit: 'Count' },
        { name: 'SendRequests', value: d('requests', s.requests), unit: 'Count' },
        { name: 'SendFailures', value: d('failedRequests', s.failedRequests) + d('failedEntries', s.failedEntries) + d('failedUploads', s.failedUploads), unit: 'Count' },
        { name: 'AcknowledgedLagBytes', value: s.lagBytes, unit: 'Bytes' },
        { name: 'InFlightBytes', value: s.inFlightBytes, unit: 'Bytes' },
      ],
      Date.now(),
      { acknowledgedLsn: s.confirmedLsn, serverLsn: s.serverLsn },
    );
    this.lastMetrics = {
      changes: s.changes,
      messages: s.messages,
      bytes: s.bytes,
      requests: s.requests,
      failedRequests: s.failedRequests,
      failedEntries: s.failedEntries,
      failedUploads: s.failedUploads,
      storedPayloads: s.storedPayloads,
    };
    write(JSON.stringify(doc));
  }
}

/** One replication connection's pipeline. */
class Session implements ChangeSink {
  readonly checkpoint: Checkpoint;
  readonly batcher: Batcher;
  readonly sink: SqsSink;
  readonly decoder: Decoder;
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
    private readonly deps: StreamerDeps,
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
    this.decoder = new Decoder({
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
