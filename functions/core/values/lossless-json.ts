/**
 * Lossless JSON, both directions: RawJson (a json/jsonb value kept as the text PostgreSQL
 * sent), LosslessValue (what a converter produces), stringifyLossless (writes them, RawJson
 * verbatim, in a body SQS accepts) and parseLossless (reads JSON pgrelay wrote without
 * re-encoding column values). Writer and reader live together because each undoes the other:
 * what parseLossless keeps raw, stringifyLossless writes back verbatim.
 */
import { DecodeError } from '../errors.ts';

// Values --------------------------------------------------------------------------------

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

// Writing -------------------------------------------------------------------------------

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
export function quote(text: string): string {
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

// Reading -------------------------------------------------------------------------------

const ROW_KEYS = new Set(['after', 'before', 'key', 'oldKey', 'newKey', 'properties', 'previous']);

/**
 * Parse JSON written by pgrelay without re-encoding column values. `JSON.parse` would round
 * numbers beyond 2^53 inside json/jsonb values, put integer-like keys first and keep only the
 * last of duplicate keys (json allows them). Here, inside a row object (the value of `after`,
 * `before`, `key`, `oldKey`, `newKey`, `properties` or `previous`), every object or array value is kept as its raw
 * text (RawJson) and any number token that a double would not reproduce exactly is kept raw
 * too; stringifyLossless writes both back verbatim. Everything else parses as JSON.parse does.
 */
export function parseLossless(text: string): unknown {
  const p = new Parser(text);
  p.ws();
  const value = p.value(false);
  p.ws();
  if (p.i !== text.length) p.fail('unexpected text after the value');
  return value;
}

class Parser {
  i = 0;
  constructor(private readonly s: string) {}

  fail(why: string): never {
    throw new DecodeError('BAD_VALUE', `invalid JSON at ${this.i}: ${why}`);
  }

  ws(): void {
    const s = this.s;
    let c = s.charCodeAt(this.i);
    while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++this.i);
  }

  /** `rowMember`: this value is a column value inside a row object. */
  value(rowMember: boolean): unknown {
    const c = this.s.charCodeAt(this.i);
    if (c === 123 /* { */) return rowMember ? this.raw() : this.object(false);
    if (c === 91 /* [ */) return rowMember ? this.raw() : this.array();
    if (c === 34 /* " */) return this.string();
    if (c === 116 /* t */) return this.word('true', true);
    if (c === 102 /* f */) return this.word('false', false);
    if (c === 110 /* n */) return this.word('null', null);
    return this.number();
  }

  /** An object; `columns`: a row, whose member values are column values. */
  object(columns: boolean): Record<string, unknown> {
    this.i++;
    const out: Record<string, unknown> = {};
    this.ws();
    if (this.s.charCodeAt(this.i) === 125) {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s.charCodeAt(this.i) !== 34) this.fail('expected a key');
      const key = this.string();
      this.ws();
      if (this.s.charCodeAt(this.i) !== 58) this.fail('expected :');
      this.i++;
      this.ws();
      if (columns) out[key] = this.value(true);
      else out[key] = ROW_KEYS.has(key) && this.s.charCodeAt(this.i) === 123 ? this.object(true) : this.value(false);
      this.ws();
      const c = this.s.charCodeAt(this.i++);
      if (c === 125) return out;
      if (c !== 44) this.fail('expected , or }');
    }
  }

  array(): unknown[] {
    this.i++;
    const out: unknown[] = [];
    this.ws();
    if (this.s.charCodeAt(this.i) === 93) {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(false));
      this.ws();
      const c = this.s.charCodeAt(this.i++);
      if (c === 93) return out;
      if (c !== 44) this.fail('expected , or ]');
    }
  }

  string(): string {
    const s = this.s;
    const start = this.i;
    if (s.charCodeAt(start) !== 34) this.fail('expected a string');
    let j = start + 1;
    let escaped = false;
    for (;;) {
      const c = s.charCodeAt(j);
      if (Number.isNaN(c)) this.fail('unterminated string');
      if (c === 92) {
        escaped = true;
        j += 2;
        continue;
      }
      if (c === 34) break;
      j++;
    }
    this.i = j + 1;
    return escaped ? (JSON.parse(s.slice(start, j + 1)) as string) : s.slice(start + 1, j);
  }

  word<T>(w: string, v: T): T {
    if (!this.s.startsWith(w, this.i)) this.fail(`expected ${w}`);
    this.i += w.length;
    return v;
  }

  number(): number | RawJson {
    const s = this.s;
    const start = this.i;
    let j = start;
    for (;;) {
      const c = s.charCodeAt(j);
      // digits - + . e E
      if ((c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69) j++;
      else break;
    }
    if (j === start) this.fail('unexpected character');
    this.i = j;
    const token = s.slice(start, j);
    const n = Number(token);
    if (Number.isNaN(n)) this.fail(`bad number ${token}`);
    // Up to 15 significant digits a double holds exactly; longer tokens stay as written.
    return significantDigits(token) <= 15 ? n : new RawJson(token);
  }

  /** Skip one JSON value and return its text, unparsed. */
  raw(): RawJson {
    const s = this.s;
    const start = this.i;
    let depth = 0;
    let j = start;
    for (;;) {
      const c = s.charCodeAt(j);
      if (Number.isNaN(c)) this.fail('unterminated value');
      if (c === 34) {
        j++;
        for (;;) {
          const d = s.charCodeAt(j);
          if (Number.isNaN(d)) this.fail('unterminated string');
          if (d === 92) j += 2;
          else if (d === 34) break;
          else j++;
        }
      } else if (c === 123 || c === 91) depth++;
      else if (c === 125 || c === 93) {
        depth--;
        if (depth === 0) {
          this.i = j + 1;
          return new RawJson(s.slice(start, j + 1));
        }
      }
      j++;
    }
  }
}

function significantDigits(token: string): number {
  let digits = 0;
  let leading = true;
  for (let k = 0; k < token.length; k++) {
    const c = token.charCodeAt(k);
    if (c === 101 || c === 69) break; // exponent
    if (c < 48 || c > 57) continue;
    if (leading && c === 48) continue;
    leading = false;
    digits++;
  }
  return digits;
}
