/**
 * pgoutput → ChangeEvent. Keeps the relation cache (a new Relation message replaces an
 * entry, which is how ALTER TABLE mid-stream arrives), picks each change's key, fills
 * unchanged TOAST columns from a REPLICA IDENTITY FULL old row or names them in
 * `unchanged`, and serializes the event once, straight to the JSON text the batcher ships.
 */
import { isUtf8 } from 'node:buffer';
import { GAP_PREFIX, parseGapNotice, type GapNotice } from '#core/gap-notice.ts';
import { BOOTSTRAP_PREFIX } from './bootstrap/marker.ts';
import { DecodeError } from '#core/errors.ts';
import { tableKey } from '#core/identifiers.ts';
import { fnv1a, messagePartition, mix32, tablePrefixHash } from '#core/partition.ts';
import { formatLsn, pgMicrosToIso } from '#core/position.ts';
import { stringifyLossless } from '#core/values/lossless-json.ts';
import type { TypeRegistry, ValueWriter } from '#core/values/registry.ts';
import { NULL, parsePgOutput, type PgOutputMessage, type Tuple } from './pgoutput.ts';

/** What the source check resolved for a configured table. */
export interface TableInfo {
  schema: string;
  table: string;
  /** Key columns in key order. */
  keyColumns: string[];
  /** A partitioned table: its partitions' changes must be published under its name. */
  partitioned?: boolean;
}

/** The pipeline side of the decoder: transaction boundaries and serialized changes. */
export interface ChangeSink {
  begin(xid: number, commitLsn: bigint): void;
  /** `json` is one serialized ChangeEvent of `bytes` UTF-8 bytes; `partition` its message group. */
  change(partition: number, json: string, bytes: number, seq: number): void;
  /** A change that belongs to every partition (TRUNCATE orders against all nodes of a table). */
  broadcast(json: string, bytes: number, seq: number): void;
  commit(endLsn: bigint): void;
  /** A keepalive position, in stream order with the data around it. */
  keepalive(walEnd: bigint): void;
  /** A change outside any transaction (a delivered non-transactional logical message) at position (`lsn`, 0). */
  standalone(partition: number, json: string, bytes: number, lsn: bigint): void;
  /**
   * A non-transactional logical message that is not delivered (the monitor's heartbeat, or a
   * prefix not configured): its LSN is safe to confirm once everything before it is.
   */
  passed(lsn: bigint): void;
}

interface Relation {
  ref: string; // schema.table
  /** `"schema":…,"table":…` as JSON. */
  namesJson: string;
  names: string[];
  /** `"column":` per column, JSON-quoted once. */
  prefixes: string[];
  writers: ValueWriter[];
  keyIndexes: number[];
  /** Indexes of json/jsonb columns (domains included): where JSON null can occur. */
  jsonIndexes: number[];
  /** FNV state after `schema.table` and the separator (see partitionOf). */
  hashPrefix: number;
  /** A bootstrap window is open on this table: its changes are reported to the watcher. */
  watched: boolean;
  /** `,"load":"…"` while a bootstrap of this table is under way (every change of it carries the load), else ''. */
  loadJson: string;
}

/**
 * A row as JSON fragments by column index: `undefined` where PostgreSQL sent nothing (an
 * unchanged TOAST value), `null` text for SQL NULL.
 */
type Fragments = (string | undefined)[];

/**
 * What the bootstrap (streamer/bootstrap/) needs to see of the stream, in stream order: the
 * changes of tables it has a window open on, every transaction the stream carried, and its own
 * markers. Called synchronously from decoding, so it must be quick.
 */
export interface StreamWatcher {
  /** A row change of a watched table, by key JSON (both keys of a key change); `unchanged`: it left a TOASTed column out. */
  change(ref: string, xid: number, keyJson: string, unchanged: boolean): void;
  truncate(ref: string, xid: number): void;
  /** The stream carried transaction `xid` (at its commit). */
  committed(xid: number): void;
  /** A non-transactional pgrelay.bootstrap message; false when it is not one the watcher knows (then it is a position that passed). */
  marker(content: Buffer, lsn: bigint): boolean;
}

export interface DecoderOptions {
  types: TypeRegistry;
  /** Configured tables by `schema.table`; changes of other tables are skipped. */
  tables: Map<string, TableInfo>;
  /** This stream's slot: gap notices (pgrelay.gap messages) addressed to another slot are ignored. */
  slotName?: string;
  partitions: number;
  /** The bootstrap's view of the stream. */
  watcher?: StreamWatcher;
  /** Logical message prefixes to deliver (`messages.prefixes`); others are not delivered. */
  messagePrefixes?: ReadonlySet<string>;
  sink: ChangeSink;
  /** Called with type OIDs a Relation message uses that the registry does not know. */
  loadTypes(oids: number[]): Promise<void>;
  /** Stop and restart reading while types load. */
  pause(): void;
  resume(): void;
  onError(err: unknown): void;
}

const JSON_OIDS = new Set([114, 3802]);


interface OpenTx {
  xid: number;
  seq: number;
  commitLsnText: string;
  txJson: string;
}

export class Decoder {
  private readonly relations = new Map<number, Relation | null>();
  private tx: OpenTx | null = null;
  /** Input that arrived while a type lookup blocked decoding: payloads and keepalive LSNs. */
  private backlog: (Buffer | bigint)[] = [];
  private blocked = false;
  private failed = false;
  /** Changes emitted (each truncate counted once). */
  changes = 0;
  /** Tables with a bootstrap window open, and the load under way per table: kept here so a new Relation message gets them too. */
  private readonly watchedRefs = new Map<string, number>();
  private readonly loadJsonByRef = new Map<string, string>();

  constructor(private readonly opts: DecoderOptions) {}

  /** Feed one XLogData payload. Never throws: a failure goes to `onError` and stops decoding. */
  handle(payload: Buffer): void {
    if (this.failed) return;
    if (this.blocked) {
      // The payload buffer belongs to the socket's chunk; keep a copy while we wait.
      this.backlog.push(Buffer.from(payload));
      return;
    }
    try {
      this.dispatch(parsePgOutput(payload));
    } catch (err) {
      this.fail(err);
    }
  }

  keepalive(walEnd: bigint): void {
    if (this.failed) return;
    if (this.blocked) this.backlog.push(walEnd);
    else this.opts.sink.keepalive(walEnd);
  }

  private fail(err: unknown): void {
    this.failed = true;
    this.backlog = [];
    this.opts.onError(err);
  }

  private dispatch(msg: PgOutputMessage): void {
    switch (msg.tag) {
      case 'begin': {
        const commitLsnText = formatLsn(msg.finalLsn);
        this.tx = {
          xid: msg.xid,
          seq: 0,
          commitLsnText,
          txJson: `{"xid":${msg.xid},"commitLsn":"${commitLsnText}","commitTime":"${pgMicrosToIso(msg.commitTime)}"}`,
        };
        this.opts.sink.begin(msg.xid, msg.finalLsn);
        return;
      }
      case 'commit':
        if (this.tx) this.opts.watcher?.committed(this.tx.xid);
        this.tx = null;
        this.opts.sink.commit(msg.endLsn);
        return;
      case 'relation':
        this.onRelation(msg);
        return;
      case 'insert':
      case 'update':
      case 'delete':
        this.onRowChange(msg);
        return;
      case 'truncate':
        this.onTruncate(msg);
        return;
      case 'message':
        if (msg.transactional && msg.prefix === GAP_PREFIX) this.onGapNotice(msg.content);
        else if (!msg.transactional && msg.prefix === BOOTSTRAP_PREFIX) {
          if (!this.opts.watcher?.marker(msg.content, msg.lsn)) this.opts.sink.passed(msg.lsn);
        } else if (this.opts.messagePrefixes?.has(msg.prefix)) this.onMessage(msg);
        else if (!msg.transactional) this.opts.sink.passed(msg.lsn);
        return;
      case 'type':
      case 'origin':
        return;
    }
  }

  private onRelation(msg: Extract<PgOutputMessage, { tag: 'relation' }>): void {
    const ref = tableKey(msg);
    const info = this.opts.tables.get(ref);
    if (!info) {
      this.relations.set(msg.relationId, null);
      return;
    }
    const unknown = [...new Set(msg.columns.map((c) => c.typeOid))].filter((oid) => !this.opts.types.has(oid));
    if (unknown.length > 0) {
      this.blocked = true;
      this.opts.pause();
      this.loadTypesWithDependencies(unknown).then(
        () => {
          this.blocked = false;
          try {
            this.setRelation(msg, ref, info);
          } catch (err) {
            this.fail(err);
            return;
          }
          const pending = this.backlog;
          this.backlog = [];
          for (let i = 0; i < pending.length; i++) {
            if (this.blocked) {
              // Another relation needs types: keep the rest, in order.
              this.backlog.push(...pending.slice(i));
              return;
            }
            const item = pending[i] as Buffer | bigint;
            if (typeof item === 'bigint') this.keepalive(item);
            else this.handle(item);
          }
          if (!this.blocked && !this.failed) this.opts.resume();
        },
        (err: unknown) => this.fail(err),
      );
      return;
    }
    this.setRelation(msg, ref, info);
  }

  /**
   * Load `oids` and then what they depend on: a column's type can be an array of, or a
   * multirange over, a type that no column names and that is just as new. Without it the
   * converter would fall back to text ('{1,2}' elements as "1", "2"). Each OID is asked for
   * once, so a type missing from the catalog ends the loop instead of repeating it.
   */
  private async loadTypesWithDependencies(oids: number[]): Promise<void> {
    const requested = new Set<number>();
    let batch = oids;
    while (batch.length > 0) {
      for (const oid of batch) requested.add(oid);
      await this.opts.loadTypes(batch);
      batch = this.opts.types.missingDependencies(oids).filter((oid) => !requested.has(oid));
    }
  }

  private setRelation(msg: Extract<PgOutputMessage, { tag: 'relation' }>, ref: string, info: TableInfo): void {
    const names = msg.columns.map((c) => c.name);
    const keyIndexes = info.keyColumns.map((k) => {
      const i = names.indexOf(k);
      if (i < 0) {
        throw new DecodeError('NO_KEY', `${ref}: key column "${k}" is not among the published columns (${names.join(', ')})`);
      }
      return i;
    });
    // Through stringifyLossless, not JSON.stringify: names may hold characters SQS refuses raw.
    const namesJson = `"schema":${stringifyLossless(msg.schema)},"table":${stringifyLossless(msg.table)}`;
    const prefixes = names.map((n) => `${stringifyLossless(n)}:`);
    this.relations.set(msg.relationId, {
      ref,
      namesJson,
      names,
      prefixes,
      writers: msg.columns.map((c) => this.opts.types.writer(c.typeOid)),
      keyIndexes,
      jsonIndexes: msg.columns.flatMap((c, i) => (JSON_OIDS.has(this.opts.types.baseOid(c.typeOid)) ? [i] : [])),
      hashPrefix: tablePrefixHash(ref),
      watched: (this.watchedRefs.get(ref) ?? 0) > 0,
      loadJson: this.loadJsonByRef.get(ref) ?? '',
    });
  }

  /** Opens (`on`) or closes one bootstrap window on `ref`; windows on one table may overlap. */
  watch(ref: string, on: boolean): void {
    const count = Math.max(0, (this.watchedRefs.get(ref) ?? 0) + (on ? 1 : -1));
    if (count === 0) this.watchedRefs.delete(ref);
    else this.watchedRefs.set(ref, count);
    for (const rel of this.relations.values()) if (rel !== null && rel.ref === ref) rel.watched = count > 0;
  }

  /** From now on every change of `ref` carries `load` (a bootstrap of it under way); undefined ends that. */
  stampLoad(ref: string, load: string | undefined): void {
    const json = load === undefined ? '' : `,"load":${stringifyLossless(load)}`;
    if (json === '') this.loadJsonByRef.delete(ref);
    else this.loadJsonByRef.set(ref, json);
    for (const rel of this.relations.values()) if (rel !== null && rel.ref === ref) rel.loadJson = json;
  }

  private relation(id: number): Relation | null {
    const rel = this.relations.get(id);
    if (rel === undefined) throw new DecodeError('UNKNOWN_RELATION', `change for relation oid ${id} before its Relation message`);
    return rel;
  }

  private requireTx(): OpenTx {
    if (!this.tx) throw new DecodeError('PROTOCOL', 'change outside a transaction');
    return this.tx;
  }

  private onRowChange(msg: Extract<PgOutputMessage, { tag: 'insert' | 'update' | 'delete' }>): void {
    const rel = this.relation(msg.relationId);
    const tx = this.requireTx();
    if (rel === null) return;
    const seq = tx.seq++;

    let after: Fragments | null = null;
    let before: Fragments | null = null;
    let unchanged: string[] | undefined;
    let jsonNullsAfter: string[] | undefined;
    let jsonNullsBefore: string[] | undefined;
    let keySource: Fragments;
    let oldKeySource: Fragments | undefined;

    if (msg.tag === 'delete') {
      if (msg.oldTuple) {
        before = this.fragments(rel, msg.oldTuple, null);
        jsonNullsBefore = this.jsonNulls(rel, msg.oldTuple);
        keySource = before;
      } else {
        keySource = this.keyFragments(rel, msg.keyTuple as Tuple);
      }
    } else {
      const oldTuple = msg.tag === 'update' ? msg.oldTuple : null;
      if (oldTuple) {
        before = this.fragments(rel, oldTuple, null);
        jsonNullsBefore = this.jsonNulls(rel, oldTuple);
      }
      after = this.fragments(rel, msg.newTuple, before);
      jsonNullsAfter = this.jsonNulls(rel, msg.newTuple);
      keySource = after;
      for (let i = 0; i < after.length; i++) {
        if (after[i] === undefined) (unchanged ??= []).push(rel.names[i] as string);
      }
      if (msg.tag === 'update') {
        const previous = msg.keyTuple ? this.keyFragments(rel, msg.keyTuple) : before;
        if (previous) {
          if (unchanged) {
            // A TOASTed key column that did not change is only in the old key.
            keySource = after.slice();
            for (const i of rel.keyIndexes) if (keySource[i] === undefined) keySource[i] = previous[i];
          }
          for (const i of rel.keyIndexes) {
            if (previous[i] !== undefined && keySource[i] !== undefined && previous[i] !== keySource[i]) {
              oldKeySource = previous;
              break;
            }
          }
        }
      }
    }

    const keyJson = this.objectJson(rel, keySource, rel.keyIndexes, true);
    if (oldKeySource) {
      const oldKeyJson = this.objectJson(rel, oldKeySource, rel.keyIndexes, true);
      if (rel.watched) {
        const watcher = this.opts.watcher as StreamWatcher;
        watcher.change(rel.ref, tx.xid, oldKeyJson, false);
        watcher.change(rel.ref, tx.xid, keyJson, unchanged !== undefined);
      }
      this.emitKeyChange(rel, tx, seq, keyJson, oldKeyJson, after as Fragments, before, unchanged, jsonNullsAfter, jsonNullsBefore);
      return;
    }
    if (rel.watched) (this.opts.watcher as StreamWatcher).change(rel.ref, tx.xid, keyJson, unchanged !== undefined);
    let extra = '';
    if (unchanged) extra += `,"unchanged":${stringifyLossless(unchanged)}`;
    if (jsonNullsAfter || jsonNullsBefore) extra += `,"jsonNulls":${stringifyLossless({ after: jsonNullsAfter, before: jsonNullsBefore })}`;
    const json =
      `{"v":1,"op":"${msg.tag}",${rel.namesJson},"key":${keyJson}` +
      `,"after":${after ? this.objectJson(rel, after, null, false) : 'null'},"before":${before ? this.objectJson(rel, before, null, false) : 'null'}${extra}${rel.loadJson}` +
      `,"position":{"commitLsn":"${tx.commitLsnText}","seq":${seq}},"tx":${tx.txJson}}`;
    this.emit(this.partitionOf(rel, keyJson), json, seq);
  }

  /**
   * An UPDATE that changed the key ends one node and begins another. Each half travels with
   * its own node's other changes, so no consumer can apply it out of order against them: a
   * delete of the old key (with `newKey`) in the old key's partition, then an insert of the new
   * key (with `oldKey`) in the new key's, at consecutive positions (seq, seq + 1).
   */
  private emitKeyChange(
    rel: Relation,
    tx: OpenTx,
    seq: number,
    keyJson: string,
    oldKeyJson: string,
    after: Fragments,
    before: Fragments | null,
    unchanged: string[] | undefined,
    jsonNullsAfter: string[] | undefined,
    jsonNullsBefore: string[] | undefined,
  ): void {
    const insertSeq = tx.seq++;
    const removal =
      `{"v":1,"op":"delete",${rel.namesJson},"key":${oldKeyJson},"newKey":${keyJson}` +
      `,"after":null,"before":${before ? this.objectJson(rel, before, null, false) : 'null'}` +
      (jsonNullsBefore ? `,"jsonNulls":${stringifyLossless({ before: jsonNullsBefore })}` : '') +
      `${rel.loadJson},"position":{"commitLsn":"${tx.commitLsnText}","seq":${seq}},"tx":${tx.txJson}}`;
    const arrival =
      `{"v":1,"op":"insert",${rel.namesJson},"key":${keyJson},"oldKey":${oldKeyJson}` +
      `,"after":${this.objectJson(rel, after, null, false)},"before":null` +
      (unchanged ? `,"unchanged":${stringifyLossless(unchanged)}` : '') +
      (jsonNullsAfter ? `,"jsonNulls":${stringifyLossless({ after: jsonNullsAfter })}` : '') +
      `${rel.loadJson},"position":{"commitLsn":"${tx.commitLsnText}","seq":${insertSeq}},"tx":${tx.txJson}}`;
    this.emit(this.partitionOf(rel, oldKeyJson), removal, seq);
    this.emit(this.partitionOf(rel, keyJson), arrival, insertSeq);
  }

  private partitionOf(rel: Relation, keyJson: string): number {
    return mix32(fnv1a(keyJson, rel.hashPrefix)) % this.opts.partitions;
  }

  private emit(partition: number, json: string, seq: number): void {
    // Measuring also flattens the string V8 built by concatenation, while it is young. Left
    // a rope of small pieces inside an open batch, it is promoted, and collecting and finally
    // joining it cost far more (measured: 107k → 191k changes/s, GC from 47% of CPU).
    const bytes = Buffer.byteLength(json);
    this.changes++;
    this.opts.sink.change(partition, json, bytes, seq);
  }

  /**
   * A logical message of a configured prefix: a `message` change in the prefix's partition (so
   * one prefix's messages keep their order), inside its transaction when it is transactional,
   * else on its own at (its LSN, 0), which lies between the transactions around it.
   */
  private onMessage(msg: Extract<PgOutputMessage, { tag: 'message' }>): void {
    const text = isUtf8(msg.content);
    const body =
      `{"v":1,"op":"message","message":{"prefix":${stringifyLossless(msg.prefix)},"content":` +
      `${text ? stringifyLossless(msg.content.toString('utf8')) : `"${msg.content.toString('base64')}"`},"encoding":"${text ? 'utf8' : 'base64'}"` +
      `,"transactional":${msg.transactional}}`;
    const partition = messagePartition(msg.prefix, this.opts.partitions);
    if (msg.transactional) {
      const tx = this.requireTx();
      const seq = tx.seq++;
      this.emit(partition, `${body},"position":{"commitLsn":"${tx.commitLsnText}","seq":${seq}},"tx":${tx.txJson}}`, seq);
      return;
    }
    const json = `${body},"position":{"commitLsn":"${formatLsn(msg.lsn)}","seq":0},"tx":null}`;
    this.changes++;
    this.opts.sink.standalone(partition, json, Buffer.byteLength(json), msg.lsn);
  }

  private onTruncate(msg: Extract<PgOutputMessage, { tag: 'truncate' }>): void {
    const tx = this.requireTx();
    for (const id of msg.relationIds) {
      const rel = this.relation(id);
      if (rel === null) continue;
      // Watched or not: a truncate during a load starts the load over.
      this.opts.watcher?.truncate(rel.ref, tx.xid);
      const seq = tx.seq++;
      const json =
        `{"v":1,"op":"truncate",${rel.namesJson},"key":null,"after":null,"before":null` +
        `,"truncate":{"cascade":${msg.cascade},"restartIdentity":${msg.restartIdentity}}${rel.loadJson}` +
        `,"position":{"commitLsn":"${tx.commitLsnText}","seq":${seq}},"tx":${tx.txJson}}`;
      this.changes++;
      this.opts.sink.broadcast(json, Buffer.byteLength(json), seq);
    }
  }

  /**
   * The monitor's notice that changes were lost (written with pg_logical_emit_message in a
   * transaction, so it has a position): one `gap` change per configured table it names, sent
   * to every partition like a truncate, so it is ordered against every node of the table.
   */
  private onGapNotice(content: Buffer): void {
    const tx = this.requireTx();
    let notice: GapNotice;
    try {
      notice = parseGapNotice(content.toString('utf8'));
    } catch (err) {
      throw new DecodeError('BAD_VALUE', `pgrelay.gap message: ${(err as Error).message}`, { cause: err });
    }
    if (this.opts.slotName !== undefined && notice.slot !== this.opts.slotName) return;
    const gapJson = stringifyLossless({ reason: notice.reason, afterLsn: notice.afterLsn, untilLsn: notice.untilLsn, repair: notice.repair });
    for (const name of notice.tables) {
      const info = this.opts.tables.get(name);
      if (info === undefined) continue;
      const seq = tx.seq++;
      const json =
        `{"v":1,"op":"gap","schema":${stringifyLossless(info.schema)},"table":${stringifyLossless(info.table)},"key":null,"after":null,"before":null` +
        `,"gap":${gapJson},"position":{"commitLsn":"${tx.commitLsnText}","seq":${seq}},"tx":${tx.txJson}}`;
      this.changes++;
      this.opts.sink.broadcast(json, Buffer.byteLength(json), seq);
    }
  }

  /**
   * A tuple's values as JSON fragments. Unchanged TOAST values are taken from `old` when it
   * has them (REPLICA IDENTITY FULL), else left undefined.
   */
  private fragments(rel: Relation, tuple: Tuple, old: Fragments | null): Fragments {
    const n = Math.min(tuple.length, rel.names.length);
    const out: Fragments = new Array(n);
    for (let i = 0; i < n; i++) {
      const v = tuple[i];
      if (typeof v === 'string') out[i] = this.write(rel, i, v);
      else if (v === NULL) out[i] = 'null';
      else out[i] = old ? old[i] : undefined; // UNCHANGED_TOAST
    }
    return out;
  }

  /** Only the key columns of an identity ('K') tuple carry values. */
  private keyFragments(rel: Relation, tuple: Tuple): Fragments {
    const out: Fragments = new Array(rel.names.length);
    for (const i of rel.keyIndexes) {
      const v = tuple[i];
      if (typeof v === 'string') out[i] = this.write(rel, i, v);
      else if (v === NULL) out[i] = 'null';
    }
    return out;
  }

  /** json/jsonb columns holding the JSON literal null (SQL NULL is not listed). */
  private jsonNulls(rel: Relation, tuple: Tuple): string[] | undefined {
    let found: string[] | undefined;
    for (const i of rel.jsonIndexes) {
      const v = tuple[i];
      if (typeof v === 'string' && (v === 'null' || v.trim() === 'null')) (found ??= []).push(rel.names[i] as string);
    }
    return found;
  }

  private write(rel: Relation, i: number, text: string): string {
    try {
      return (rel.writers[i] as ValueWriter)(text);
    } catch (err) {
      if (err instanceof DecodeError) {
        throw new DecodeError(err.reason, `${rel.ref}.${rel.names[i]}: ${err.message}`, { cause: err });
      }
      throw err;
    }
  }

  /** `{"col":value,…}` over `indexes` (all columns when null), skipping absent values. */
  private objectJson(rel: Relation, row: Fragments, indexes: number[] | null, isKey: boolean): string {
    let out = '{';
    const n = indexes ? indexes.length : row.length;
    for (let k = 0; k < n; k++) {
      const i = indexes ? (indexes[k] as number) : k;
      const value = row[i];
      if (value === undefined) {
        if (isKey) {
          throw new DecodeError('NO_KEY', `${rel.ref}: the change does not carry key column "${rel.names[i]}"; set REPLICA IDENTITY FULL or a key that PostgreSQL sends`);
        }
        continue;
      }
      if (out.length > 1) out += ',';
      out += (rel.prefixes[i] as string) + value;
    }
    return out + '}';
  }
}
