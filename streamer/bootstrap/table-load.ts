/**
 * One table's load: frame it with `started` and `completed` marks, read it chunk by chunk in
 * key order, reconcile each chunk with the stream, emit what survives at the chunk's mark, and
 * record progress once SQS accepted it. The chunk protocol, for each chunk:
 *
 *  1. open a window on the table: from now on the stream's changes of it are recorded;
 *  2. read the chunk in a REPEATABLE READ transaction whose first statement takes snapshot S;
 *  3. if a transaction S did not see (in progress when S was taken) was already streamed before
 *     the window opened, its change is not in the window and may be newer than the chunk's row:
 *     drop the chunk and read it again later;
 *  4. write the chunk's mark into the WAL (after S, so after every change S saw);
 *  5. when the decoder meets the mark, every key a recorded change touched whose transaction S
 *     did not see is stale (the stream carries a newer version, before or after the mark) and is
 *     left out; if such a change left a TOASTed column out, the key is read again instead, so the
 *     consumer gets that column's value; the rest is emitted at the mark's position;
 *  6. once SQS accepted them, the chunk's last key is recorded: a restart resumes after it.
 * Why no row can end stale: a row is emitted only if no change S did not see touched it before
 * the mark, and every change S saw is older than the row read in S; changes after the mark come
 * after the row in the stream. A TRUNCATE S did not see ends the chunk, and the load starts over.
 */
import type pg from 'pg';
import { PgRelayError, describeError } from '#core/errors.ts';
import type { StreamerConfig } from '#core/config.ts';
import { formatLsn } from '#core/position.ts';
import { stringifyLossless } from '#core/values/lossless-json.ts';
import type { TypeRegistry } from '#core/values/registry.ts';
import { failBootstrapRequest, finishBootstrap, recordBootstrapProgress, restartBootstrap, startBootstrap, type BootstrapRequest } from '#shared/bootstrap-state.ts';
import type { Logger } from '../log.ts';
import { describeTable, estimateRows, lastKey, readChunk, writeMark, type ChunkRead, type TableShape } from './chunk-reader.ts';
import type { CopyRows } from './copy-rows.ts';
import type { ChunkSnapshot } from './snapshot.ts';
import { formatMark } from './marker.ts';
import { SnapshotEncoder } from './snapshot-rows.ts';
import { markKey, type ChunkWindow } from './stream-view.ts';
import type { BootstrapHost } from './host.ts';

export interface TableLoadDeps {
  config: StreamerConfig;
  log: Logger;
  types: TypeRegistry;
  serverVersion: number;
  keyColumns: string[];
  /** A connection for reading (its own: a chunk's transaction must not interleave with others). */
  reader: pg.Client;
  /** The connection state updates go through. */
  state: pg.Client;
  /** The session the load runs in, when there is one; waits for the next when there is not. */
  host(): Promise<BootstrapHost>;
  /** Loads type OIDs the registry lacks (a column of a type created after the streamer started). */
  loadTypes(oids: number[]): Promise<void>;
  /** True once the request was cancelled or replaced (checked between chunks). */
  stillWanted(loadId: string): Promise<boolean>;
  /** Resolves after `ms`, or at once when the streamer stops. */
  pause(ms: number): Promise<void>;
  stopping(): boolean;
}

export type LoadOutcome = 'complete' | 'cancelled' | 'failed' | 'stopped';

/**
 * Chunks read and waiting for their marks at once. A chunk is emitted when the decoder meets its
 * mark (a round trip through the WAL); with one waiting while the next is read, the process
 * idled a fifth of a load between the two. Each costs one more chunk of rows in memory.
 */
const CHUNKS_AHEAD = 3;

/** A chunk read, its mark written, not yet met. */
interface InFlight {
  host: BootstrapHost;
  key: string;
  window: ChunkWindow;
  met: Promise<Emitted>;
  /** The keys it reads again, when it is a re-read. */
  rereadKeys: string[][] | undefined;
}

/** A chunk emitted at its mark, waiting for SQS. */
interface Emitted {
  accepted: Promise<void>;
  lastKey: string[] | null;
  rows: number;
  bytes: number;
}

export class TableLoad {
  private shape!: TableShape;
  private encoder!: SnapshotEncoder;
  private loadId = '';
  private after: string[] | null = null;
  private upTo: string[] | null = null;
  private limit: number;
  private chunk = 0;
  private rowsRead = 0;
  /** Keys to read again (a stream change left a TOASTed column out of them). */
  private reread: string[][] = [];
  private truncated = false;
  private persisted: Promise<void> = Promise.resolve();
  /** The state row says running (and the consumers were told, or are being told, it started). */
  private started = false;

  constructor(
    private readonly request: BootstrapRequest,
    private readonly deps: TableLoadDeps,
  ) {
    this.limit = deps.config.bootstrap.chunkMinRows;
  }

  get table(): string {
    return this.request.table;
  }

  get id(): string {
    return this.loadId;
  }

  /** Runs the load to its end. A failure ends it `failed`, with the reason recorded. */
  async run(): Promise<LoadOutcome> {
    try {
      return await this.load();
    } finally {
      this.unlisten?.();
    }
  }

  private async load(): Promise<LoadOutcome> {
    const { config, log } = this.deps;
    const r = this.request;
    try {
      const [schema, ...rest] = r.table.split('.');
      const table = { schema: schema as string, table: rest.join('.') };
      this.shape = await describeTable(this.deps.reader, table, this.deps.keyColumns, config.publicationName, this.deps.serverVersion);
      await this.knowTypes(this.shape.columns.map((c) => c.typeOid));
      if (r.state === 'running' && r.loadId !== null) {
        this.loadId = r.loadId;
        this.after = r.lastKey;
        this.upTo = r.upperKey;
        this.rowsRead = r.rowsRead;
        this.started = true;
        log.info('bootstrap resumed', { table: r.table, load: this.loadId, afterKey: this.after, rowsRead: this.rowsRead });
      } else {
        this.loadId = loadIdOf(r);
        this.upTo = await lastKey(this.deps.reader, this.shape);
        const estimate = await estimateRows(this.deps.reader, table);
        if (!(await this.onState(() => startBootstrap(this.deps.state, config.stateSchema, config.slotName, r.table, { id: this.loadId, upperKey: this.upTo, rowsEstimated: estimate, requestStamp: r.requestStamp })))) {
          return 'cancelled';
        }
        this.started = true;
        log.info('bootstrap started', { table: r.table, load: this.loadId, reason: r.reason, rowsEstimated: estimate });
      }
      this.encoder = new SnapshotEncoder(this.shape, this.deps.types, config.partitions, this.loadId);
      // Every change of the table carries the load from its `started` mark on (after a restart, at once).
      if (r.state === 'running') (await this.deps.host()).stampLoad(this.shape.ref, this.loadId);
      else await this.frame('started');

      this.emittedAfter = this.after;
      if (!(await this.chunks())) return this.deps.stopping() ? 'stopped' : this.end('cancelled', 'cancelled by an operator');
      await this.persisted;
      await this.frame('completed', { outcome: 'complete', rows: this.rowsRead });
      await this.onState(() => finishBootstrap(this.deps.state, config.stateSchema, config.slotName, r.table, { loadId: this.loadId, state: 'done' }));
      log.info('bootstrap done', { table: r.table, load: this.loadId, rows: this.rowsRead });
      return 'complete';
    } catch (err) {
      if (this.deps.stopping()) return 'stopped';
      const reason = failureReason(err, r.table);
      log.error('bootstrap failed', { table: r.table, load: this.loadId, error: describeError(err) });
      return this.end('failed', reason);
    }
  }

  /** Loads the column types the registry lacks, and what they are built on (as the decoder does for a Relation). */
  private async knowTypes(oids: number[]): Promise<void> {
    const asked = new Set<number>();
    let batch = oids.filter((o) => !this.deps.types.has(o));
    while (batch.length > 0) {
      for (const o of batch) asked.add(o);
      await this.deps.loadTypes(batch);
      batch = this.deps.types.missingDependencies(oids).filter((o) => !asked.has(o));
    }
  }

  /** Ends the load early: the consumers learn it (so they sweep nothing), and so does the state table. */
  private async end(outcome: 'cancelled' | 'failed', detail: string): Promise<LoadOutcome> {
    const { config } = this.deps;
    try {
      await this.persisted;
      if (this.started) await this.frame('completed', { outcome, rows: this.rowsRead });
    } catch {
      // The mark could not be written (the database is gone): the state row still says why.
    }
    const ended = this.onState(() =>
      this.started
        ? finishBootstrap(this.deps.state, config.stateSchema, config.slotName, this.request.table, { loadId: this.loadId, state: outcome, detail })
        : failBootstrapRequest(this.deps.state, config.stateSchema, config.slotName, this.request.table, detail),
    );
    await ended.catch(() => undefined);
    return outcome;
  }

  /** Writes a `started` or `completed` mark and waits for the decoder to meet it (it is broadcast there). */
  private async frame(kind: 'started' | 'completed', end?: { outcome: 'complete' | 'cancelled' | 'failed'; rows: number }): Promise<void> {
    const { config } = this.deps;
    const r = this.request;
    const load = stringifyLossless({
      id: this.loadId,
      reason: r.reason,
      ...(r.reason === 'gap' ? { gap: { afterLsn: r.gapAfterLsn, untilLsn: r.gapUntilLsn } } : {}),
      ...(end ?? {}),
    });
    const head = `{"v":1,"op":"bootstrap.${kind}","schema":${stringifyLossless(this.shape.table.schema)},"table":${stringifyLossless(this.shape.table.table)},"key":null,"after":null,"before":null,"bootstrap":${load}`;
    for (;;) {
      const host = await this.deps.host();
      const met = this.untilMark<void>(host, (resolve) => {
        host.view.expect(markKey({ load: this.loadId, kind }), (lsn, _mark) => {
          const json = `${head},"position":{"commitLsn":"${formatLsn(lsn)}","seq":0},"tx":null}`;
          // The stamp changes at the mark, in stream order: changes after `started` carry the load, after `completed` not.
          host.stampLoad(this.shape.ref, kind === 'started' ? this.loadId : undefined);
          host.broadcastAt(lsn, json, () => resolve());
        });
      });
      met.catch(() => undefined); // awaited below; a mark never written must not leave its rejection unhandled
      await writeMark(this.deps.reader, formatMark({ v: 1, slot: config.slotName, kind, load: this.loadId, table: r.table }), this.deps.serverVersion);
      try {
        await met;
        return;
      } catch (err) {
        if (!(err instanceof SessionEnded)) throw err;
        host.view.forget(markKey({ load: this.loadId, kind }));
        if (this.deps.stopping()) throw err;
      }
    }
  }

  /**
   * Reads the table chunk by chunk until its end; false when stopped or cancelled. Chunks
   * overlap: while up to CHUNKS_AHEAD - 1 of them wait for their marks (and are emitted in the
   * decoder when the marks arrive), the next is read.
   */
  private async chunks(): Promise<boolean> {
    const inFlight: InFlight[] = [];
    const discardAll = () => {
      for (const f of inFlight.splice(0)) this.discard(f);
    };
    try {
      for (;;) {
        if (this.deps.stopping()) return false;
        if (!(await this.wanted())) return false;
        await this.gentle();
        const host = await this.deps.host();
        this.listen(host);
        let next = this.truncated ? undefined : await this.readNext(host);
        // The oldest chunks settle until CHUNKS_AHEAD - 1 wait beside the new one (all of them
        // when nothing new was read, so that a load with nothing to read now still moves).
        const keep = next === undefined ? 0 : CHUNKS_AHEAD - 1;
        while (inFlight.length > keep) {
          if (await this.settle(inFlight.shift() as InFlight)) continue;
          // Not emitted (the session ended, or a TRUNCATE): neither is anything read after it.
          discardAll();
          if (next !== undefined) this.discard(next);
          next = undefined;
        }
        if (this.truncated) {
          if (next !== undefined) this.discard(next);
          discardAll();
          await this.startOver();
          continue;
        }
        if (next !== undefined) inFlight.push(next);
        if (inFlight.length === 0 && this.readEnd && this.reread.length === 0) return true;
      }
    } finally {
      discardAll();
    }
  }

  private askedAt = -Infinity;
  /** Whether the load is still wanted (not cancelled), asked at most every half second: a query per chunk would stall the pipeline. */
  private async wanted(): Promise<boolean> {
    const now = performance.now();
    if (now - this.askedAt < 500) return true;
    this.askedAt = now;
    return this.onState(() => this.deps.stillWanted(this.loadId));
  }

  /** Watches `host` for a TRUNCATE of the table between windows (that too starts the load over). */
  private listen(host: BootstrapHost): void {
    if (this.listening === host) return;
    this.listening = host;
    this.unlisten?.();
    this.unlisten = host.view.onTruncate((ref) => {
      if (ref === this.shape.ref) this.truncated = true;
    });
  }

  /**
   * Opens a window, reads the next chunk (keys to read again first) and writes its mark; the
   * mark, when the decoder meets it, emits the chunk. Undefined when there is nothing to read
   * now, or the chunk must be read again (step 3).
   */
  private async readNext(host: BootstrapHost): Promise<InFlight | undefined> {
    const { config } = this.deps;
    const rereadKeys = this.reread.length > 0 ? this.reread.splice(0, 1000) : undefined;
    if (rereadKeys === undefined && this.readEnd) return undefined;
    const chunk = this.chunk++;
    const window = host.view.open(this.shape.ref);
    const limit = this.limit;
    let read: ChunkRead;
    try {
      read = await readChunk(this.deps.reader, this.shape, rereadKeys !== undefined ? { keys: rereadKeys } : { after: this.after, upTo: this.upTo, limit });
      if (host.view.streamedBefore(read.snapshot.xip32, window)) {
        // Step 3: a commit the snapshot cannot see yet was already streamed; read this chunk again.
        this.deps.log.info('bootstrap chunk read again: a transaction the snapshot did not see was streamed before its window', { table: this.table, load: this.loadId, chunk });
        host.view.close(window);
        if (rereadKeys !== undefined) this.reread.unshift(...rereadKeys);
        await this.deps.pause(50);
        return undefined;
      }
    } catch (err) {
      host.view.close(window);
      if (rereadKeys !== undefined) this.reread.unshift(...rereadKeys);
      throw err;
    }
    const key = markKey({ load: this.loadId, kind: 'chunk', chunk });
    const rows = read.rows;
    // Taken now: the mark may be met (and the rows emitted and released) before writeMark returns.
    const rowCount = rows.count;
    const rowBytes = rows.bytes;
    const snapshot = read.snapshot;
    const rereading = rereadKeys !== undefined;
    const met = this.untilMark<Emitted>(host, (resolve) => {
      host.view.expect(key, (lsn) => resolve(this.emit(host, window, snapshot, rows, lsn, rereading)));
    });
    met.catch(() => undefined); // awaited in settle; a mark never written must not leave its rejection unhandled
    const flight: InFlight = { host, key, window, met, rereadKeys };
    try {
      await writeMark(this.deps.reader, formatMark({ v: 1, slot: config.slotName, kind: 'chunk', load: this.loadId, table: this.request.table, chunk }), this.deps.serverVersion);
    } catch (err) {
      this.discard(flight);
      throw err;
    }
    if (!rereading) {
      this.after = read.lastKey ?? this.after;
      if (rowCount < limit || this.upTo === null || (read.lastKey !== null && sameKey(read.lastKey, this.upTo))) this.readEnd = true;
    }
    this.adapt(read.ms, rowBytes, rowCount, limit);
    return flight;
  }

  /** Waits for a chunk's mark and records it; false when it never came (the session ended: read again from the last emitted key). */
  private async settle(flight: InFlight): Promise<boolean> {
    let emitted: Emitted;
    try {
      emitted = await flight.met;
    } catch (err) {
      // Read again, in the next session, from what was last emitted.
      this.discard(flight);
      if (!(err instanceof SessionEnded)) throw err;
      return false;
    } finally {
      flight.host.view.close(flight.window);
    }
    if (this.truncated) return false; // a TRUNCATE in the chunk's window: the load starts over
    if (flight.rereadKeys === undefined && emitted.lastKey !== null) this.emittedAfter = emitted.lastKey;
    this.record(emitted);
    return true;
  }

  /**
   * A chunk that will not be emitted: its mark is no longer awaited, its keys to read again are
   * kept, and range reads go back to after the last chunk emitted (no later one was).
   */
  private discard(flight: InFlight): void {
    flight.host.view.forget(flight.key);
    flight.host.view.close(flight.window);
    if (flight.rereadKeys !== undefined) this.reread.unshift(...flight.rereadKeys);
    else {
      this.after = this.emittedAfter;
      this.readEnd = false;
    }
  }

  private listening: BootstrapHost | undefined;
  private unlisten: (() => void) | undefined;
  /** The lower bound after the last chunk emitted (range reads resume there when later chunks are discarded). */
  private emittedAfter: string[] | null = null;
  /** The range reads reached the table's last key. */
  private readEnd = false;
  /** What waits for a mark of the current session: rejected when the session ends. */
  private readonly waiting = new Set<(err: SessionEnded) => void>();
  private endWatched: BootstrapHost | undefined;

  /**
   * Waits for what `register` arranges (a mark met in the decoder); rejects with SessionEnded
   * when `host` ends first. One reaction on `host.ended` per session, not per wait: a reaction
   * made per chunk keeps that chunk's rows alive until the session ends (measured: 2.3 KB a
   * row, out of heap within a load).
   */
  private untilMark<T>(host: BootstrapHost, register: (resolve: (value: T) => void) => void): Promise<T> {
    if (this.endWatched !== host) {
      this.endWatched = host;
      const waiting = this.waiting;
      host.ended.then(() => {
        for (const r of [...waiting]) r(new SessionEnded());
        waiting.clear();
      });
    }
    let abort!: (err: SessionEnded) => void;
    const met = new Promise<T>((resolve, reject) => {
      abort = reject;
      register(resolve);
    });
    this.waiting.add(abort);
    const settled = (): void => void this.waiting.delete(abort);
    met.then(settled, settled);
    return met;
  }

  /** After a TRUNCATE of the table: read it again from its first key, up to its last key now. */
  private async startOver(): Promise<void> {
    const { config } = this.deps;
    this.truncated = false;
    await this.persisted;
    this.after = null;
    this.emittedAfter = null;
    this.readEnd = false;
    this.reread = [];
    this.upTo = await lastKey(this.deps.reader, this.shape);
    await this.onState(() => restartBootstrap(this.deps.state, config.stateSchema, config.slotName, this.request.table, this.loadId, this.upTo));
    this.deps.log.info('bootstrap starts over: the table was truncated during the load', { table: this.table, load: this.loadId });
  }

  /**
   * At the chunk's mark (in the decoder's call): what survives the window, emitted at the mark's
   * position. The rows become events only now, one at a time, straight into the batches.
   */
  private emit(host: BootstrapHost, window: ChunkWindow, snapshot: ChunkSnapshot, rows: CopyRows, lsn: bigint, rereading: boolean): Emitted {
    const verdict = window.verdict(snapshot);
    host.view.close(window);
    if (verdict.truncated) {
      this.truncated = true;
      return { accepted: Promise.resolve(), lastKey: null, rows: 0, bytes: 0 };
    }
    const lsnText = formatLsn(lsn);
    const encoder = this.encoder;
    let bytes = 0;
    let emitted = 0;
    // Each event goes into its batch as it is written: a chunk's events never live all at once.
    const accepted = new Promise<void>((resolve) =>
      host.emitAt(
        lsn,
        (add) => {
          for (let i = 0; i < rows.count; i++) {
            encoder.load(rows, i);
            const key = encoder.key(rows);
            if (verdict.stale.has(key.json)) {
              if (verdict.reread.has(key.json)) this.reread.push(encoder.keyTexts(rows));
              continue;
            }
            const event = encoder.event(rows, key.json, lsnText, emitted++);
            bytes += event.bytes;
            add(key.partition, event.json, event.bytes);
          }
          return emitted;
        },
        resolve,
      ),
    );
    let lastKey: string[] | null = null;
    if (!rereading && rows.count > 0) {
      encoder.load(rows, rows.count - 1);
      lastKey = encoder.keyTexts(rows);
    }
    // Every event was written above (produce runs inside emitAt): the bytes are free again.
    rows.release();
    return { accepted, lastKey, rows: emitted, bytes };
  }

  /** Records the chunk's progress once SQS accepted it, in chunk order. */
  private record(e: Emitted): void {
    const { config } = this.deps;
    this.rowsRead += e.rows;
    this.persisted = this.persisted.then(async () => {
      await e.accepted;
      await this.onState(() => recordBootstrapProgress(this.deps.state, config.stateSchema, config.slotName, this.request.table, { loadId: this.loadId, lastKey: e.lastKey, rows: e.rows, bytes: e.bytes }));
    });
    // A failure to record shows at the next await of `persisted`; never unhandled meanwhile.
    this.persisted.catch(() => undefined);
  }

  private stateQueue: Promise<unknown> = Promise.resolve();
  /** Runs one statement on the state connection after those asked for before (a client runs one at a time). */
  private onState<T>(op: () => Promise<T>): Promise<T> {
    const next = this.stateQueue.then(op);
    this.stateQueue = next.catch(() => undefined);
    return next;
  }

  /** Bigger chunks while reads stay quick and small, smaller when one took too long. */
  private adapt(ms: number, bytes: number, rows: number, limit: number): void {
    const b = this.deps.config.bootstrap;
    if (rows < limit || limit !== this.limit) return;
    if (ms > 2 * b.chunkTargetMs) this.limit = Math.max(b.chunkMinRows, Math.floor(this.limit / 2));
    else if (ms < b.chunkTargetMs / 2 && bytes * 2 <= b.chunkMaxBytes) this.limit = Math.min(b.chunkMaxRows, this.limit * 2);
  }

  /** Live changes first: wait while the send backlog or the slot's unconfirmed WAL is high. */
  private async gentle(): Promise<void> {
    for (;;) {
      const host = await this.deps.host();
      const b = host.backlog();
      if (b.inFlightBytes < b.maxInFlightBytes / 2 && b.lagBytes < this.deps.config.bootstrap.maxLagBytes) return;
      if (this.deps.stopping()) return;
      await this.deps.pause(20);
    }
  }
}

class SessionEnded extends PgRelayError<'SESSION_ENDED'> {
  constructor() {
    super('SESSION_ENDED', 'the replication session ended before the mark came through');
  }
}

function sameKey(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** A load's id, derived from its request (no clock or random number decides it). */
function loadIdOf(r: BootstrapRequest): string {
  return `${r.table}@${r.requestStamp}`;
}

function failureReason(err: unknown, table: string): string {
  const code = (err as { code?: unknown }).code;
  if (code === '42P01') return `table ${table} no longer exists`;
  if (code === '42501') return `no SELECT privilege on ${table}: GRANT SELECT ON ${table} TO <the streamer's user>`;
  return describeError(err).message;
}
