/**
 * The streamer: prepares the source, then runs replication sessions until stopped.
 * A session is one replication connection with its own decoder → batcher → SQS sink →
 * checkpoint chain. When a connection drops, the session's decoded changes are still
 * delivered (they are committed changes) before the next session starts from the safe
 * position, so a reconnect can neither reorder a message group nor lose a change.
 */
import type pg from 'pg';
import { DecodeError, DeliveryError, describeError, hasCode, PgRelayError, SourceError } from '#core/errors.ts';
import { formatLsn } from '#core/position.ts';
import { TypeRegistry } from '#core/values/registry.ts';
import { isAuthFailure } from '#shared/connection.ts';
import type { Logger } from './log.ts';
import { emfDocument } from '#core/emf.ts';
import { Bootstrapper } from './bootstrap/bootstrapper.ts';
import { ReplicationSession, type SessionDeps } from './replication-session.ts';
import { backoffDelay } from '#core/backoff.ts';
import { loadTypes, prepareSource, type PreparedSource } from './source.ts';

export interface StreamerDeps extends SessionDeps {
  /** Where EMF metric documents go (stdout in ECS). */
  writeMetrics?: (line: string) => void;
}

/** Errors that no reconnect can cure: the streamer stops without acknowledging past them. */
export function isFatal(err: unknown): boolean {
  return err instanceof DecodeError || err instanceof DeliveryError || err instanceof SourceError || (err instanceof PgRelayError && hasCode(err, 'INVALID_CONFIG'));
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
  private wakeBackoff: (() => void) | undefined;
  private session: ReplicationSession | undefined;
  private prepared: PreparedSource | undefined;
  private bootstrapper: Bootstrapper | undefined;
  private bootstrapping: Promise<void> | undefined;
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
      const prepared = this.prepared;
      this.bootstrapper = new Bootstrapper({
        config,
        log: this.log,
        connections: this.deps.connections,
        tables: prepared.tables,
        serverVersion: prepared.serverVersion,
        types: () => this.types,
        loadTypes: (oids) => this.loadMissingTypes(oids),
      });
      this.bootstrapping = this.bootstrapper.run();
      let failures = 0;
      while (!this.stopping) {
        const session = new ReplicationSession(this.deps, this.prepared, this.types, this.safeLsn, (lsn) => this.loadMissingTypes(lsn));
        this.session = session;
        this.bootstrapper.attach(session);
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
      this.bootstrapper?.stop();
      await this.bootstrapping;
      clearInterval(this.metricsTimer);
      this.emitMetrics();
      this.session = undefined;
    }
  }

  /** Graceful stop: flush, wait for SQS (bounded by shutdownTimeoutMs), acknowledge, close. */
  async stop(reason: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info('stopping', { reason });
    this.wakeBackoff?.();
    this.bootstrapper?.stop();
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

  private absorb(session: ReplicationSession): void {
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
    const client = await this.deps.connections.connect({ applicationName: 'pgrelay-setup' });
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
    return backoffDelay(attempt, { initialMs: initialDelayMs, maxMs: maxDelayMs });
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
