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
import { describeTable, estimateRows, lastKey, readChunk, writeMark, type TableShape } from './chunk-reader.ts';
import { formatMark } from './marker.ts';
import { SnapshotRowWriter, type SnapshotRow } from './snapshot-rows.ts';
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

/** A chunk emitted at its mark, waiting for SQS. */
interface Emitted {
  accepted: Promise<void>;
  lastKey: string[] | null;
  rows: number;
  bytes: number;
}

export class TableLoad {
  private shape!: TableShape;
  private writer!: SnapshotRowWriter;
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
        if (!(await startBootstrap(this.deps.state, config.stateSchema, config.slotName, r.table, { id: this.loadId, upperKey: this.upTo, rowsEstimated: estimate, requestStamp: r.requestStamp }))) {
          return 'cancelled';
        }
        this.started = true;
        log.info('bootstrap started', { table: r.table, load: this.loadId, reason: r.reason, rowsEstimated: estimate });
      }
      this.writer = new SnapshotRowWriter(this.shape, this.deps.types, config.partitions, this.loadId);
      // Every change of the table carries the load from its `started` mark on (after a restart, at once).
      if (r.state === 'running') (await this.deps.host()).stampLoad(this.shape.ref, this.loadId);
      else await this.frame('started');

      for (;;) {
        if (this.deps.stopping()) return 'stopped';
        if (!(await this.deps.stillWanted(this.loadId))) return this.end('cancelled', 'cancelled by an operator');
        await this.gentle();
        const done = await this.nextChunk();
        if (done) break;
      }
      await this.persisted;
      await this.frame('completed', { outcome: 'complete', rows: this.rowsRead });
      await finishBootstrap(this.deps.state, config.stateSchema, config.slotName, r.table, { loadId: this.loadId, state: 'done' });
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
    const ended = this.started
      ? finishBootstrap(this.deps.state, config.stateSchema, config.slotName, this.request.table, { loadId: this.loadId, state: outcome, detail })
      : failBootstrapRequest(this.deps.state, config.stateSchema, config.slotName, this.request.table, detail);
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
      const met = new Promise<void>((resolve, reject) => {
        host.view.expect(markKey({ load: this.loadId, kind }), (lsn, _mark) => {
          const json = `${head},"position":{"commitLsn":"${formatLsn(lsn)}","seq":0},"tx":null}`;
          // The stamp changes at the mark, in stream order: changes after `started` carry the load, after `completed` not.
          host.stampLoad(this.shape.ref, kind === 'started' ? this.loadId : undefined);
          host.broadcastAt(lsn, json, () => resolve());
        });
        host.ended.then(() => reject(new SessionEnded()));
      });
      met.catch(() => undefined); // awaited below; a mark never written must not leave its rejection unhandled
      await writeMark(this.deps.reader, formatMark({ v: 1, slot: config.slotName, kind, load: this.loadId, table: r.table }));
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

  /** Reads, reconciles and emits one chunk; true when the table is read to its end. */
  private async nextChunk(): Promise<boolean> {
    const { config } = this.deps;
    const host = await this.deps.host();
    if (this.listening !== host) {
      // A TRUNCATE between chunks (not inside a window) also starts the load over.
      this.listening = host;
      this.unlisten?.();
      this.unlisten = host.view.onTruncate((ref) => {
        if (ref === this.shape.ref) this.truncated = true;
      });
    }
    if (this.truncated) {
      await this.startOver();
      return false;
    }
    const chunk = this.chunk++;
    const rereading = this.reread.length > 0;
    const window = host.view.open(this.shape.ref);
    let emitted: Emitted | undefined;
    try {
      const read = await readChunk(this.deps.reader, this.shape, rereading ? { keys: this.reread.splice(0, 1000) } : { after: this.after, upTo: this.upTo, limit: this.limit });
      if (host.view.streamedBefore(read.snapshot.xip32, window)) {
        // Step 3: a commit the snapshot cannot see yet was already streamed; read this chunk again.
        this.deps.log.info('bootstrap chunk read again: a transaction the snapshot did not see was streamed before its window', { table: this.table, load: this.loadId, chunk });
        if (rereading) this.reread.unshift(...read.rows.map((row) => this.shape.keyIndexes.map((i) => row[i] as string)));
        await this.deps.pause(50);
        return false;
      }
      const rows = read.rows.map((row) => this.writer.row(row));
      const met = new Promise<Emitted>((resolve, reject) => {
        host.view.expect(markKey({ load: this.loadId, kind: 'chunk', chunk }), (lsn) => resolve(this.emit(host, window, read.snapshot, rows, lsn)));
        host.ended.then(() => reject(new SessionEnded()));
      });
      met.catch(() => undefined); // awaited below; a mark never written must not leave its rejection unhandled
      await writeMark(this.deps.reader, formatMark({ v: 1, slot: config.slotName, kind: 'chunk', load: this.loadId, table: this.request.table, chunk }));
      try {
        emitted = await met;
      } catch (err) {
        host.view.forget(markKey({ load: this.loadId, kind: 'chunk', chunk }));
        if (err instanceof SessionEnded) return false; // read again in the next session, from the last recorded key
        throw err;
      }
      if (this.truncated) {
        // A TRUNCATE during the chunk's window: the table starts over, and so does the load.
        await this.startOver();
        return false;
      }
      this.adapt(read.ms, emitted.bytes, read.rows.length);
      if (!rereading) this.after = emitted.lastKey ?? this.after;
      this.record(emitted);
      if (rereading) return false;
      const end = read.rows.length < this.limitUsed || this.upTo === null || (emitted.lastKey !== null && sameKey(emitted.lastKey, this.upTo));
      return end && this.reread.length === 0;
    } finally {
      host.view.close(window);
    }
  }

  private limitUsed = 0;
  private listening: BootstrapHost | undefined;
  private unlisten: (() => void) | undefined;

  /** After a TRUNCATE of the table: read it again from its first key, up to its last key now. */
  private async startOver(): Promise<void> {
    const { config } = this.deps;
    this.truncated = false;
    await this.persisted;
    this.after = null;
    this.reread = [];
    this.upTo = await lastKey(this.deps.reader, this.shape);
    await restartBootstrap(this.deps.state, config.stateSchema, config.slotName, this.request.table, this.loadId, this.upTo);
    this.deps.log.info('bootstrap starts over: the table was truncated during the load', { table: this.table, load: this.loadId });
  }

  /** At the chunk's mark (in the decoder's call): what survives the window, emitted at the mark's position. */
  private emit(host: BootstrapHost, window: ChunkWindow, snapshot: Parameters<ChunkWindow['verdict']>[0], rows: SnapshotRow[], lsn: bigint): Emitted {
    const verdict = window.verdict(snapshot);
    host.view.close(window);
    if (verdict.truncated) {
      this.truncated = true;
      return { accepted: Promise.resolve(), lastKey: null, rows: 0, bytes: 0 };
    }
    const lsnText = formatLsn(lsn);
    const out: { partition: number; json: string; bytes: number; seq: number }[] = [];
    let bytes = 0;
    for (const row of rows) {
      if (verdict.stale.has(row.keyJson)) {
        if (verdict.reread.has(row.keyJson)) this.reread.push(row.key);
        continue;
      }
      const json = SnapshotRowWriter.complete(row, lsnText, out.length);
      const size = Buffer.byteLength(json);
      bytes += size;
      out.push({ partition: row.partition, json, bytes: size, seq: out.length });
    }
    const accepted = new Promise<void>((resolve) => host.emitAt(lsn, out, resolve));
    return { accepted, lastKey: rows.length > 0 ? (rows[rows.length - 1] as SnapshotRow).key : null, rows: out.length, bytes };
  }

  /** Records the chunk's progress once SQS accepted it, in chunk order. */
  private record(e: Emitted): void {
    const { config } = this.deps;
    this.rowsRead += e.rows;
    this.persisted = this.persisted.then(async () => {
      await e.accepted;
      await recordBootstrapProgress(this.deps.state, config.stateSchema, config.slotName, this.request.table, { loadId: this.loadId, lastKey: e.lastKey, rows: e.rows, bytes: e.bytes });
    });
    // A failure to record shows at the next await of `persisted`; never unhandled meanwhile.
    this.persisted.catch(() => undefined);
  }

  /** Bigger chunks while reads stay quick and small, smaller when one took too long. */
  private adapt(ms: number, bytes: number, rows: number): void {
    const b = this.deps.config.bootstrap;
    this.limitUsed = this.limit;
    if (rows < this.limit) return;
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
