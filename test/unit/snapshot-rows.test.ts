import { describe, expect, it } from 'vitest';
import { DecodeError } from '#core/errors.ts';
import { fnv1a, mix32, tablePrefixHash } from '#core/partition.ts';
import { PG_OID, type PgType } from '#core/values/catalog.ts';
import { stringifyLossless } from '#core/values/lossless-json.ts';
import { TypeRegistry } from '#core/values/registry.ts';
import { CopyRows } from '#streamer/bootstrap/copy-rows.ts';
import { SnapshotEncoder } from '#streamer/bootstrap/snapshot-rows.ts';
import type { TableShape } from '#streamer/bootstrap/chunk-reader.ts';

const POSINT = 16_500; // CREATE DOMAIN posint AS int4
const MOOD = 16_501; // CREATE TYPE mood AS ENUM (…)
const CATALOG: PgType[] = [
  { oid: POSINT, name: 'posint', kind: 'd', category: 'N', elemOid: 0, baseOid: PG_OID.int4, rangeSubtypeOid: 0, multirangeRangeOid: 0, delimiter: ',' },
  { oid: MOOD, name: 'mood', kind: 'e', category: 'E', elemOid: 0, baseOid: 0, rangeSubtypeOid: 0, multirangeRangeOid: 0, delimiter: ',' },
];
const COLUMNS = [
  ['id', PG_OID.int8],
  ['n', PG_OID.int4],
  ['small', POSINT],
  ['amount', PG_OID.numeric],
  ['label', PG_OID.text],
  ['mood', MOOD],
  ['at', PG_OID.timestamptz],
  ['doc', PG_OID.jsonb],
  ['flag', PG_OID.bool],
  ['tags', 1009 /* text[] */],
  ['big', PG_OID.int8],
  ['day', PG_OID.date],
  ['local', PG_OID.timestamp],
] as const;
const shape: TableShape = {
  ref: 'public.things',
  table: { schema: 'public', table: 'things' },
  columns: COLUMNS.map(([name, typeOid]) => ({ name, typeOid, typeName: String(typeOid) })),
  keyIndexes: [0, 4],
  sql: { select: '', keyList: '', keyTypes: [], snapshot: '' },
};
const types = new TypeRegistry(CATALOG);

/** The event as the value writers write it, value by value (the stream's path). */
function reference(values: (string | null)[], lsn: string, seq: number): string {
  const write = (i: number) => (values[i] === null ? 'null' : types.writer(COLUMNS[i]![1])(values[i]!));
  const key = `{${shape.keyIndexes.map((i) => `${stringifyLossless(COLUMNS[i]![0])}:${write(i)}`).join(',')}}`;
  const after = `{${COLUMNS.map(([name], i) => `${stringifyLossless(name)}:${write(i)}`).join(',')}}`;
  const doc = values[7];
  const jsonNulls = doc !== null && doc !== undefined && doc.trim() === 'null' ? `,"jsonNulls":{"after":["doc"]}` : '';
  return `{"v":1,"op":"snapshot","schema":"public","table":"things","key":${key},"after":${after},"before":null${jsonNulls},"load":"L1","position":{"commitLsn":"${lsn}","seq":${seq}},"tx":null}`;
}

/** A value in COPY's text format. */
function copyText(v: string | null): string {
  if (v === null) return '\\N';
  return v.replace(/[\\\t\n\r\b\f\v]/g, (c) => `\\${({ '\\': '\\', '\t': 't', '\n': 'n', '\r': 'r', '\b': 'b', '\f': 'f', '\v': 'v' } as Record<string, string>)[c]}`);
}

const ROWS: (string | null)[][] = [
  ['1', '42', '7', '12.50', 'plain ascii', 'happy', '2026-12-04 10:11:12.5+00', '{"a": 1}', 't', '{a,b}', '0', '2026-12-04', '2026-12-04 10:11:12'],
  ['-9223372036854775808', '-2147483648', '0', '-0.000001', '', 'sad', '-infinity', 'null', 'f', '{}', '-1', '1999-01-31', '1999-01-31 23:59:59.999999'],
  ['2', '-0', '1', 'NaN', 'quote " and backslash \\ and tab\tnewline\n', 'ok', '2026-01-01 00:00:00+05:30', ' null ', null, null, '9223372036854775807', '0044-03-15 BC', '2026-01-01 00:00:00.1'],
  ['3', null, null, 'Infinity', 'é ✓ 😀 \u{fffe}\u{ffff} \u0001\u001f', null, null, null, null, '{"x y",NULL}', null, 'infinity', '0999-01-01 00:00:00'],
  ['4', '2147483647', '3', '1234567890123456789012345678901234567890.0123456789', 'x'.repeat(64), 'a', null, '"str"', 't', null, '12', '10000-01-01', '2026-01-01 00:00:00.123'],
  ['5', '1', '2', '100', 'y'.repeat(65) + '"', 'b', null, '[1, "\\u0000"]', 'f', null, '-5', null, '2026-06-30 12:00:00.000001 BC'],
  ['6', '1', '2', '3', '\\N', 'c', null, null, null, null, '77', '2026-02-28', null],
];

function chunk(rows: readonly (readonly (string | null)[])[]): CopyRows {
  const copy = new CopyRows();
  copy.push(Buffer.from(rows.map((r) => `${r.map(copyText).join('\t')}\n`).join(''), 'utf8'));
  return copy;
}

describe('SnapshotEncoder', () => {
  it('writes each event exactly as the value writers do, fast paths and writer paths alike, with the key, its partition and its UTF-8 length', () => {
    const encoder = new SnapshotEncoder(shape, types, 8, 'L1');
    const copy = chunk(ROWS);
    ROWS.forEach((values, i) => {
      encoder.load(copy, i);
      const key = encoder.key(copy);
      const expected = reference(values, '0/16B3748', i);
      const event = encoder.event(copy, key.json, '0/16B3748', i);
      expect(event.json).toBe(expected);
      expect(event.bytes).toBe(Buffer.byteLength(expected));
      expect(key.json).toBe(`{"id":"${values[0]}","label":${types.writer(PG_OID.text)(values[4]!)}}`);
      expect(key.partition).toBe(mix32(fnv1a(key.json, tablePrefixHash('public.things'))) % 8);
      expect(encoder.keyTexts(copy)).toEqual([values[0], values[4]]);
    });
  });

  it('writes events bigger than its first buffer', () => {
    const encoder = new SnapshotEncoder(shape, types, 1, 'L1');
    const big = ['9', '1', '1', '1', 'z'.repeat(200_000), 'a', null, `"${'é'.repeat(100_000)}"`, 't', null, '1', null, null];
    const copy = chunk([big]);
    encoder.load(copy, 0);
    const key = encoder.key(copy);
    expect(encoder.event(copy, key.json, '0/1', 0).json).toBe(reference(big, '0/1', 0));
  });

  it('a value the fast path does not take is checked by its writer: bad text is a DecodeError naming the column', () => {
    const encoder = new SnapshotEncoder(shape, types, 1, 'L1');
    for (const [column, bad] of [[1, '12345678901'], [10, '1.5'], [10, '--1'], [3, '1.'], [3, '.5'], [1, '1e3'], [2, ''], [11, '2026-1-01'], [12, '2026-01-01 00:00:00.1234567'], [12, '2026-01-01 00:00']] as const) {
      const values = [...(ROWS[0] as (string | null)[])];
      values[column] = bad;
      const copy = chunk([values]);
      encoder.load(copy, 0);
      const run = () => encoder.event(copy, encoder.key(copy).json, '0/1', 0);
      expect(run).toThrow(DecodeError);
      expect(run).toThrow(`public.things.${COLUMNS[column][0]}`);
    }
  });
});
