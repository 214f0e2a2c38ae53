import { describe, expect, it } from 'vitest';
import { DecodeError } from '#core/errors.ts';
import { PG_OID, TYPE_CATALOG_SQL, typeFromCatalogRow, type PgType } from '#core/values/catalog.ts';
import { RawJson, isJsonNullText, stringifyLossless } from '#core/values/lossless-json.ts';
import { TypeRegistry } from '#core/values/registry.ts';

// Catalog rows as TYPE_CATALOG_SQL returns them from PostgreSQL 15 (user OIDs from a scratch
// database with the types created in the comments).
function t(
  oid: number,
  name: string,
  kind: string,
  category: string,
  extra: Partial<Pick<PgType, 'elemOid' | 'baseOid' | 'rangeSubtypeOid' | 'multirangeRangeOid' | 'delimiter'>> = {},
): PgType {
  return { oid, name, kind, category, elemOid: 0, baseOid: 0, rangeSubtypeOid: 0, multirangeRangeOid: 0, delimiter: ',', ...extra };
}

const CATALOG: PgType[] = [
  t(23, 'int4', 'b', 'N'),
  t(22, 'int2vector', 'b', 'A', { elemOid: 21 }),
  t(600, 'point', 'b', 'G', { elemOid: 701 }),
  t(603, 'box', 'b', 'G', { elemOid: 600, delimiter: ';' }),
  t(1020, '_box', 'b', 'A', { elemOid: 603, delimiter: ';' }),
  t(1007, '_int4', 'b', 'A', { elemOid: 23 }),
  t(1016, '_int8', 'b', 'A', { elemOid: 20 }),
  t(1009, '_text', 'b', 'A', { elemOid: 25 }),
  t(199, '_json', 'b', 'A', { elemOid: 114 }),
  t(3807, '_jsonb', 'b', 'A', { elemOid: 3802 }),
  t(1001, '_bytea', 'b', 'A', { elemOid: 17 }),
  t(1022, '_float8', 'b', 'A', { elemOid: 701 }),
  t(1231, '_numeric', 'b', 'A', { elemOid: 1700 }),
  t(1185, '_timestamptz', 'b', 'A', { elemOid: 1184 }),
  t(1182, '_date', 'b', 'A', { elemOid: 1082 }),
  t(3904, 'int4range', 'r', 'R', { rangeSubtypeOid: 23 }),
  t(3905, '_int4range', 'b', 'A', { elemOid: 3904 }),
  t(3906, 'numrange', 'r', 'R', { rangeSubtypeOid: 1700 }),
  t(3908, 'tsrange', 'r', 'R', { rangeSubtypeOid: 1114 }),
  t(3910, 'tstzrange', 'r', 'R', { rangeSubtypeOid: 1184 }),
  t(3912, 'daterange', 'r', 'R', { rangeSubtypeOid: 1082 }),
  t(3926, 'int8range', 'r', 'R', { rangeSubtypeOid: 20 }),
  t(4451, 'int4multirange', 'm', 'R', { multirangeRangeOid: 3904 }),
  t(4535, 'datemultirange', 'm', 'R', { multirangeRangeOid: 3912 }),
  t(6150, '_int4multirange', 'b', 'A', { elemOid: 4451 }),
  // CREATE TYPE mood AS ENUM ('ok', 'sad')
  t(16385, 'mood', 'e', 'E'),
  t(16384, '_mood', 'b', 'A', { elemOid: 16385 }),
  // CREATE DOMAIN posint AS int4; CREATE DOMAIN posint2 AS posint
  t(16390, 'posint', 'd', 'N', { baseOid: 23 }),
  t(16389, '_posint', 'b', 'A', { elemOid: 16390 }),
  t(16420, 'posint2', 'd', 'N', { baseOid: 16390 }),
  // CREATE DOMAIN money2 AS numeric(40,2); CREATE DOMAIN intarr AS int4[]; CREATE DOMAIN doc AS jsonb
  t(16392, 'money2', 'd', 'N', { baseOid: 1700 }),
  t(16404, 'intarr', 'd', 'A', { baseOid: 1007 }),
  t(16430, 'doc', 'd', 'U', { baseOid: 3802 }),
  t(16429, '_doc', 'b', 'A', { elemOid: 16430 }),
  // CREATE TYPE floatrange AS RANGE (subtype = float8); CREATE TYPE textrange AS RANGE (subtype = text)
  t(16396, 'floatrange', 'r', 'R', { rangeSubtypeOid: 701 }),
  t(16394, 'floatmultirange', 'm', 'R', { multirangeRangeOid: 16396 }),
  t(16440, 'textrange', 'r', 'R', { rangeSubtypeOid: 25 }),
  t(16441, '_textrange', 'b', 'A', { elemOid: 16440 }),
  // CREATE TYPE address AS (street text, zip int4)
  t(16450, 'address', 'c', 'C'),
  t(16449, '_address', 'b', 'A', { elemOid: 16450 }),
];

const registry = new TypeRegistry(CATALOG);

/** Convert PostgreSQL text with the type's converter and serialize it as an event would. */
function json(oid: number, text: string): string {
  return stringifyLossless(registry.converter(oid)(text));
}

const FORTY_DIGITS = '1234567890123456789012345678901234567890';

// One row (or more) per row of the README's type table: [type, oid, PostgreSQL text, JSON in the event].
const TABLE: [string, number, string, string][] = [
  ['bool true', 16, 't', 'true'],
  ['bool false', 16, 'f', 'false'],
  ['int2', 21, '-32768', '-32768'],
  ['int4 max', 23, '2147483647', '2147483647'],
  ['int4 min', 23, '-2147483648', '-2147483648'],
  ['oid', 26, '4294967295', '4294967295'],
  ['xid', 28, '754', '754'],
  ['int8 max', 20, '9223372036854775807', '"9223372036854775807"'],
  ['int8 min', 20, '-9223372036854775808', '"-9223372036854775808"'],
  ['xid8', 5069, '18446744073709551615', '"18446744073709551615"'],
  ['numeric 40 digits', 1700, `${FORTY_DIGITS}.50`, `"${FORTY_DIGITS}.50"`],
  ['numeric small', 1700, '0.0000000000000000000000000000015', '"0.0000000000000000000000000000015"'],
  ['numeric NaN', 1700, 'NaN', '"NaN"'],
  ['numeric Infinity', 1700, 'Infinity', '"Infinity"'],
  ['numeric -Infinity', 1700, '-Infinity', '"-Infinity"'],
  ['float8 max-ish', 701, '1e+308', '1e+308'],
  ['float8 fraction', 701, '0.1', '0.1'],
  ['float8 -0', 701, '-0', '-0'],
  ['float8 NaN', 701, 'NaN', '"NaN"'],
  ['float8 -Infinity', 701, '-Infinity', '"-Infinity"'],
  ['float4', 700, '1.5e-07', '1.5e-7'],
  ['float4 Infinity', 700, 'Infinity', '"Infinity"'],
  ['money', 790, '-$1,234.50', '"-$1,234.50"'],
  ['text with quotes and newline', 25, 'say "hi"\n\\o/', '"say \\"hi\\"\\n\\\\o/"'],
  ['bpchar keeps padding', 1042, 'abc  ', '"abc  "'],
  ['varchar', 1043, 'x', '"x"'],
  ['name', 19, 'pg_class', '"pg_class"'],
  ['"char"', 18, 'x', '"x"'],
  ['uuid', 2950, '00000000-0000-0000-0000-000000000001', '"00000000-0000-0000-0000-000000000001"'],
  ['inet', 869, '192.168.0.1/24', '"192.168.0.1/24"'],
  ['macaddr', 829, '08:00:2b:01:02:03', '"08:00:2b:01:02:03"'],
  ['xml', 142, '<a/>', '"<a/>"'],
  ['bit', 1560, '1010', '"1010"'],
  ['tsvector', 3614, "'a' 'cat' 'fat'", '"\'a\' \'cat\' \'fat\'"'],
  ['point', 600, '(1,2)', '"(1,2)"'],
  ['box', 603, '(3,4),(1,2)', '"(3,4),(1,2)"'],
  ['json keeps big numbers and layout', 114, '{"n": 12345678901234567890, "f": 1.0e400}', '{"n": 12345678901234567890, "f": 1.0e400}'],
  ['json trimmed, newlines kept', 114, '  {"a":\n 1}  ', '{"a":\n 1}'],
  ['jsonb', 3802, '[12345678901234567890, "x"]', '[12345678901234567890, "x"]'],
  ['jsonb null', 3802, 'null', 'null'],
  ['bytea', 17, '\\x0a0b', '"Cgs="'],
  ['bytea binary', 17, '\\x00ff10', '"AP8Q"'],
  ['bytea empty', 17, '\\x', '""'],
  ['timestamptz 0 fraction digits', 1184, '2024-01-02 03:04:05+00', '"2024-01-02T03:04:05.000000Z"'],
  ['timestamptz 1 fraction digit', 1184, '2024-01-02 03:04:05.1+00', '"2024-01-02T03:04:05.100000Z"'],
  ['timestamptz 3 fraction digits', 1184, '2024-01-02 03:04:05.123+00', '"2024-01-02T03:04:05.123000Z"'],
  ['timestamptz 6 fraction digits', 1184, '2024-01-02 03:04:05.123456+00', '"2024-01-02T03:04:05.123456Z"'],
  ['timestamptz +05:30 kept', 1184, '2024-01-02 03:04:05+05:30', '"2024-01-02T03:04:05.000000+05:30"'],
  ['timestamptz -03 kept', 1184, '2024-01-02 03:04:05.5-03', '"2024-01-02T03:04:05.500000-03:00"'],
  ['timestamptz LMT offset with seconds', 1184, '1900-01-01 00:00:00+00:19:32', '"1900-01-01T00:00:00.000000+00:19:32"'],
  ['timestamptz BC', 1184, '0044-03-15 12:00:00+00 BC', '"-0043-03-15T12:00:00.000000Z"'],
  ['timestamptz 1 BC is year 0', 1184, '0001-01-01 00:00:00+00 BC', '"0000-01-01T00:00:00.000000Z"'],
  ['timestamptz year 10000', 1184, '10000-01-01 00:00:00+00', '"+10000-01-01T00:00:00.000000Z"'],
  ['timestamptz infinity', 1184, 'infinity', '"infinity"'],
  ['timestamptz -infinity', 1184, '-infinity', '"-infinity"'],
  ['timestamp', 1114, '2024-01-02 03:04:05.123456', '"2024-01-02T03:04:05.123456"'],
  ['timestamp BC', 1114, '4713-01-01 00:00:00 BC', '"-4712-01-01T00:00:00.000000"'],
  ['timestamp max', 1114, '294276-12-31 23:59:59.999999', '"+294276-12-31T23:59:59.999999"'],
  ['date', 1082, '2024-01-02', '"2024-01-02"'],
  ['date BC', 1082, '0044-03-15 BC', '"-0043-03-15"'],
  ['date year 10000', 1082, '10000-01-01', '"+10000-01-01"'],
  ['date -infinity', 1082, '-infinity', '"-infinity"'],
  ['time', 1083, '12:34:56.5', '"12:34:56.500000"'],
  ['time 24:00', 1083, '24:00:00', '"24:00:00.000000"'],
  ['timetz', 1266, '12:34:56.123-08', '"12:34:56.123000-08:00"'],
  ['timetz +05:30', 1266, '12:34:56+05:30', '"12:34:56.000000+05:30"'],
  ['timetz zero offset', 1266, '00:00:00+00', '"00:00:00.000000+00:00"'],
  ['interval', 1186, 'P1Y2M3DT4H5M6.5S', '"P1Y2M3DT4H5M6.5S"'],
  ['interval negative', 1186, 'P-1D', '"P-1D"'],
  ['interval zero', 1186, 'PT0S', '"PT0S"'],
  ['int4[] 2-D with NULL', 1007, '{{1,2},{3,NULL}}', '[[1,2],[3,null]]'],
  ['int4[] empty', 1007, '{}', '[]'],
  ['int4[] explicit bounds dropped', 1007, '[0:1]={1,2}', '[1,2]'],
  ['int4[] 2-D explicit bounds', 1007, '[1:1][-2:-1]={{1,2}}', '[[1,2]]'],
  ['int8[]', 1016, '{9223372036854775807,NULL}', '["9223372036854775807",null]'],
  [
    'text[] quoting and escapes',
    1009,
    '{a,"b c","x\\"y","back\\\\slash","NULL",NULL,"","{}",","," lead"}',
    '["a","b c","x\\"y","back\\\\slash","NULL",null,"","{}",","," lead"]',
  ],
  ['numeric[]', 1231, '{1.5,NaN}', '["1.5","NaN"]'],
  ['float8[]', 1022, '{1e+300,-0,-Infinity}', '[1e+300,-0,"-Infinity"]'],
  ['bytea[]', 1001, '{"\\\\x0a",NULL}', '["Cg==",null]'],
  ['timestamptz[]', 1185, '{"2024-01-02 03:04:05+00","0044-03-15 12:00:00+00 BC"}', '["2024-01-02T03:04:05.000000Z","-0043-03-15T12:00:00.000000Z"]'],
  ['date[] with infinity', 1182, '{2024-01-01,infinity}', '["2024-01-01","infinity"]'],
  ['box[] uses ; delimiter', 1020, '{(3,4),(1,2);(7,8),(5,6)}', '["(3,4),(1,2)","(7,8),(5,6)"]'],
  // json[]/jsonb[] elements are their JSON text as strings: SQL nesting is the only JSON nesting.
  ['json[] with big number, JSON null and NULL', 199, '{"{\\"a\\":12345678901234567890}","null",NULL}', '["{\\"a\\":12345678901234567890}","null",null]'],
  ['jsonb[] object and array elements', 3807, '{"{\\"a\\": 1}","[1, 2]"}', '["{\\"a\\": 1}","[1, 2]"]'],
  ['jsonb[] string, number and boolean elements', 3807, '{"\\"x\\"",1,1.50,true}', '["\\"x\\"","1","1.50","true"]'],
  ['jsonb[] string holding a backslash', 3807, '{"\\"a\\\\\\\\b\\""}', '["\\"a\\\\\\\\b\\""]'],
  ['jsonb[] unquoted JSON array element', 3807, '{[1]}', '["[1]"]'],
  ['jsonb[] 2-D', 3807, '{{1,"\\"x\\""},{NULL,"null"}}', '[["1","\\"x\\""],[null,"null"]]'],
  ['jsonb[] 2-D explicit bounds', 3807, '[0:0][1:2]={{"[]","{}"}}', '[["[]","{}"]]'],
  ['jsonb[] empty', 3807, '{}', '[]'],
  ['json[] element trimmed like scalar json, inner newline kept', 199, '{" {\\"a\\":\n1} "}', '["{\\"a\\":\\n1}"]'],
  ['array of a domain over jsonb', 16429, '{"{\\"n\\": 12345678901234567890}",NULL}', '["{\\"n\\": 12345678901234567890}",null]'],
  ['domain over int4', 16390, '42', '42'],
  ['domain over a domain', 16420, '7', '7'],
  ['domain over numeric', 16392, `${FORTY_DIGITS}.00`, `"${FORTY_DIGITS}.00"`],
  ['domain over int4[]', 16404, '{1,2}', '[1,2]'],
  ['domain over jsonb', 16430, '{"n": 12345678901234567890}', '{"n": 12345678901234567890}'],
  ['array of a domain', 16389, '{1,NULL,3}', '[1,null,3]'],
  ['enum', 16385, 'sad', '"sad"'],
  ['enum[]', 16384, '{ok,sad,NULL}', '["ok","sad",null]'],
  ['int4range', 3904, '[1,5)', '{"lower":1,"upper":5,"lowerInclusive":true,"upperInclusive":false}'],
  ['int4range lower unbounded', 3904, '(,4)', '{"lower":null,"upper":4,"lowerInclusive":false,"upperInclusive":false}'],
  ['int4range empty', 3904, 'empty', '{"empty":true}'],
  ['int8range', 3926, '[9223372036854775806,)', '{"lower":"9223372036854775806","upper":null,"lowerInclusive":true,"upperInclusive":false}'],
  ['numrange', 3906, '[1.5,)', '{"lower":"1.5","upper":null,"lowerInclusive":true,"upperInclusive":false}'],
  [
    'tstzrange inclusive, infinity is a value',
    3910,
    '["2024-01-01 00:00:00+00",infinity]',
    '{"lower":"2024-01-01T00:00:00.000000Z","upper":"infinity","lowerInclusive":true,"upperInclusive":true}',
  ],
  ['tsrange', 3908, '["2024-01-01 00:00:00.5",)', '{"lower":"2024-01-01T00:00:00.500000","upper":null,"lowerInclusive":true,"upperInclusive":false}'],
  ['daterange', 3912, '[2024-01-01,2024-02-02)', '{"lower":"2024-01-01","upper":"2024-02-02","lowerInclusive":true,"upperInclusive":false}'],
  ['user range over float8', 16396, '[1.5,2.5]', '{"lower":1.5,"upper":2.5,"lowerInclusive":true,"upperInclusive":true}'],
  ['user range over text, quoted bounds', 16440, '["a b","c\\\\""d")', '{"lower":"a b","upper":"c\\\\\\"d","lowerInclusive":true,"upperInclusive":false}'],
  ['user range over text, empty string bound', 16440, '["",z)', '{"lower":"","upper":"z","lowerInclusive":true,"upperInclusive":false}'],
  [
    'int4range[]',
    3905,
    '{"[1,5)",empty,"(,4)"}',
    '[{"lower":1,"upper":5,"lowerInclusive":true,"upperInclusive":false},{"empty":true},{"lower":null,"upper":4,"lowerInclusive":false,"upperInclusive":false}]',
  ],
  ['range[] with quoted bounds', 16441, '{"[\\"a,b\\",\\"z\\"\\"\\")"}', '[{"lower":"a,b","upper":"z\\"","lowerInclusive":true,"upperInclusive":false}]'],
  [
    'int4multirange',
    4451,
    '{[1,3),[5,7)}',
    '[{"lower":1,"upper":3,"lowerInclusive":true,"upperInclusive":false},{"lower":5,"upper":7,"lowerInclusive":true,"upperInclusive":false}]',
  ],
  ['int4multirange empty', 4451, '{}', '[]'],
  ['datemultirange unbounded', 4535, '{[2024-01-01,)}', '[{"lower":"2024-01-01","upper":null,"lowerInclusive":true,"upperInclusive":false}]'],
  ['user multirange', 16394, '{[1.5,2.5)}', '[{"lower":1.5,"upper":2.5,"lowerInclusive":true,"upperInclusive":false}]'],
  ['multirange[]', 6150, '{"{[1,3)}",NULL}', '[[{"lower":1,"upper":3,"lowerInclusive":true,"upperInclusive":false}],null]'],
  ['composite as text', 16450, '(1,"a b")', '"(1,\\"a b\\")"'],
  ['composite[] elements as text', 16449, '{"(1,x)"}', '["(1,x)"]'],
  ['int2vector stays text', 22, '1 2 3', '"1 2 3"'],
  ['unknown OID (hstore)', 99999, '"a"=>"1"', '"\\"a\\"=>\\"1\\""'],
];

describe('converters: one row per README type-table row', () => {
  it.each(TABLE)('%s (oid %i): %j', (_name, oid, text, expected) => {
    // Act
    const actual = json(oid, text);
    // Assess
    expect(actual).toBe(expected);
  });
});

describe('writers: the JSON fragments events are built from', () => {
  it.each(TABLE)('%s (oid %i): writer gives %j too', (_name, oid, text, expected) => {
    expect(registry.writer(oid)(text)).toBe(expected);
  });

  it('reject what the converter rejects', () => {
    expect(() => registry.writer(PG_OID.int4)('12x')).toThrow(DecodeError);
    expect(() => registry.writer(PG_OID.timestamptz)('yesterday')).toThrow(DecodeError);
  });
});

describe('converters: JSON values', () => {
  it('returns RawJson for json and jsonb, verbatim', () => {
    const value = registry.converter(PG_OID.jsonb)('{"a": 12345678901234567890}');
    expect(value).toBeInstanceOf(RawJson);
    expect((value as RawJson).text).toBe('{"a": 12345678901234567890}');
  });

  it('keeps 12345678901234567890 verbatim inside a json array', () => {
    const out = json(PG_OID.json, '[12345678901234567890, 0.10000000000000000001]');
    expect(out).toContain('12345678901234567890');
    expect(out).toContain('0.10000000000000000001');
  });

  it('detects the JSON literal null, padded or not, and nothing else', () => {
    expect(isJsonNullText(new RawJson('null'))).toBe(true);
    expect(isJsonNullText(new RawJson(' null\n'))).toBe(true);
    expect(isJsonNullText(new RawJson('"null"'))).toBe(false);
    expect(isJsonNullText(new RawJson('[null]'))).toBe(false);
  });

  it('numbers from int4 and float8 are JS numbers, int8 and numeric strings', () => {
    expect(registry.converter(PG_OID.int4)('-12')).toBe(-12);
    expect(registry.converter(PG_OID.float8)('-0')).toBe(-0);
    expect(registry.converter(PG_OID.int8)('12')).toBe('12');
    expect(registry.converter(PG_OID.numeric)('1.50')).toBe('1.50');
  });
});

describe('json[] and jsonb[]: each element is its JSON text as a JSON string', () => {
  const convert = (oid: number, text: string) => registry.converter(oid)(text);

  it('jsonb[] whose element is a JSON array is not confused with a two-dimensional array', () => {
    // ARRAY['[1, "x"]'::jsonb] and '{{1,"\"x\""}}'::jsonb[] both arrived as [[1,"x"]].
    const oneElement = json(3807, '{"[1, \\"x\\"]"}');
    const twoDimensional = json(3807, '{{1,"\\"x\\""}}');
    expect(oneElement).toBe('["[1, \\"x\\"]"]');
    expect(twoDimensional).toBe('[["1","\\"x\\""]]');
    expect(JSON.parse(oneElement)).not.toEqual(JSON.parse(twoDimensional));
  });

  it('a JSON null element is not confused with an SQL NULL element', () => {
    expect(convert(3807, '{"null",NULL}')).toEqual(['null', null]);
    expect(convert(199, '{"null",NULL}')).toEqual(['null', null]);
    expect(convert(16429, '{"null",NULL}')).toEqual(['null', null]);
  });

  it('parsing each element gives back the element value', () => {
    const value = convert(199, '{{"{\\"k\\": [1, {\\"n\\": null}]}","\\"s\\""},{"[[1], 2]",-1.5e3}}') as string[][];
    expect(value.map((row) => row.map((element) => JSON.parse(element)))).toEqual([
      [{ k: [1, { n: null }] }, 's'],
      [[[1], 2], -1500],
    ]);
  });

  it('scalar json and jsonb stay embedded JSON, also through a domain', () => {
    expect(json(PG_OID.jsonb, '[1, "x"]')).toBe('[1, "x"]');
    expect(json(16430, '[1, "x"]')).toBe('[1, "x"]');
    expect(convert(16430, '[1]')).toBeInstanceOf(RawJson);
  });
});

describe('converters: bad text throws DecodeError BAD_VALUE, never a guess', () => {
  it.each([
    ['bool', 16, 'true'],
    ['int4', 23, '12a'],
    ['int4 empty', 23, ''],
    ['int4 lone sign', 23, '-'],
    ['int8', 20, '1e5'],
    ['numeric', 1700, '1.5e3'],
    ['numeric trailing point', 1700, '1.'],
    ['float8 hex', 701, '0x10'],
    ['float8 padded', 701, ' 1'],
    ['float8 nan lowercase', 701, 'nan'],
    ['bytea escape format', 17, 'abc\\000'],
    ['bytea odd hex', 17, '\\x0a0'],
    ['bytea bad hex', 17, '\\x0g'],
    ['timestamptz DateStyle=Postgres', 1184, 'Tue Jan 02 03:04:05 2024 UTC'],
    ['timestamptz without offset', 1184, '2024-01-02 03:04:05'],
    ['timestamptz 7 fraction digits', 1184, '2024-01-02 03:04:05.1234567+00'],
    ['timestamp with junk', 1114, '2024-01-02 03:04:05 AD'],
    ['date DateStyle=German', 1082, '02.01.2024'],
    ['time', 1083, '12:34'],
    ['timetz without offset', 1266, '12:34:56'],
    ['interval IntervalStyle=postgres', 1186, '1 year 2 mons'],
    ['json empty', 114, ''],
    ['array unterminated', 1007, '{1,2'],
    ['array missing brace', 1007, '1,2'],
    ['array bad element', 1007, '{1,x}'],
    ['array unterminated quote', 1009, '{"abc}'],
    ['array trailing text', 1007, '{1}2'],
    ['range bad bound', 3904, '[1,x)'],
    ['range missing comma', 3904, '[1)'],
    ['multirange trailing text', 4451, '{[1,3)}x'],
  ] as [string, number, string][])('%s: %j', (_name, oid, text) => {
    const convert = registry.converter(oid);
    expect(() => convert(text)).toThrow(DecodeError);
    try {
      convert(text);
    } catch (err) {
      expect((err as DecodeError).code).toBe('PGRELAY_BAD_VALUE');
    }
  });

  it('names the type and a short prefix of the text', () => {
    const long = `x${'9'.repeat(100)}`;
    expect(() => registry.converter(PG_OID.int8)(long)).toThrow(/int8 value "x9{39}…"/);
  });
});

describe('stringifyLossless', () => {
  it('matches JSON.stringify for plain values', () => {
    const value = {
      a: 1,
      b: 'two',
      c: [true, false, null, 1.5, -3],
      d: { e: { f: [] }, g: {} },
      'key "quoted"\n': 'tab\there, quote " backslash \\ and \u0001 and \u2028',
      bmp: 'é✓\ufffd',
    };
    expect(stringifyLossless(value)).toBe(JSON.stringify(value));
  });

  it('escapes what an SQS body may not hold raw: U+FFFE, U+FFFF and characters past U+FFFF', () => {
    const text = 'a\uffff b\ufffe 😀';
    const long = `${'x'.repeat(70)}😀`;
    const written = stringifyLossless({ [text]: [text, long, new RawJson(`{"s": "${text}"}`)] });
    expect(written).toBe(`{"a\\uffff b\\ufffe \\ud83d\\ude00":["a\\uffff b\\ufffe \\ud83d\\ude00","${'x'.repeat(70)}\\ud83d\\ude00",{"s": "a\\uffff b\\ufffe \\ud83d\\ude00"}]}`);
    expect(JSON.parse(written)).toEqual({ [text]: [text, long, { s: text }] });
  });

  it('skips undefined, function and symbol properties like JSON.stringify', () => {
    const value = { a: undefined, b: 1, c: () => 1, d: Symbol('x'), e: null };
    expect(stringifyLossless(value)).toBe('{"b":1,"e":null}');
  });

  it('writes undefined array items as null and non-finite numbers as null', () => {
    expect(stringifyLossless([undefined, NaN, Infinity, 1])).toBe('[null,null,null,1]');
  });

  it('writes RawJson verbatim, trimmed, inside arrays and objects', () => {
    const value = { doc: new RawJson(' {"n": 12345678901234567890}\n'), list: [new RawJson('null'), new RawJson('[1,\n2]')] };
    expect(stringifyLossless(value)).toBe('{"doc":{"n": 12345678901234567890},"list":[null,[1,\n2]]}');
    expect(JSON.parse(stringifyLossless(value)).list).toEqual([null, [1, 2]]);
  });

  it('keeps the sign of -0', () => {
    expect(stringifyLossless([-0, 0])).toBe('[-0,0]');
  });

  it('honours toJSON and refuses what JSON cannot hold', () => {
    expect(stringifyLossless({ at: new Date(Date.UTC(2024, 0, 2)) })).toBe('{"at":"2024-01-02T00:00:00.000Z"}');
    expect(() => stringifyLossless(undefined)).toThrow(TypeError);
    expect(() => stringifyLossless({ n: 1n })).toThrow(TypeError);
  });
});

describe('TypeRegistry', () => {
  it('caches one converter per OID', () => {
    expect(registry.converter(1007)).toBe(registry.converter(1007));
  });

  it('knows built-ins without a catalog and treats unknown OIDs as text', () => {
    const empty = new TypeRegistry([]);
    expect(empty.has(PG_OID.timestamptz)).toBe(true);
    expect(empty.has(16390)).toBe(false);
    expect(empty.converter(16390)('42')).toBe('42');
  });

  it('rebuilds converters after add() learns a type', () => {
    const types = new TypeRegistry([t(16389, '_posint', 'b', 'A', { elemOid: 16390 })]);
    expect(types.converter(16389)('{1}')).toEqual(['1']);
    types.add([t(16390, 'posint', 'd', 'N', { baseOid: 23 })]);
    expect(types.has(16390)).toBe(true);
    expect(types.converter(16389)('{1}')).toEqual([1]);
  });

  it('resolves a domain chain to its base type OID', () => {
    expect(registry.baseOid(16420)).toBe(23);
    expect(registry.baseOid(16430)).toBe(PG_OID.jsonb);
    expect(registry.baseOid(PG_OID.json)).toBe(PG_OID.json);
    expect(registry.baseOid(99999)).toBe(99999);
  });

  it('maps catalog rows whether OIDs come as numbers or strings', () => {
    const row = {
      oid: '16394',
      name: 'floatmultirange',
      kind: 'm',
      category: 'R',
      elem_oid: 0,
      base_oid: 0,
      range_subtype_oid: 0,
      multirange_range_oid: 16396,
      delimiter: ',',
    };
    expect(typeFromCatalogRow(row)).toEqual(t(16394, 'floatmultirange', 'm', 'R', { multirangeRangeOid: 16396 }));
    expect(() => typeFromCatalogRow({ ...row, oid: 'x' })).toThrow(DecodeError);
  });

  it('selects every column typeFromCatalogRow reads', () => {
    for (const column of ['oid', 'name', 'kind', 'category', 'elem_oid', 'base_oid', 'range_subtype_oid', 'multirange_range_oid', 'delimiter']) {
      expect(TYPE_CATALOG_SQL).toContain(` AS ${column}`);
    }
  });
});
