/**
 * Converters for types whose text has structure: arrays (array_out's literal), ranges and
 * multiranges (range_out's), each built around the converter of its element or bound type,
 * and the converter of json/jsonb array elements.
 */
import type { LosslessValue } from './lossless-json.ts';
import { badValue, type ValueConverter } from './scalars.ts';

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
export function arrayConverter(typeName: string, element: ValueConverter, delimiter: number): ValueConverter {
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

/**
 * An element of a json/jsonb array: its JSON text as a JSON string, trimmed like a scalar
 * json value. Embedded as JSON (RawJson), an element holding a JSON array would read as one
 * more SQL array dimension (ARRAY['[1,2]'::jsonb] and '{{1,2}}'::jsonb[] both [[1,2]]) and a
 * JSON null element as SQL NULL; as a string it can be neither.
 */
export function jsonElementConverter(typeName: string): ValueConverter {
  return (text) => {
    const trimmed = text.trim();
    if (trimmed.length === 0) throw badValue(typeName, text);
    return trimmed;
  };
}

// Ranges --------------------------------------------------------------------------------

export function rangeConverter(typeName: string, bound: ValueConverter): ValueConverter {
  return (text) => {
    if (text === 'empty') return { empty: true };
    const cursor: Cursor = { i: 0 };
    const range = parseRange(text, cursor, bound, typeName);
    if (cursor.i !== text.length) throw badValue(typeName, text, 'text after the range');
    return range;
  };
}

/** Multirange '{[1,3),[5,7)}' → array of range objects; '{}' → []. */
export function multirangeConverter(typeName: string, bound: ValueConverter): ValueConverter {
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
