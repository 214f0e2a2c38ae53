/**
 * pgoutput text → lossless JSON values (the README's type table is the table of every type).
 *
 * pgoutput sends each column as the text of the type's output function, in a walsender
 * session whose settings we fix: DateStyle=ISO,YMD, TimeZone=UTC, IntervalStyle=iso_8601,
 * extra_float_digits=3, bytea_output=hex. Converters here rely on exactly those formats and
 * throw DecodeError BAD_VALUE on anything else rather than guess: the streamer then stops
 * without acknowledging, so a misconfigured session loses nothing.
 *
 * Converters are built once per type OID (TypeRegistry.converter) and called per value, so
 * the hot ones scan with charCodeAt instead of regexes and never allocate more than the result.
 */
import { DecodeError } from '#core/errors.ts';

// ---------------------------------------------------------------------------------------
// Values and lossless serialization

/**
 * A json/jsonb value kept as the text PostgreSQL sent. Never JSON.parse'd, because that
 * rounds numbers beyond 2^53 and we promise lossless values.
 */
export class RawJson {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/**
 * What a converter produces: plain JSON, with json/jsonb values as RawJson, except elements of
 * json/jsonb arrays, which are strings (see jsonElementConverter).
 */
export type LosslessValue =
  | string
  | number
  | boolean
  | null
  | RawJson
  | LosslessValue[]
  | { [key: string]: LosslessValue };

/** True when a json/jsonb value is the JSON literal `null` (not SQL NULL). */
export function isJsonNullText(raw: RawJson): boolean {
  const text = raw.text;
  // Fast path: jsonb output is never padded.
  return text === 'null' || text.trim() === 'null';
}

/**
 * JSON.stringify for our values, except that a RawJson is written verbatim (trimmed) and
 * -0 is written as `-0` (JSON.stringify would write `0` and lose a float8's sign), and that
 * characters an SQS message body may not hold raw are written as \uXXXX escapes (see
 * escapeForSqs): the same JSON value, in a body SQS accepts.
 * Like JSON.stringify it skips undefined/function/symbol properties, writes them as null in
 * arrays, writes NaN/±Infinity numbers as null, honours toJSON() and throws on bigint.
 * Unlike it, a top-level value that has no JSON form (undefined) throws a TypeError, and a
 * cyclic structure ends in a RangeError (stack overflow) instead of a TypeError.
 */
export function stringifyLossless(value: unknown): string {
  const out = writeValue(value);
  if (out === undefined) throw new TypeError(`stringifyLossless: ${typeof value} has no JSON form`);
  return out;
}

function writeValue(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      if (value === 0) return 1 / value < 0 ? '-0' : '0';
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (value instanceof RawJson) return escapeForSqs(value.text.trim());
      if (Array.isArray(value)) return writeArray(value);
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
        return writeValue((value as { toJSON: () => unknown }).toJSON());
      }
      return writeObject(value as Record<string, unknown>);
    case 'bigint':
      throw new TypeError('stringifyLossless: cannot serialize a bigint');
    default:
      return undefined;
  }
}

/**
 * JSON string literal. Short strings that need no escaping (most column values) skip the
 * native call, which costs more than a scan at these lengths; the rest go to JSON.stringify
 * and escapeForSqs (hence the tests for surrogates and U+FFFE/U+FFFF).
 */
function quote(text: string): string {
  const n = text.length;
  if (n > 64) return escapeForSqs(JSON.stringify(text));
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 32 || c === 34 || c === 92 || (c >= 0xd800 && (c <= 0xdfff || c >= 0xfffe))) {
      return escapeForSqs(JSON.stringify(text));
    }
  }
  return '"' + text + '"';
}

/**
 * SQS refuses a message body holding U+FFFE or U+FFFF (PostgreSQL text and jsonb may hold
 * both), and the local emulator, which checks UTF-16 code units, also every character past
 * U+FFFF (emoji). In JSON text these can only occur inside strings, where `\uXXXX` (a
 * surrogate pair for the latter) stands for the same character.
 */
const SQS_UNSAFE = /[\ud800-\udfff\ufffe\uffff]/;
const SQS_UNSAFE_ALL = /[\ud800-\udfff\ufffe\uffff]/g;

function escapeForSqs(json: string): string {
  if (!SQS_UNSAFE.test(json)) return json;
  return json.replace(SQS_UNSAFE_ALL, (unit) => '\\u' + unit.charCodeAt(0).toString(16));
}

/** Keys are column names, a small set repeated in every row: quote each once. */
const quotedKeys = new Map<string, string>();

function quoteKey(key: string): string {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = quote(key);
    if (quotedKeys.size < 10_000) quotedKeys.set(key, quoted);
  }
  return quoted;
}

function writeArray(items: readonly unknown[]): string {
  let out = '[';
  for (let i = 0; i < items.length; i++) {
    if (i > 0) out += ',';
    out += writeValue(items[i]) ?? 'null';
  }
  return out + ']';
}

function writeObject(object: Record<string, unknown>): string {
  let out = '{';
  let first = true;
  const keys = Object.keys(object);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const written = writeValue(object[key]);
    if (written === undefined) continue;
    if (first) first = false;
    else out += ',';
    out += quoteKey(key) + ':' + written;
  }
  return out + '}';
}

// ---------------------------------------------------------------------------------------
// Type catalog

/** One row of pg_type (plus pg_range), as loaded once by the streamer. */
export interface PgType {
  oid: number;
  name: string;
  /** pg_type.typtype: b base, c composite, d domain, e enum, p pseudo, r range, m multirange. */
  kind: string;
  /** pg_type.typcategory ('A' for arrays). */
  category: string;
  /** pg_type.typelem, 0 if none. */
  elemOid: number;
  /** pg_type.typbasetype for domains, 0 otherwise. */
  baseOid: number;
  /** pg_range.rngsubtype for a range, 0 otherwise. */
  rangeSubtypeOid: number;
  /** For a multirange: its range type's OID, 0 otherwise. */
  multirangeRangeOid: number;
  /** pg_type.typdelim: separates array elements (',' except ';' for box). */
  delimiter: string;
}

/**
 * Every type of the connected database, built-in and user-defined. Multiranges are matched
 * through to_jsonb() so the query also runs on PostgreSQL 13 and older, whose pg_range has
 * no rngmultitypid column (there, no row matches and no type is a multirange).
 */
export const TYPE_CATALOG_SQL = `SELECT t.oid AS oid,
       t.typname AS name,
       t.typtype AS kind,
       t.typcategory AS category,
       t.typelem AS elem_oid,
       t.typbasetype AS base_oid,
       COALESCE(r.rngsubtype, 0) AS range_subtype_oid,
       COALESCE(mr.rngtypid, 0) AS multirange_range_oid,
       t.typdelim AS delimiter
  FROM pg_catalog.pg_type t
  LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
  LEFT JOIN pg_catalog.pg_range mr
    ON t.typtype = 'm' AND (to_jsonb(mr) ->> 'rngmultitypid')::oid = t.oid`;

/** Map one row of TYPE_CATALOG_SQL (OIDs as numbers, decimal strings or bigints) to a PgType. */
export function typeFromCatalogRow(row: Record<string, unknown>): PgType {
  return {
    oid: catalogOid(row, 'oid'),
    name: catalogText(row, 'name'),
    kind: catalogText(row, 'kind'),
    category: catalogText(row, 'category'),
    elemOid: catalogOid(row, 'elem_oid'),
    baseOid: catalogOid(row, 'base_oid'),
    rangeSubtypeOid: catalogOid(row, 'range_subtype_oid'),
    multirangeRangeOid: catalogOid(row, 'multirange_range_oid'),
    delimiter: catalogText(row, 'delimiter'),
  };
}

function catalogOid(row: Record<string, unknown>, column: string): number {
  const value = row[column];
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'bigint' && value >= 0n && value <= 0xffffffffn) return Number(value);
  if (typeof value === 'string' && value.length > 0 && value.length <= 10 && isDigits(value, 0, value.length)) {
    return Number(value);
  }
  throw new DecodeError('BAD_VALUE', `type catalog row: column ${column} is not an OID (${String(value)})`);
}

function catalogText(row: Record<string, unknown>, column: string): string {
  const value = row[column];
  if (typeof value === 'string') return value;
  throw new DecodeError('BAD_VALUE', `type catalog row: column ${column} is not text (${String(value)})`);
}

// ---------------------------------------------------------------------------------------
// Converters

export type ValueConverter = (text: string) => LosslessValue;

/**
 * text → the value's JSON text, what `stringifyLossless(converter(text))` gives, built per
 * type so the hot types skip the intermediate value: the decoder writes events straight
 * from these fragments.
 */
export type ValueWriter = (text: string) => string;

/** OIDs of the built-in types we dispatch on; fixed by PostgreSQL since their introduction. */
export const PG_OID = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int2vector: 22,
  int4: 23,
  text: 25,
  oid: 26,
  xid: 28,
  cid: 29,
  oidvector: 30,
  json: 114,
  xml: 142,
  float4: 700,
  float8: 701,
  money: 790,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  bit: 1560,
  varbit: 1562,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
  jsonpath: 4072,
  xid8: 5069,
} as const;

const identity: ValueConverter = (text) => text;

function badValue(typeName: string, text: string, why?: string): DecodeError {
  const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
  return new DecodeError(
    'BAD_VALUE',
    `cannot convert ${typeName} value ${JSON.stringify(shown)}${why === undefined ? '' : `: ${why}`}`,
  );
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function isDigits(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isDigit(text.charCodeAt(i))) return false;
  return true;
}

const boolConverter: ValueConverter = (text) => {
  if (text === 't') return true;
  if (text === 'f') return false;
  throw badValue('bool', text);
};

/** int2, int4, oid, xid, cid: at most 10 digits, exact as a JSON number. */
function smallIntConverter(typeName: string): ValueConverter {
  return (text) => {
    const n = text.length;
    let i = 0;
    const negative = n > 0 && text.charCodeAt(0) === 45; /* - */
    if (negative) i = 1;
    if (i === n || n - i > 10) throw badValue(typeName, text);
    let value = 0;
    for (; i < n; i++) {
      const digit = text.charCodeAt(i) - 48;
      if (digit < 0 || digit > 9) throw badValue(typeName, text);
      value = value * 10 + digit;
    }
    return negative && value !== 0 ? -value : value;
  };
}

/** int8, xid8: the decimal text as sent (node-postgres' convention), after a syntax check. */
function bigIntConverter(typeName: string): ValueConverter {
  return (text) => {
    const start = text.charCodeAt(0) === 45 ? 1 : 0;
    if (start === text.length || !isDigits(text, start, text.length)) throw badValue(typeName, text);
    return text;
  };
}

/** numeric: '-'? digits ('.' digits)?, or NaN / Infinity / -Infinity; never an exponent. */
const numericConverter: ValueConverter = (text) => {
  const n = text.length;
  let i = text.charCodeAt(0) === 45 ? 1 : 0;
  const intStart = i;
  while (i < n && isDigit(text.charCodeAt(i))) i++;
  if (i > intStart) {
    if (i === n) return text;
    if (text.charCodeAt(i) === 46 /* . */ && i + 1 < n && isDigits(text, i + 1, n)) return text;
  } else if (text === 'NaN' || text === 'Infinity' || text === '-Infinity') {
    return text;
  }
  throw badValue('numeric', text);
};

/**
 * float4/float8: with extra_float_digits > 0 PostgreSQL prints the shortest text that reads
 * back to the same float, so Number() of it is exact. Non-finite values stay strings.
 */
function floatConverter(typeName: string): ValueConverter {
  return (text) => {
    const n = text.length;
    if (n === 0) throw badValue(typeName, text);
    const first = text.charCodeAt(0);
    if (first === 78 /* N */ || first === 73 /* I */ || (first === 45 && text.charCodeAt(1) === 73)) {
      if (text === 'NaN' || text === 'Infinity' || text === '-Infinity') return text;
      throw badValue(typeName, text);
    }
    // Only digits, sign, point and exponent: Number() would also accept '0x1f', ' 1', '1_0'…
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      if (!(isDigit(c) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69)) throw badValue(typeName, text);
    }
    const value = Number(text);
    if (!Number.isFinite(value)) throw badValue(typeName, text);
    return value;
  };
}

/** bytea: '\x' + hex (bytea_output=hex) → base64 of the bytes. */
const byteaConverter: ValueConverter = (text) => {
  if (text.charCodeAt(0) !== 92 /* \ */ || text.charCodeAt(1) !== 120 /* x */) {
    throw badValue('bytea', text, 'expected hex output (bytea_output=hex)');
  }
  const hexLength = text.length - 2;
  if (hexLength === 0) return '';
  // Buffer.from(…, 'hex') stops silently at the first bad pair: a short result means bad input.
  const bytes = Buffer.from(text.slice(2), 'hex');
  if (hexLength % 2 !== 0 || bytes.length * 2 !== hexLength) throw badValue('bytea', text);
  return bytes.toString('base64');
};

/** json/jsonb: the text as sent, embedded verbatim by stringifyLossless. PostgreSQL validated it. */
function jsonConverter(typeName: string): ValueConverter {
  return (text) => {
    if (text.length === 0) throw badValue(typeName, text);
    return new RawJson(text);
  };
}

/**
 * An element of a json/jsonb array: its JSON text as a JSON string, trimmed like a scalar
 * json value. Embedded as JSON (RawJson), an element holding a JSON array would read as one
 * more SQL array dimension (ARRAY['[1,2]'::jsonb] and '{{1,2}}'::jsonb[] both [[1,2]]) and a
 * JSON null element as SQL NULL; as a string it can be neither.
 */
function jsonElementConverter(typeName: string): ValueConverter {
  return (text) => {
    const trimmed = text.trim();
    if (trimmed.length === 0) throw badValue(typeName, text);
    return trimmed;
  };
}

/** interval: IntervalStyle=iso_8601 text ('P1Y2M3DT4H5M6.5S', 'PT0S', 'P-1D'), unchanged. */
const intervalConverter: ValueConverter = (text) => {
  if (text.charCodeAt(0) === 80 /* P */ || text === 'infinity' || text === '-infinity') return text;
  throw badValue('interval', text, 'expected ISO 8601 (IntervalStyle=iso_8601)');
};

// Date/time ---------------------------------------------------------------------------

/**
 * End index of the last scan. Date/time scanners are leaf functions (they call no other
 * converter), so one module-level cursor is safe and saves an allocation per value.
 */
let scanEnd = 0;

const FRACTION_PAD = ['.000000', '00000', '0000', '000', '00', '0', ''];

/** 'HH:MM:SS[.f{1,6}]' at `from` → 'HH:MM:SS.ffffff'; sets scanEnd. Returns '' when malformed. */
function scanClock(text: string, from: number): string {
  const n = text.length;
  if (
    from + 8 > n ||
    !isDigit(text.charCodeAt(from)) ||
    !isDigit(text.charCodeAt(from + 1)) ||
    text.charCodeAt(from + 2) !== 58 /* : */ ||
    !isDigit(text.charCodeAt(from + 3)) ||
    !isDigit(text.charCodeAt(from + 4)) ||
    text.charCodeAt(from + 5) !== 58 ||
    !isDigit(text.charCodeAt(from + 6)) ||
    !isDigit(text.charCodeAt(from + 7))
  ) {
    return '';
  }
  let i = from + 8;
  if (i < n && text.charCodeAt(i) === 46 /* . */) {
    i++;
    const fractionStart = i;
    while (i < n && isDigit(text.charCodeAt(i))) i++;
    const digits = i - fractionStart;
    if (digits === 0 || digits > 6) return '';
    scanEnd = i;
    return text.slice(from, i) + FRACTION_PAD[digits];
  }
  scanEnd = i;
  return text.slice(from, i) + FRACTION_PAD[0];
}

/**
 * '±HH[:MM[:SS]]' at `from` → '±HH:MM[:SS]', or 'Z' for a zero offset when `zeroAsZ`;
 * sets scanEnd. Returns '' when malformed. Offsets with seconds only occur for local mean
 * time zones (not with TimeZone=UTC) and are kept, since rounding them would re-zone.
 */
function scanOffset(text: string, from: number, zeroAsZ: boolean): string {
  const n = text.length;
  const sign = text.charCodeAt(from);
  if ((sign !== 43 && sign !== 45) || from + 3 > n) return '';
  if (!isDigit(text.charCodeAt(from + 1)) || !isDigit(text.charCodeAt(from + 2))) return '';
  let i = from + 3;
  let minutes = '00';
  let seconds = '';
  if (i < n && text.charCodeAt(i) === 58) {
    if (i + 3 > n || !isDigit(text.charCodeAt(i + 1)) || !isDigit(text.charCodeAt(i + 2))) return '';
    minutes = text.slice(i + 1, i + 3);
    i += 3;
    if (i < n && text.charCodeAt(i) === 58) {
      if (i + 3 > n || !isDigit(text.charCodeAt(i + 1)) || !isDigit(text.charCodeAt(i + 2))) return '';
      seconds = text.slice(i, i + 3);
      i += 3;
    }
  }
  scanEnd = i;
  const hours = text.slice(from + 1, from + 3);
  if (zeroAsZ && hours === '00' && minutes === '00' && (seconds === '' || seconds === ':00')) return 'Z';
  return (sign === 43 ? '+' : '-') + hours + ':' + minutes + seconds;
}

/**
 * ISO 8601 year from PostgreSQL's (≥ 4 digits, ' BC' suffix): astronomical numbering,
 * so 1 BC is 0000 and 44 BC is -0043; years past 9999 get a '+'.
 */
function isoYear(digits: string, bc: boolean): string {
  if (!bc) return digits.length === 4 ? digits : '+' + digits;
  const astronomical = Number(digits) - 1;
  if (astronomical === 0) return '0000';
  const abs = String(astronomical);
  return '-' + (abs.length >= 4 ? abs : '0000'.slice(abs.length) + abs);
}

type DateTimeShape = 'date' | 'timestamp' | 'timestamptz';

/** date, timestamp, timestamptz in DateStyle=ISO: 'YYYY-MM-DD[ HH:MM:SS[.f]][±HH[:MM]][ BC]'. */
function dateTimeConverter(shape: DateTimeShape): ValueConverter {
  return (text) => {
    const n = text.length;
    const first = text.charCodeAt(0);
    if (first === 105 /* i */ || first === 45 /* - */) {
      if (text === 'infinity' || text === '-infinity') return text;
      throw badValue(shape, text);
    }
    let i = 0;
    while (i < n && isDigit(text.charCodeAt(i))) i++;
    const yearEnd = i;
    if (
      yearEnd < 4 ||
      i + 6 > n ||
      text.charCodeAt(i) !== 45 ||
      !isDigit(text.charCodeAt(i + 1)) ||
      !isDigit(text.charCodeAt(i + 2)) ||
      text.charCodeAt(i + 3) !== 45 ||
      !isDigit(text.charCodeAt(i + 4)) ||
      !isDigit(text.charCodeAt(i + 5))
    ) {
      throw badValue(shape, text, 'expected DateStyle=ISO');
    }
    i += 6;
    let rest = '';
    if (shape !== 'date') {
      if (text.charCodeAt(i) !== 32) throw badValue(shape, text);
      const clock = scanClock(text, i + 1);
      if (clock === '') throw badValue(shape, text);
      i = scanEnd;
      rest = 'T' + clock;
      if (shape === 'timestamptz') {
        const offset = scanOffset(text, i, true);
        if (offset === '') throw badValue(shape, text);
        i = scanEnd;
        rest += offset;
      }
    }
    let bc = false;
    if (i !== n) {
      if (i + 3 === n && text.charCodeAt(i) === 32 && text.charCodeAt(i + 1) === 66 && text.charCodeAt(i + 2) === 67) {
        bc = true;
      } else {
        throw badValue(shape, text);
      }
    }
    return isoYear(text.slice(0, yearEnd), bc) + text.slice(yearEnd, yearEnd + 6) + rest;
  };
}

const timeConverter: ValueConverter = (text) => {
  const clock = scanClock(text, 0);
  if (clock === '' || scanEnd !== text.length) throw badValue('time', text);
  return clock;
};

const timetzConverter: ValueConverter = (text) => {
  const clock = scanClock(text, 0);
  if (clock === '') throw badValue('timetz', text);
  const offset = scanOffset(text, scanEnd, false);
  if (offset === '' || scanEnd !== text.length) throw badValue('timetz', text);
  return clock + offset;
};

// Arrays --------------------------------------------------------------------------------

/** Parse state of one array or range literal; per call, because element converters nest. */
interface Cursor {
  i: number;
}

/**
 * Array literal as array_out writes it: '{a,"b c",NULL,{…}}', optionally prefixed by
 * explicit bounds '[0:1]=' (dropped: JSON arrays start at index 0 anyway). Elements are
 * quoted when empty, 'NULL', or containing quotes, backslashes, braces, the delimiter or
 * white space; inside quotes '\' escapes the next character.
 */
function arrayConverter(typeName: string, element: ValueConverter, delimiter: number): ValueConverter {
  return (text) => {
    const cursor: Cursor = { i: 0 };
    if (text.charCodeAt(0) === 91 /* [ */) {
      const equals = text.indexOf('=');
      if (equals < 0) throw badValue(typeName, text, 'unterminated array bounds');
      cursor.i = equals + 1;
    }
    const result = parseArrayLevel(text, cursor, element, delimiter, typeName);
    if (cursor.i !== text.length) throw badValue(typeName, text, 'text after the array');
    return result;
  };
}

function parseArrayLevel(
  text: string,
  cursor: Cursor,
  element: ValueConverter,
  delimiter: number,
  typeName: string,
): LosslessValue[] {
  const n = text.length;
  if (text.charCodeAt(cursor.i) !== 123 /* { */) throw badValue(typeName, text, "expected '{'");
  cursor.i++;
  const items: LosslessValue[] = [];
  if (text.charCodeAt(cursor.i) === 125 /* } */) {
    cursor.i++;
    return items;
  }
  for (;;) {
    const c = text.charCodeAt(cursor.i);
    if (c === 123) {
      items.push(parseArrayLevel(text, cursor, element, delimiter, typeName));
    } else if (c === 34 /* " */) {
      items.push(element(readQuoted(text, cursor, typeName)));
    } else {
      const start = cursor.i;
      let escaped = false;
      let i = start;
      for (; i < n; i++) {
        const ch = text.charCodeAt(i);
        if (ch === delimiter || ch === 125) break;
        if (ch === 123 || ch === 34) throw badValue(typeName, text, 'misplaced brace or quote');
        if (ch === 92 /* \ */) {
          escaped = true;
          i++;
        }
      }
      if (i >= n || i === start) throw badValue(typeName, text, 'malformed array element');
      cursor.i = i;
      const raw = text.slice(start, i);
      if (!escaped && raw.length === 4 && raw.toUpperCase() === 'NULL') items.push(null);
      else items.push(element(escaped ? unescapeBackslashes(raw) : raw));
    }
    const next = text.charCodeAt(cursor.i);
    cursor.i++;
    if (next === delimiter) continue;
    if (next === 125) return items;
    throw badValue(typeName, text, 'expected delimiter or }');
  }
}

/** A double-quoted element at cursor.i; '\x' stands for x. Leaves the cursor after the quote. */
function readQuoted(text: string, cursor: Cursor, typeName: string): string {
  const n = text.length;
  let out = '';
  let chunk = cursor.i + 1;
  for (let i = chunk; i < n; ) {
    const ch = text.charCodeAt(i);
    if (ch === 34) {
      cursor.i = i + 1;
      return out + text.slice(chunk, i);
    }
    if (ch === 92) {
      out += text.slice(chunk, i);
      chunk = i + 1; // the escaped character starts the next chunk
      i += 2;
    } else {
      i++;
    }
  }
  throw badValue(typeName, text, 'unterminated quoted element');
}

function unescapeBackslashes(raw: string): string {
  let out = '';
  let chunk = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw.charCodeAt(i) === 92) {
      out += raw.slice(chunk, i);
      chunk = i + 1;
      i++;
    }
  }
  return out + raw.slice(chunk);
}

// Ranges --------------------------------------------------------------------------------

function rangeConverter(typeName: string, bound: ValueConverter): ValueConverter {
  return (text) => {
    if (text === 'empty') return { empty: true };
    const cursor: Cursor = { i: 0 };
    const range = parseRange(text, cursor, bound, typeName);
    if (cursor.i !== text.length) throw badValue(typeName, text, 'text after the range');
    return range;
  };
}

/** Multirange '{[1,3),[5,7)}' → array of range objects; '{}' → []. */
function multirangeConverter(typeName: string, bound: ValueConverter): ValueConverter {
  return (text) => {
    if (text.charCodeAt(0) !== 123) throw badValue(typeName, text, "expected '{'");
    const ranges: LosslessValue[] = [];
    if (text === '{}') return ranges;
    const cursor: Cursor = { i: 1 };
    for (;;) {
      ranges.push(parseRange(text, cursor, bound, typeName));
      const next = text.charCodeAt(cursor.i);
      cursor.i++;
      if (next === 44) continue;
      if (next === 125 && cursor.i === text.length) return ranges;
      throw badValue(typeName, text, 'expected , or } after a range');
    }
  };
}

/** '[lower,upper)' at cursor.i as range_out writes it; an absent bound is unbounded (null). */
function parseRange(text: string, cursor: Cursor, bound: ValueConverter, typeName: string): LosslessValue {
  const open = text.charCodeAt(cursor.i);
  if (open !== 91 /* [ */ && open !== 40 /* ( */) throw badValue(typeName, text, "expected '[' or '('");
  cursor.i++;
  const lower = readRangeBound(text, cursor, true, typeName);
  if (text.charCodeAt(cursor.i) !== 44) throw badValue(typeName, text, "expected ','");
  cursor.i++;
  const upper = readRangeBound(text, cursor, false, typeName);
  const close = text.charCodeAt(cursor.i);
  if (close !== 93 /* ] */ && close !== 41 /* ) */) throw badValue(typeName, text, "expected ']' or ')'");
  cursor.i++;
  return {
    lower: lower === null ? null : bound(lower),
    upper: upper === null ? null : bound(upper),
    lowerInclusive: open === 91,
    upperInclusive: close === 93,
  };
}

/**
 * One range bound, up to ',' (lower) or ']' / ')' (upper). Inside double quotes '""' and
 * '\x' stand for '"' and x (range_out doubles both). Returns null for an empty, unquoted
 * bound, which means unbounded; a quoted "" is the empty string.
 */
function readRangeBound(text: string, cursor: Cursor, lower: boolean, typeName: string): string | null {
  const n = text.length;
  let i = cursor.i;
  // Fast path: an unquoted bound without escapes, the common case for numbers and dates.
  const start = i;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (lower ? c === 44 : c === 93 || c === 41) {
      cursor.i = i;
      return i === start ? null : text.slice(start, i);
    }
    if (c === 34 || c === 92) break;
  }
  let out = text.slice(start, i);
  let inQuotes = false;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 92) {
      if (i + 1 >= n) break;
      out += text[i + 1];
      i++;
    } else if (c === 34) {
      if (inQuotes && text.charCodeAt(i + 1) === 34) {
        out += '"';
        i++;
      } else {
        inQuotes = !inQuotes;
      }
    } else if (!inQuotes && (lower ? c === 44 : c === 93 || c === 41)) {
      cursor.i = i;
      return out;
    } else {
      out += text[i];
    }
  }
  throw badValue(typeName, text, 'unterminated range bound');
}

// ---------------------------------------------------------------------------------------
// Registry

function builtinConverters(): Map<number, ValueConverter> {
  const map = new Map<number, ValueConverter>([
    [PG_OID.bool, boolConverter],
    [PG_OID.bytea, byteaConverter],
    [PG_OID.int2, smallIntConverter('int2')],
    [PG_OID.int4, smallIntConverter('int4')],
    [PG_OID.oid, smallIntConverter('oid')],
    [PG_OID.xid, smallIntConverter('xid')],
    [PG_OID.cid, smallIntConverter('cid')],
    [PG_OID.int8, bigIntConverter('int8')],
    [PG_OID.xid8, bigIntConverter('xid8')],
    [PG_OID.numeric, numericConverter],
    [PG_OID.float4, floatConverter('float4')],
    [PG_OID.float8, floatConverter('float8')],
    [PG_OID.json, jsonConverter('json')],
    [PG_OID.jsonb, jsonConverter('jsonb')],
    [PG_OID.date, dateTimeConverter('date')],
    [PG_OID.timestamp, dateTimeConverter('timestamp')],
    [PG_OID.timestamptz, dateTimeConverter('timestamptz')],
    [PG_OID.time, timeConverter],
    [PG_OID.timetz, timetzConverter],
    [PG_OID.interval, intervalConverter],
  ]);
  // Text as sent. int2vector and oidvector are listed because the catalog calls them arrays
  // (category 'A') although they print space-separated, not as '{…}'.
  for (const oid of [
    PG_OID.char,
    PG_OID.name,
    PG_OID.int2vector,
    PG_OID.text,
    PG_OID.oidvector,
    PG_OID.xml,
    PG_OID.money,
    PG_OID.bpchar,
    PG_OID.varchar,
    PG_OID.bit,
    PG_OID.varbit,
    PG_OID.uuid,
    PG_OID.jsonpath,
  ]) {
    map.set(oid, identity);
  }
  return map;
}

const BUILTIN_CONVERTERS = builtinConverters();

/**
 * The database's types and a converter per type OID, built on first use and cached.
 * Arrays, domains, enums, ranges and multiranges are resolved through the catalog; a type
 * the registry does not know converts to its text unchanged.
 */
export class TypeRegistry {
  readonly #types = new Map<number, PgType>();
  readonly #converters = new Map<number, ValueConverter>();
  readonly #writers = new Map<number, ValueWriter>();

  constructor(types: Iterable<PgType> = []) {
    this.add(types);
  }

  /** True for a type in the loaded catalog or a built-in we convert without it. */
  has(oid: number): boolean {
    return this.#types.has(oid) || BUILTIN_CONVERTERS.has(oid);
  }

  get(oid: number): PgType | undefined {
    return this.#types.get(oid);
  }

  /** The type a domain (or a domain over a domain) stands for; any other OID unchanged. */
  baseOid(oid: number): number {
    let type = this.#types.get(oid);
    while (type !== undefined && type.kind === 'd' && type.baseOid !== 0) {
      oid = type.baseOid;
      type = this.#types.get(oid);
    }
    return oid;
  }

  /**
   * Add or replace types (e.g. after a Relation message names a type created since the
   * catalog was loaded). Cached converters are dropped because an array or range built
   * earlier may have captured a text converter for a then-unknown type: fetch converters
   * again after calling this.
   */
  add(types: Iterable<PgType>): void {
    for (const type of types) this.#types.set(type.oid, type);
    this.#converters.clear();
    this.#writers.clear();
  }

  /**
   * Types that converting values of `oids` would look up but the registry does not know:
   * an array's element, a domain's base, a range's subtype, a multirange's range, followed
   * transitively through the types it does know. Unknown `oids` themselves are included.
   */
  missingDependencies(oids: Iterable<number>): number[] {
    const missing: number[] = [];
    const seen = new Set<number>();
    const visit = (oid: number): void => {
      if (oid === 0 || seen.has(oid)) return;
      seen.add(oid);
      const type = this.#types.get(oid);
      if (type === undefined) {
        if (!BUILTIN_CONVERTERS.has(oid)) missing.push(oid);
        return;
      }
      visit(type.elemOid);
      visit(type.baseOid);
      visit(type.rangeSubtypeOid);
      visit(type.multirangeRangeOid);
    };
    for (const oid of oids) visit(oid);
    return missing;
  }

  /** The JSON writer for a type (see ValueWriter); cached like converters. */
  writer(oid: number): ValueWriter {
    let writer = this.#writers.get(oid);
    if (writer === undefined) {
      writer = this.#buildWriter(oid);
      this.#writers.set(oid, writer);
    }
    return writer;
  }

  #buildWriter(oid: number): ValueWriter {
    const convert = this.converter(oid);
    if (convert === identity) return quote;
    switch (this.baseOid(oid)) {
      case PG_OID.bool:
        return (text) => (convert(text) ? 'true' : 'false');
      case PG_OID.int2:
      case PG_OID.int4:
      case PG_OID.oid:
      case PG_OID.xid:
      case PG_OID.cid:
        // The converter checks the syntax; PostgreSQL's integer text is already a JSON number.
        return (text) => {
          convert(text);
          return text;
        };
      case PG_OID.int8:
      case PG_OID.xid8:
      case PG_OID.numeric:
      case PG_OID.date:
      case PG_OID.time:
      case PG_OID.timetz:
      case PG_OID.timestamp:
      case PG_OID.timestamptz:
      case PG_OID.interval:
      case PG_OID.bytea:
        // Their JSON strings are ASCII letters, digits and punctuation: nothing to escape.
        return (text) => '"' + (convert(text) as string) + '"';
      default:
        return (text) => stringifyLossless(convert(text));
    }
  }

  converter(oid: number): ValueConverter {
    let converter = this.#converters.get(oid);
    if (converter === undefined) {
      converter = this.#build(oid);
      this.#converters.set(oid, converter);
    }
    return converter;
  }

  #build(oid: number): ValueConverter {
    const builtin = BUILTIN_CONVERTERS.get(oid);
    if (builtin !== undefined) return builtin;
    const type = this.#types.get(oid);
    if (type === undefined) return identity;
    switch (type.kind) {
      case 'd':
        return type.baseOid === 0 ? identity : this.converter(type.baseOid);
      case 'r':
        return rangeConverter(type.name, this.converter(type.rangeSubtypeOid));
      case 'm': {
        const range = this.#types.get(type.multirangeRangeOid);
        if (range === undefined) return identity;
        return multirangeConverter(type.name, this.converter(range.rangeSubtypeOid));
      }
      case 'b':
      case 'p':
        if (type.category === 'A' && type.elemOid !== 0) {
          // array_out separates elements with the element type's typdelim (';' for box).
          const delimiter = this.#types.get(type.elemOid)?.delimiter || type.delimiter || ',';
          const base = this.baseOid(type.elemOid);
          const element =
            base === PG_OID.json || base === PG_OID.jsonb ? jsonElementConverter(type.name) : this.converter(type.elemOid);
          return arrayConverter(type.name, element, delimiter.charCodeAt(0));
        }
        return identity;
      default:
        // 'e' enum and 'c' composite: the text as sent.
        return identity;
    }
  }
}
