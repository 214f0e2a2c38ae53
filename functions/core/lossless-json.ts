/**
 * Parse JSON written by pgrelay without re-encoding column values. `JSON.parse` would round
 * numbers beyond 2^53 inside json/jsonb values, put integer-like keys first and keep only the
 * last of duplicate keys (json allows them). Here, inside a row object (the value of `after`,
 * `before`, `key`, `oldKey`, `newKey`, `properties` or `previous`), every object or array value is kept as its raw
 * text (RawJson) and any number token that a double would not reproduce exactly is kept raw
 * too; stringifyLossless writes both back verbatim. Everything else parses as JSON.parse does.
 */
import { DecodeError } from './errors.ts';
import { RawJson } from './values.ts';

const ROW_KEYS = new Set(['after', 'before', 'key', 'oldKey', 'newKey', 'properties', 'previous']);

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
