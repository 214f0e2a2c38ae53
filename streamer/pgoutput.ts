/**
 * pgoutput protocol 1 messages, read straight from the bytes PostgreSQL sends, with every
 * column value kept as the raw text the server's output function produced. (The driver's
 * own parser runs pg's type parsers, which round timestamps and merge JSON null with SQL
 * NULL; we never let it see values.) Reference: "Logical Replication Message Formats" in
 * the PostgreSQL documentation.
 */
import { DecodeError } from '#core/errors.ts';

/** One column of a tuple: null, unchanged TOAST (not sent), or its text. */
export const NULL = 0;
export const UNCHANGED_TOAST = 1;
export type TupleValue = string | typeof NULL | typeof UNCHANGED_TOAST;
/** Values in column order; text values are strings, markers are the numbers above. */
export type Tuple = TupleValue[];

export interface RelationColumn {
  isKey: boolean;
  name: string;
  typeOid: number;
  typeMod: number;
}

export type PgOutputMessage =
  | { tag: 'begin'; finalLsn: bigint; commitTime: bigint; xid: number }
  | { tag: 'commit'; flags: number; commitLsn: bigint; endLsn: bigint; commitTime: bigint }
  | { tag: 'origin'; lsn: bigint; name: string }
  | { tag: 'relation'; relationId: number; schema: string; table: string; replicaIdentity: string; columns: RelationColumn[] }
  | { tag: 'type'; typeOid: number; schema: string; name: string }
  | { tag: 'insert'; relationId: number; newTuple: Tuple}
  | { tag: 'update'; relationId: number; keyTuple: Tuple | null; oldTuple: Tuple | null; newTuple: Tuple}
  | { tag: 'delete'; relationId: number; keyTuple: Tuple | null; oldTuple: Tuple | null}
  | { tag: 'truncate'; cascade: boolean; restartIdentity: boolean; relationIds: number[] }
  | { tag: 'message'; transactional: boolean; lsn: bigint; prefix: string; content: Buffer };

const TRUNCATE_CASCADE = 1;
const TRUNCATE_RESTART_IDENTITY = 2;

/**
 * Buffer#utf8Slice is what buf.toString('utf8', start, end) calls after checking its
 * arguments; our bounds are checked by need(). Calling it directly, as a method, saves ~8%
 * of the streamer's CPU (one call per column value). It is in every Node release; should it
 * ever go, HAS_UTF8_SLICE turns the reader back to toString.
 */
interface Utf8SliceBuffer extends Buffer {
  utf8Slice(start: number, end: number): string;
}
const HAS_UTF8_SLICE = typeof (Buffer.prototype as Partial<Utf8SliceBuffer>).utf8Slice === 'function';

class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new DecodeError('TRUNCATED_MESSAGE', `pgoutput message ended early (needed ${n} bytes at ${this.pos} of ${this.buf.length})`);
    }
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }
  i16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  i64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  /** A NUL-terminated string. */
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new DecodeError('TRUNCATED_MESSAGE', 'pgoutput string without terminator');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  tuple(): Tuple {
    const n = this.i16();
    const values: Tuple = new Array(n);
    const buf = this.buf;
    for (let i = 0; i < n; i++) {
      this.need(1);
      const kind = buf[this.pos++];
      if (kind === 0x74 /* t */) {
        const len = this.i32();
        this.need(len);
        values[i] = HAS_UTF8_SLICE ? (buf as Utf8SliceBuffer).utf8Slice(this.pos, this.pos + len) : buf.toString('utf8', this.pos, this.pos + len);
        this.pos += len;
      } else if (kind === 0x6e /* n */) {
        values[i] = NULL;
      } else if (kind === 0x75 /* u */) {
        values[i] = UNCHANGED_TOAST;
      } else if (kind === 0x62 /* b */) {
        throw new DecodeError('UNEXPECTED_TUPLE', 'binary tuple data received, but pgrelay requests text values');
      } else {
        throw new DecodeError('UNEXPECTED_TUPLE', `unknown tuple column kind 0x${(kind ?? 0).toString(16)}`);
      }
    }
    return values;
  }
}

export function parsePgOutput(buf: Buffer): PgOutputMessage {
  const r = new Reader(buf);
  const tag = r.u8();
  switch (tag) {
    case 0x42 /* B */:
      return { tag: 'begin', finalLsn: r.u64(), commitTime: r.i64(), xid: r.u32() };
    case 0x43 /* C */:
      return { tag: 'commit', flags: r.u8(), commitLsn: r.u64(), endLsn: r.u64(), commitTime: r.i64() };
    case 0x4f /* O */:
      return { tag: 'origin', lsn: r.u64(), name: r.cstring() };
    case 0x52 /* R */: {
      const relationId = r.u32();
      const schema = r.cstring();
      const table = r.cstring();
      const replicaIdentity = String.fromCharCode(r.u8());
      const n = r.i16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < n; i++) {
        const flags = r.u8();
        columns.push({ isKey: (flags & 1) === 1, name: r.cstring(), typeOid: r.u32(), typeMod: r.i32() });
      }
      return { tag: 'relation', relationId, schema, table, replicaIdentity, columns };
    }
    case 0x59 /* Y */:
      return { tag: 'type', typeOid: r.u32(), schema: r.cstring(), name: r.cstring() };
    case 0x49 /* I */: {
      const relationId = r.u32();
      const marker = r.u8();
      if (marker !== 0x4e) throw new DecodeError('PROTOCOL', `insert without new tuple (marker 0x${marker.toString(16)})`);
      const newTuple = r.tuple();
      return { tag: 'insert', relationId, newTuple };
    }
    case 0x55 /* U */: {
      const relationId = r.u32();
      let keyTuple: Tuple | null = null;
      let oldTuple: Tuple | null = null;
      let marker = r.u8();
      if (marker === 0x4b /* K */) {
        keyTuple = r.tuple();
        marker = r.u8();
      } else if (marker === 0x4f /* O */) {
        oldTuple = r.tuple();
        marker = r.u8();
      }
      if (marker !== 0x4e) throw new DecodeError('PROTOCOL', `update without new tuple (marker 0x${marker.toString(16)})`);
      const newTuple = r.tuple();
      return { tag: 'update', relationId, keyTuple, oldTuple, newTuple };
    }
    case 0x44 /* D */: {
      const relationId = r.u32();
      const marker = r.u8();
      if (marker === 0x4b) {
        const keyTuple = r.tuple();
        return { tag: 'delete', relationId, keyTuple, oldTuple: null };
      }
      if (marker === 0x4f) {
        const oldTuple = r.tuple();
        return { tag: 'delete', relationId, keyTuple: null, oldTuple };
      }
      throw new DecodeError('PROTOCOL', `delete without old tuple (marker 0x${marker.toString(16)})`);
    }
    case 0x54 /* T */: {
      const n = r.u32();
      const options = r.u8();
      const relationIds: number[] = [];
      for (let i = 0; i < n; i++) relationIds.push(r.u32());
      return {
        tag: 'truncate',
        cascade: (options & TRUNCATE_CASCADE) !== 0,
        restartIdentity: (options & TRUNCATE_RESTART_IDENTITY) !== 0,
        relationIds,
      };
    }
    case 0x4d /* M */: {
      const flags = r.u8();
      const lsn = r.u64();
      const prefix = r.cstring();
      const len = r.u32();
      return { tag: 'message', transactional: (flags & 1) === 1, lsn, prefix, content: r.bytes(len) };
    }
    default:
      throw new DecodeError('UNKNOWN_MESSAGE', `unknown pgoutput message type 0x${tag.toString(16)} ('${String.fromCharCode(tag)}')`);
  }
}
