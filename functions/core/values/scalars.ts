/**
 * Converters for scalar types (bool, the integers, numeric, floats, bytea, json/jsonb,
 * interval, and identity for types kept as their text), and what every converter shares:
 * the ValueConverter type, badValue and the digit tests.
 *
 * pgoutput sends each column as the text of the type's output function, in a walsender
 * session whose settings we fix: DateStyle=ISO,YMD, TimeZone=UTC, IntervalStyle=iso_8601,
 * extra_float_digits=3, bytea_output=hex. Converters rely on exactly those formats and
 * throw DecodeError BAD_VALUE on anything else rather than guess: the streamer then stops
 * without acknowledging, so a misconfigured session loses nothing.
 *
 * Converters are built once per type OID (TypeRegistry.converter) and called per value, so
 * the hot ones scan with charCodeAt instead of regexes and never allocate more than the result.
 */
import { DecodeError } from '../errors.ts';
import { RawJson, type LosslessValue } from './lossless-json.ts';

export type ValueConverter = (text: string) => LosslessValue;

export const identity: ValueConverter = (text) => text;

export function badValue(typeName: string, text: string, why?: string): DecodeError {
  const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
  return new DecodeError(
    'BAD_VALUE',
    `cannot convert ${typeName} value ${JSON.stringify(shown)}${why === undefined ? '' : `: ${why}`}`,
  );
}

export function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

export function isDigits(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isDigit(text.charCodeAt(i))) return false;
  return true;
}

export const boolConverter: ValueConverter = (text) => {
  if (text === 't') return true;
  if (text === 'f') return false;
  throw badValue('bool', text);
};

/** int2, int4, oid, xid, cid: at most 10 digits, exact as a JSON number. */
export function smallIntConverter(typeName: string): ValueConverter {
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
export function bigIntConverter(typeName: string): ValueConverter {
  return (text) => {
    const start = text.charCodeAt(0) === 45 ? 1 : 0;
    if (start === text.length || !isDigits(text, start, text.length)) throw badValue(typeName, text);
    return text;
  };
}

/** numeric: '-'? digits ('.' digits)?, or NaN / Infinity / -Infinity; never an exponent. */
export const numericConverter: ValueConverter = (text) => {
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
export function floatConverter(typeName: string): ValueConverter {
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
export const byteaConverter: ValueConverter = (text) => {
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
export function jsonConverter(typeName: string): ValueConverter {
  return (text) => {
    if (text.length === 0) throw badValue(typeName, text);
    return new RawJson(text);
  };
}

/** interval: IntervalStyle=iso_8601 text ('P1Y2M3DT4H5M6.5S', 'PT0S', 'P-1D'), unchanged. */
export const intervalConverter: ValueConverter = (text) => {
  if (text.charCodeAt(0) === 80 /* P */ || text === 'infinity' || text === '-infinity') return text;
  throw badValue('interval', text, 'expected ISO 8601 (IntervalStyle=iso_8601)');
};
