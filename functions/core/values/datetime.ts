/**
 * Converters for date, timestamp, timestamptz, time and timetz: PostgreSQL's ISO text
 * (DateStyle=ISO, TimeZone=UTC) to ISO 8601 strings with six fraction digits. The scanners
 * report where they stopped through one module-level cursor, scanEnd: it and every function
 * that reads or writes it stay in this module.
 */
import { badValue, isDigit, type ValueConverter } from './scalars.ts';

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
export function dateTimeConverter(shape: DateTimeShape): ValueConverter {
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

export const timeConverter: ValueConverter = (text) => {
  const clock = scanClock(text, 0);
  if (clock === '' || scanEnd !== text.length) throw badValue('time', text);
  return clock;
};

export const timetzConverter: ValueConverter = (text) => {
  const clock = scanClock(text, 0);
  if (clock === '') throw badValue('timetz', text);
  const offset = scanOffset(text, scanEnd, false);
  if (offset === '' || scanEnd !== text.length) throw badValue('timetz', text);
  return clock + offset;
};
