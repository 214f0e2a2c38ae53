/**
 * A chunk's rows as `snapshot` ChangeEvents, written from the COPY bytes at the chunk's mark.
 * COPY's text is each type's output text, what pgoutput sends, so a value's JSON is what the
 * decoder writes for it. Each event is written once, straight into one scratch buffer, and
 * taken out as one flat string: most values are copied byte for byte (integers, numerics,
 * plain ASCII text), the rest go through the registry's value writers as in the stream.
 */
import { DecodeError } from '#core/errors.ts';
import { fnv1a, mix32, tablePrefixHash } from '#core/partition.ts';
import { PG_OID } from '#core/values/catalog.ts';
import { quote, stringifyLossless } from '#core/values/lossless-json.ts';
import type { TypeRegistry, ValueWriter } from '#core/values/registry.ts';
import type { TableShape } from './chunk-reader.ts';
import type { CopyRows } from './copy-rows.ts';

const JSON_OIDS = new Set<number>([PG_OID.json, PG_OID.jsonb]);

/** How a column's value is written. */
const enum Mode {
  /** A JSON number as sent (int2, int4, oid, xid, cid): copied after a digit check. */
  Integer,
  /** A JSON string of the text as sent (int8, xid8): copied after a digit check. */
  BigInt,
  /** A JSON string of the text as sent (numeric): copied after a syntax check. */
  Decimal,
  /** A JSON string of the text (text, varchar, uuid, enums, …): copied when it is printable ASCII. */
  Text,
  /** date, timestamp, timestamptz in the common shape (4-digit year, UTC offset): rewritten in place. */
  Date,
  Timestamp,
  TimestampTz,
  /** Through the value writer (arrays, json, BC dates, anything else). */
  Writer,
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MINUS = 0x2d;
const DOT = 0x2e;

export interface SnapshotKey {
  /** The key object's JSON, as the decoder writes it for the same row: windows match on it. */
  json: string;
  partition: number;
}

export class SnapshotEncoder {
  private readonly writers: ValueWriter[];
  private readonly modes: Mode[];
  /** `"name":` of each column, as bytes. */
  private readonly names: Buffer[];
  private readonly keyPrefixes: string[];
  private readonly jsonIndexes: number[];
  private readonly head: Buffer;
  private readonly tail: Buffer;
  private readonly hashPrefix: number;
  private readonly starts: Int32Array;
  private readonly stops: Int32Array;
  private readonly escaped: Uint8Array;
  private out = Buffer.allocUnsafe(64 * 1024);

  constructor(
    private readonly shape: TableShape,
    types: TypeRegistry,
    private readonly partitions: number,
    loadId: string,
  ) {
    const n = shape.columns.length;
    this.writers = shape.columns.map((c) => types.writer(c.typeOid));
    this.modes = shape.columns.map((c, i) => modeOf(types, c.typeOid, this.writers[i] as ValueWriter));
    this.names = shape.columns.map((c) => Buffer.from(`${stringifyLossless(c.name)}:`));
    this.keyPrefixes = shape.columns.map((c) => `${stringifyLossless(c.name)}:`);
    this.jsonIndexes = shape.columns.flatMap((c, i) => (JSON_OIDS.has(types.baseOid(c.typeOid)) ? [i] : []));
    this.head = Buffer.from(`{"v":1,"op":"snapshot","schema":${stringifyLossless(shape.table.schema)},"table":${stringifyLossless(shape.table.table)},"key":`);
    this.tail = Buffer.from(`,"load":${stringifyLossless(loadId)},"position":{"commitLsn":"`);
    this.hashPrefix = tablePrefixHash(shape.ref);
    this.starts = new Int32Array(n);
    this.stops = new Int32Array(n);
    this.escaped = new Uint8Array(n);
  }

  /** Splits row `i` into its columns; `key`, `keyTexts` and `event` then read this row. */
  load(rows: CopyRows, i: number): void {
    rows.split(i, this.starts, this.stops, this.escaped);
  }

  /** The loaded row's key: its JSON and its partition. */
  key(rows: CopyRows): SnapshotKey {
    let json = '{';
    for (const i of this.shape.keyIndexes) {
      if (json.length > 1) json += ',';
      json += (this.keyPrefixes[i] as string) + this.write(i, this.text(rows, i));
    }
    json += '}';
    return { json, partition: mix32(fnv1a(json, this.hashPrefix)) % this.partitions };
  }

  /** The loaded row's key columns as text, for the next chunk's bound or a re-read. */
  keyTexts(rows: CopyRows): string[] {
    return this.shape.keyIndexes.map((i) => this.text(rows, i) as string);
  }

  /** The loaded row's whole event at position (`lsnText`, `seq`), and its UTF-8 length. */
  event(rows: CopyRows, keyJson: string, lsnText: string, seq: number): { json: string; bytes: number } {
    const src = rows.buffer;
    const n = this.modes.length;
    // A bound on the event's size: every byte may become a 6-byte escape in the slow paths'
    // worst case, which is checked there; here only what the fast paths copy.
    let need = this.head.length + keyJson.length * 3 + this.tail.length + 128;
    for (let c = 0; c < n; c++) need += (this.names[c] as Buffer).length + (this.stops[c] as number) - (this.starts[c] as number) + 16;
    this.reserve(0, need);
    let at = copyBytes(this.head, 0, this.head.length, this.out, 0);
    at = this.text8(at, keyJson);
    at = this.text8(at, ',"after":{');
    let jsonNulls: string[] | undefined;
    let end = 0;
    for (let c = 0; c < n; c++) {
      if (c > 0) this.out[at++] = 0x2c; /* , */
      const name = this.names[c] as Buffer;
      at += copyBytes(name, 0, name.length, this.out, at);
      const start = this.starts[c] as number;
      const stop = this.stops[c] as number;
      const escaped = this.escaped[c] === 1;
      if (rows.isNull(start, stop, escaped)) {
        at = this.text8(at, 'null');
        continue;
      }
      const mode = this.modes[c] as Mode;
      if (!escaped && mode === Mode.Integer && isInteger(src, start, stop)) {
        at += copyBytes(src, start, stop, this.out, at);
      } else if (!escaped && ((mode === Mode.BigInt && isDecimal(src, start, stop, false)) || (mode === Mode.Decimal && isDecimal(src, start, stop, true)))) {
        this.out[at++] = QUOTE;
        at += copyBytes(src, start, stop, this.out, at);
        this.out[at++] = QUOTE;
      } else if (!escaped && mode === Mode.Text && isPlainAscii(src, start, stop)) {
        this.out[at++] = QUOTE;
        at += copyBytes(src, start, stop, this.out, at);
        this.out[at++] = QUOTE;
      } else if (!escaped && mode >= Mode.Date && mode <= Mode.TimestampTz && (end = dateTime(src, start, stop, mode, this.out, at)) > 0) {
        at = end;
      } else {
        const text = rows.text(start, stop, escaped) as string;
        const json = this.write(c, text);
        this.reserve(at, Buffer.byteLength(json) + (n - c) * 8 + 256 + this.remaining(c + 1));
        at = this.text8(at, json);
      }
    }
    for (const c of this.jsonIndexes) {
      const text = this.text(rows, c);
      if (text !== null && text.trim() === 'null') (jsonNulls ??= []).push(this.shape.columns[c]?.name as string);
    }
    at = this.text8(at, '},"before":null');
    if (jsonNulls !== undefined) {
      const extra = `,"jsonNulls":${stringifyLossless({ after: jsonNulls })}`;
      this.reserve(at, Buffer.byteLength(extra) + this.tail.length + 64);
      at = this.text8(at, extra);
    }
    at += copyBytes(this.tail, 0, this.tail.length, this.out, at);
    at = this.text8(at, `${lsnText}","seq":${seq}},"tx":null}`);
    return { json: this.out.toString('utf8', 0, at), bytes: at };
  }

  /** Column `c`'s text (null for NULL), COPY's escapes undone. */
  private text(rows: CopyRows, c: number): string | null {
    return rows.text(this.starts[c] as number, this.stops[c] as number, this.escaped[c] === 1);
  }

  /** Bytes the columns from `from` on take at most on their fast paths. */
  private remaining(from: number): number {
    let sum = 0;
    for (let c = from; c < this.modes.length; c++) sum += (this.names[c] as Buffer).length + (this.stops[c] as number) - (this.starts[c] as number) + 16;
    return sum;
  }

  /** Makes room for `bytes` more after `at`, keeping what is written. */
  private reserve(at: number, bytes: number): void {
    if (at + bytes <= this.out.length) return;
    let size = this.out.length * 2;
    while (size < at + bytes) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.out.copy(grown, 0, 0, at);
    this.out = grown;
  }

  /** Writes `text` as UTF-8 at `at` (room reserved); returns where it ends. */
  private text8(at: number, text: string): number {
    const out = this.out;
    const n = text.length;
    if (n > 64) return at + out.write(text, at, 'utf8');
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) return at - i + out.write(text, at - i, 'utf8');
      out[at++] = c;
    }
    return at;
  }

  private write(i: number, text: string | null): string {
    if (text === null) return 'null';
    try {
      return (this.writers[i] as ValueWriter)(text);
    } catch (err) {
      if (err instanceof DecodeError) throw new DecodeError(err.reason, `${this.shape.ref}.${this.shape.columns[i]?.name}: ${err.message}`, { cause: err });
      throw err;
    }
  }
}

/**
 * Copies `src[from..to)` to `dst` at `at`; returns the count. Short spans in a loop: Buffer's
 * copy costs more in its argument checks than in copying a value's few bytes.
 */
function copyBytes(src: Buffer, from: number, to: number, dst: Buffer, at: number): number {
  const n = to - from;
  if (n > 64) return src.copy(dst, at, from, to);
  for (let i = 0; i < n; i++) dst[at + i] = src[from + i] as number;
  return n;
}

function modeOf(types: TypeRegistry, oid: number, writer: ValueWriter): Mode {
  if (writer === quote) return Mode.Text;
  // A domain is written like its base type, after the same check.
  switch (types.baseOid(oid)) {
    case PG_OID.int2:
    case PG_OID.int4:
    case PG_OID.oid:
    case PG_OID.xid:
    case PG_OID.cid:
      return Mode.Integer;
    case PG_OID.int8:
    case PG_OID.xid8:
      return Mode.BigInt;
    case PG_OID.numeric:
      return Mode.Decimal;
    case PG_OID.date:
      return Mode.Date;
    case PG_OID.timestamp:
      return Mode.Timestamp;
    case PG_OID.timestamptz:
      return Mode.TimestampTz;
    default:
      return Mode.Writer;
  }
}

function isDigitByte(b: number | undefined): boolean {
  return b !== undefined && b >= 0x30 && b <= 0x39;
}

/** '-'? 1–10 digits: what the int2/int4 converter accepts (anything else takes the writer, which says why). */
function isInteger(src: Buffer, start: number, stop: number): boolean {
  let i = src[start] === MINUS ? start + 1 : start;
  if (i === stop || stop - i > 10) return false;
  for (; i < stop; i++) if (!isDigitByte(src[i])) return false;
  return true;
}

/** '-'? digits, and ('.' digits)? when `fraction`: int8 text, numeric text without NaN or Infinity (those take the writer). */
function isDecimal(src: Buffer, start: number, stop: number, fraction: boolean): boolean {
  let i = src[start] === MINUS ? start + 1 : start;
  const intStart = i;
  while (i < stop && isDigitByte(src[i])) i++;
  if (i === intStart) return false;
  if (i === stop) return true;
  if (!fraction || src[i] !== DOT || i + 1 === stop) return false;
  for (i++; i < stop; i++) if (!isDigitByte(src[i])) return false;
  return true;
}

const FRACTION_DIGITS = 6;

/**
 * `YYYY-MM-DD[ HH:MM:SS[.f]][+00]` (what PostgreSQL prints under DateStyle=ISO, TimeZone=UTC
 * for years 1000–9999 AD) written at `at` as the date/time writers write it: quoted,
 * `T` between date and time, six fraction digits, `Z` for the UTC offset. Returns where it
 * ends, or 0 for any other shape (BC, infinity, 5-digit years, other offsets), which then
 * takes the writer.
 */
function dateTime(src: Buffer, start: number, stop: number, mode: Mode, out: Buffer, at: number): number {
  if (stop - start < 10 || !isDigitByte(src[start]) || src[start] === 0x30 /* year 0xxx: leave it to the writer */) return 0;
  for (const i of [1, 2, 3, 5, 6, 8, 9]) if (!isDigitByte(src[start + i])) return 0;
  if (src[start + 4] !== MINUS || src[start + 7] !== MINUS) return 0;
  let o = at;
  out[o++] = QUOTE;
  for (let i = 0; i < 10; i++) out[o++] = src[start + i] as number;
  if (mode === Mode.Date) {
    if (stop - start !== 10) return 0;
    out[o++] = QUOTE;
    return o;
  }
  let i = start + 10;
  if (stop - i < 9 || src[i] !== 0x20 || src[i + 3] !== 0x3a || src[i + 6] !== 0x3a) return 0;
  for (const d of [1, 2, 4, 5, 7, 8]) if (!isDigitByte(src[i + d])) return 0;
  out[o++] = 0x54; /* T */
  for (let d = 1; d <= 8; d++) out[o++] = src[i + d] as number;
  i += 9;
  out[o++] = DOT;
  let digits = 0;
  if (i < stop && src[i] === DOT) {
    i++;
    while (i < stop && isDigitByte(src[i]) && digits < FRACTION_DIGITS) {
      out[o++] = src[i++] as number;
      digits++;
    }
    if (digits === 0 || (i < stop && isDigitByte(src[i]))) return 0;
  }
  for (; digits < FRACTION_DIGITS; digits++) out[o++] = 0x30;
  if (mode === Mode.TimestampTz) {
    if (stop - i !== 3 || src[i] !== 0x2b /* + */ || src[i + 1] !== 0x30 || src[i + 2] !== 0x30) return 0;
    out[o++] = 0x5a; /* Z */
  } else if (i !== stop) return 0;
  out[o++] = QUOTE;
  return o;
}

/** Printable ASCII without a quote or a backslash: its JSON string is the bytes in quotes. */
function isPlainAscii(src: Buffer, start: number, stop: number): boolean {
  for (let i = start; i < stop; i++) {
    const b = src[i] as number;
    if (b < 0x20 || b > 0x7e || b === QUOTE || b === BACKSLASH) return false;
  }
  return true;
}
