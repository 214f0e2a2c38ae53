/**
 * pgoutput → ChangeEvent. Keeps the relation cache (a new Relation message replaces an
 * entry, which is how ALTER TABLE mid-stream arrives), picks each change's key, fills
 * unchanged TOAST columns from a REPLICA IDENTITY FULL old row or names them in
 * `unchanged`, and serializes the event once, straight to the JSON text the batcher ships.
 */
import { DecodeError } from '#core/errors.ts';
import { tableKey } from '#core/identifiers.ts';
import { partitionOf } from '#core/partition.ts';
import { formatLsn, pgMicrosToIso } from '#core/position.ts';
import { RawJson, stringifyLossless, type TypeRegistry, type ValueConverter } from '#core/values.ts';
import { NULL, UNCHANGED_TOAST, parsePgOutput, type PgOutputMessage, type RelationColumn, type Tuple } from './pgoutput.ts';

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
  /** `json` is one serialized ChangeEvent; `partition` its message group. */
  change(partition: number, json: string, seq: number): void;
  /** A change that belongs to every partition (TRUNCATE orders against all nodes of a table). */
  broadcast(json: string, seq: number): void;
  commit(endLsn: bigint): void;
  /** A keepalive position, in stream order with the data around it. */
  keepalive(walEnd: bigint): void;
  message(prefix: string, content: Buffer, lsn: bigint, transactional: boolean): void;
}

interface Relation {
  ref: string; // schema.table
  schemaJson: string;
  tableJson: string;
  columns: RelationColumn[];
  names: string[];
  converters: ValueConverter[];
  keyIndexes: number[];
  jsonColumn: boolean[];
}

export interface DecoderOptions {
  types: TypeRegistry;
  /** Configured tables by `schema.table`; changes of other tables are skipped. */
  tables: Map<string, TableInfo>;
  partitions: number;
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
        this.opts.sink.message(msg.prefix, msg.content, msg.lsn, msg.transactional);
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
    this.relations.set(msg.relationId, {
      ref,
      // Through stringifyLossless, not JSON.stringify: names may hold characters SQS refuses raw.
      schemaJson: stringifyLossless(msg.schema),
      tableJson: stringifyLossless(msg.table),
      columns: msg.columns,
      names,
      converters: msg.columns.map((c) => this.opts.types.converter(c.typeOid)),
      keyIndexes,
      jsonColumn: msg.columns.map((c) => JSON_OIDS.has(this.opts.types.baseOid(c.typeOid))),
    });
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

    let after: Record<string, unknown> | null = null;
    let before: Record<string, unknown> | null = null;
    let unchanged: string[] | undefined;
    const jsonNullsAfter: string[] = [];
    const jsonNullsBefore: string[] = [];
    let keySource: Record<string, unknown>;
    let oldKey: Record<string, unknown> | undefined;

    if (msg.tag === 'delete') {
      if (msg.oldTuple) {
        before = this.toRow(rel, msg.oldTuple, null, jsonNullsBefore, undefined);
        keySource = before;
      } else {
        keySource = this.keyRow(rel, msg.keyTuple as Tuple);
      }
    } else {
      const oldTuple = msg.tag === 'update' ? msg.oldTuple : null;
      if (oldTuple) before = this.toRow(rel, oldTuple, null, jsonNullsBefore, undefined);
      const missing: string[] = [];
      after = this.toRow(rel, msg.newTuple, before, jsonNullsAfter, missing);
      if (missing.length > 0) unchanged = missing;
      keySource = after;
      if (msg.tag === 'update') {
        const previous = msg.keyTuple ? this.keyRow(rel, msg.keyTuple) : before;
        if (previous && !this.sameKey(rel, previous, after)) oldKey = this.pickKey(rel, previous);
        if (unchanged && previous) {
          // A TOASTed key column that did not change is only in the old key.
          for (const i of rel.keyIndexes) {
            const name = rel.names[i] as string;
            if (!(name in after) && name in previous) keySource = { ...keySource, [name]: previous[name] };
          }
        }
      }
    }

    const key = this.pickKey(rel, keySource);
    const keyJson = stringifyLossless(key);
    let extra = '';
    if (oldKey) extra += `,"oldKey":${stringifyLossless(oldKey)}`;
    if (unchanged) extra += `,"unchanged":${stringifyLossless(unchanged)}`;
    if (jsonNullsAfter.length > 0 || jsonNullsBefore.length > 0) {
      extra += `,"jsonNulls":${stringifyLossless({
        after: jsonNullsAfter.length > 0 ? jsonNullsAfter : undefined,
        before: jsonNullsBefore.length > 0 ? jsonNullsBefore : undefined,
      })}`;
    }
    const json =
      `{"v":1,"op":"${msg.tag}","schema":${rel.schemaJson},"table":${rel.tableJson},"key":${keyJson}` +
      `,"after":${after ? stringifyLossless(after) : 'null'},"before":${before ? stringifyLossless(before) : 'null'}${extra}` +
      `,"position":{"commitLsn":"${tx.commitLsnText}","seq":${seq}},"tx":${tx.txJson}}`;
    this.changes++;
    this.opts.sink.change(partitionOf(rel.ref, keyJson, this.opts.partitions), json, seq);
  }

  private onTruncate(msg: Extract<PgOutputMessage, { tag: 'truncate' }>): void {
    const tx = this.requireTx();
    for (const id of msg.relationIds) {
      const rel = this.relation(id);
      if (rel === null) continue;
      const seq = tx.seq++;
      const json =
        `{"v":1,"op":"truncate","schema":${rel.schemaJson},"table":${rel.tableJson},"key":null,"after":null,"before":null` +
        `,"truncate":{"cascade":${msg.cascade},"restartIdentity":${msg.restartIdentity}}` +
        `,"position":{"commitLsn":"${tx.commitLsnText}","seq":${seq}},"tx":${tx.txJson}}`;
      this.changes++;
      this.opts.sink.broadcast(json, seq);
    }
  }

  /**
   * Convert a tuple to a row. Unchanged TOAST columns are taken from `old` when it has
   * them, else left out and their names pushed to `missing`.
   */
  private toRow(
    rel: Relation,
    tuple: Tuple,
    old: Record<string, unknown> | null,
    jsonNulls: string[],
    missing: string[] | undefined,
  ): Record<string, unknown> {
    const row: Record<string, unknown> = {};
    const n = Math.min(tuple.length, rel.names.length);
    for (let i = 0; i < n; i++) {
      const v = tuple[i];
      const name = rel.names[i] as string;
      if (typeof v === 'string') {
        const converted = this.convert(rel, i, v);
        row[name] = converted;
        if (rel.jsonColumn[i] && converted instanceof RawJson && converted.text.trim() === 'null') jsonNulls.push(name);
      } else if (v === NULL) {
        row[name] = null;
      } else if (v === UNCHANGED_TOAST) {
        if (old && name in old) row[name] = old[name];
        else missing?.push(name);
      }
    }
    return row;
  }

  private convert(rel: Relation, i: number, text: string): unknown {
    try {
      return (rel.converters[i] as ValueConverter)(text);
    } catch (err) {
      if (err instanceof DecodeError) {
        throw new DecodeError(err.code, `${rel.ref}.${rel.names[i]}: ${err.message}`, { cause: err });
      }
      throw err;
    }
  }

  /** Only the key columns of an identity ('K') tuple carry values. */
  private keyRow(rel: Relation, tuple: Tuple): Record<string, unknown> {
    const row: Record<string, unknown> = {};
    for (const i of rel.keyIndexes) {
      const v = tuple[i];
      const name = rel.names[i] as string;
      if (typeof v === 'string') row[name] = this.convert(rel, i, v);
      else if (v === NULL) row[name] = null;
    }
    return row;
  }

  private pickKey(rel: Relation, row: Record<string, unknown>): Record<string, unknown> {
    const key: Record<string, unknown> = {};
    for (const i of rel.keyIndexes) {
      const name = rel.names[i] as string;
      if (!(name in row)) {
        throw new DecodeError('NO_KEY', `${rel.ref}: the change does not carry key column "${name}"; set REPLICA IDENTITY FULL or a key that PostgreSQL sends`);
      }
      key[name] = row[name];
    }
    return key;
  }

  private sameKey(rel: Relation, a: Record<string, unknown>, b: Record<string, unknown>): boolean {
    for (const i of rel.keyIndexes) {
      const name = rel.names[i] as string;
      if (!(name in a) || !(name in b)) continue;
      if (stringifyLossless(a[name]) !== stringifyLossless(b[name])) return false;
    }
    return true;
  }
}
