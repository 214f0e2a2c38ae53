/**
 * the README's type table, end to end: every row of the type table is one case below. Each sample is a
 * column of one wide table; one row with every value goes through real PostgreSQL (pgoutput),
 * the real streamer and the SQS emulator, and each column must arrive as exactly the JSON
 * text the table promises — checked in the raw SQS body (JSON.parse would round
 * 12345678901234567890 and turn -0 into 0) and, parsed, in the event's `after`.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { receiveUntil, testFifoQueue, type ReceivedMessage } from '#test/helpers/sqs.ts';
import { requestBootstrap } from '#shared/bootstrap-state.ts';
import { ensureStateSchema } from '#shared/source-state.ts';
import { bootstrapOf, changesOf, slotNameFor, startStreamer, streamerConfig, type ReceivedChange, type RunningStreamer } from '#test/helpers/streamer.ts';

interface Sample {
  /** Column type, as in CREATE TABLE. */
  type: string;
  /** SQL expression of the value (cast to `type` on insert). */
  sql: string;
  /** The exact JSON text the column must have in the ChangeEvent. */
  json: string;
}

interface TypeCase {
  /** The README type-table row this case proves. */
  row: string;
  samples: Sample[];
  /** More to check on the insert event; `columns` are this case's column names, in sample order. */
  also?: { name: string; check: (change: ReceivedChange, columns: string[]) => void };
}

const s = (type: string, sql: string, json: string): Sample => ({ type, sql, json });
const str = (text: string): string => JSON.stringify(text);
const range = (lower: string, upper: string, lowerInclusive: boolean, upperInclusive: boolean): string =>
  `{"lower":${lower},"upper":${upper},"lowerInclusive":${lowerInclusive},"upperInclusive":${upperInclusive}}`;

const LONG_TEXT = `${'long text, past the 64-character fast path, with a "quote" — '.repeat(3)}end`;
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

/** Types the table needs, created before the streamer starts (so they are in its catalog). */
const SETUP_SQL = `
  CREATE EXTENSION hstore;
  CREATE TYPE mood AS ENUM ('happy', 'sad');
  CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
  CREATE DOMAIN small_posint AS posint CHECK (VALUE < 100);
  CREATE DOMAIN amount AS numeric(12, 2);
  CREATE DOMAIN json_doc AS jsonb;
  CREATE TYPE pair AS (n int, label text);
`;

const CASES: TypeCase[] = [
  { row: 'bool', samples: [s('bool', 'true', 'true'), s('bool', 'false', 'false')] },
  {
    row: 'int2, int4, oid, xid, cid',
    samples: [
      s('int2', '-32768', '-32768'),
      s('int2', '32767', '32767'),
      s('int4', '-2147483648', '-2147483648'),
      s('int4', '2147483647', '2147483647'),
      s('oid', '4294967295', '4294967295'),
      s('xid', `'123'`, '123'),
      s('cid', `'7'`, '7'),
    ],
  },
  {
    row: 'int8, xid8',
    samples: [
      s('int8', '-9223372036854775808', '"-9223372036854775808"'),
      s('int8', '9223372036854775807', '"9223372036854775807"'),
      s('xid8', `'18446744073709551615'`, '"18446744073709551615"'),
    ],
  },
  {
    row: 'numeric',
    samples: [
      s('numeric', `'1234567890123456789012345678901234567890.0123456789'`, '"1234567890123456789012345678901234567890.0123456789"'),
      s('numeric(10,2)', `'1.5'`, '"1.50"'),
      s('numeric', `'-0.000001'`, '"-0.000001"'),
      s('numeric', `'1e30'`, '"1000000000000000000000000000000"'),
      s('numeric', `'NaN'`, '"NaN"'),
      s('numeric', `'Infinity'`, '"Infinity"'),
      s('numeric', `'-Infinity'`, '"-Infinity"'),
    ],
  },
  {
    row: 'float4, float8',
    samples: [
      s('float8', `'1e308'`, '1e+308'),
      s('float8', `'1.5e-07'`, '1.5e-7'),
      s('float8', `'5e-324'`, '5e-324'),
      s('float8', '0.1::float8 + 0.2::float8', '0.30000000000000004'),
      s('float8', `'-0'`, '-0'),
      s('float4', `'-0'`, '-0'),
      s('float4', `'0.1'`, '0.1'),
      s('float4', `'3.4028235e+38'`, '3.4028235e+38'),
    ],
  },
  {
    row: 'float4, float8 non-finite',
    samples: [
      s('float4', `'NaN'`, '"NaN"'),
      s('float8', `'NaN'`, '"NaN"'),
      s('float8', `'Infinity'`, '"Infinity"'),
      s('float8', `'-Infinity'`, '"-Infinity"'),
      s('float4', `'-Infinity'`, '"-Infinity"'),
    ],
  },
  // The database is created with lc_monetary = 'C' (see beforeAll): money's text follows it.
  { row: 'money', samples: [s('money', `'1234.5'`, '"$1,234.50"'), s('money', `'-1.5'`, '"-$1.50"')] },
  {
    row: 'text-like (text, varchar, bpchar, name, "char", uuid, inet, cidr, macaddr, xml, bit, tsvector, geometric, pg_lsn, jsonpath, reg*)',
    samples: [
      // JSON escapes control characters; characters past U+FFFF go as surrogate escapes (see the last test).
      s('text', `E'héllo "wörld" ✓ 😀\\nline 2\\ttab \\\\ backslash \\x01'`, '"héllo \\"wörld\\" ✓ \\ud83d\\ude00\\nline 2\\ttab \\\\ backslash \\u0001"'),
      s('text', `'${LONG_TEXT}'`, str(LONG_TEXT)),
      s('text', `''`, '""'),
      s('varchar(10)', `'abc'`, '"abc"'),
      s('char(5)', `'abc'`, '"abc  "'),
      s('name', `'a_name'`, '"a_name"'),
      s('"char"', `'x'`, '"x"'),
      s('uuid', `'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'`, '"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"'),
      s('inet', `'192.168.0.1/24'`, '"192.168.0.1/24"'),
      s('inet', `'::1'`, '"::1"'),
      s('cidr', `'10.0.0.0/8'`, '"10.0.0.0/8"'),
      s('macaddr', `'08:00:2B:01:02:03'`, '"08:00:2b:01:02:03"'),
      s('macaddr8', `'08:00:2b:01:02:03:04:05'`, '"08:00:2b:01:02:03:04:05"'),
      s('xml', `'<a x="1">t</a>'`, str('<a x="1">t</a>')),
      s('bit(4)', `B'1010'`, '"1010"'),
      s('varbit', `B'101'`, '"101"'),
      s('tsvector', `'a fat cat'`, str(`'a' 'cat' 'fat'`)),
      s('tsquery', `'a & b'`, str(`'a' & 'b'`)),
      s('point', `'(1,2)'`, '"(1,2)"'),
      s('box', `'((1,2),(3,4))'`, '"(3,4),(1,2)"'),
      s('pg_lsn', `'16/B374D848'`, '"16/B374D848"'),
      s('jsonpath', `'$.a[*] ? (@ > 1)'`, str('$."a"[*]?(@ > 1)')),
      s('regclass', `'pg_class'`, '"pg_class"'),
    ],
  },
  {
    row: 'json, jsonb',
    samples: [
      s('jsonb', `'{"n": 12345678901234567890}'`, '{"n": 12345678901234567890}'),
      s('json', `'{"n": 12345678901234567890}'`, '{"n": 12345678901234567890}'),
      // json keeps key order, duplicate keys and number spelling; the surrounding blanks go.
      s('json', `'  {"b": 1, "a": 2.50, "a": 3}  '`, '{"b": 1, "a": 2.50, "a": 3}'),
      s('jsonb', `'{"s": "é\\"✓", "l": [true, null]}'`, '{"l": [true, null], "s": "é\\"✓"}'),
      s('jsonb', `'"just a string"'`, '"just a string"'),
    ],
  },
  {
    row: 'json, jsonb holding null (also through a domain)',
    samples: [s('json', `'null'`, 'null'), s('jsonb', `'null'`, 'null'), s('json_doc', `'null'`, 'null'), s('jsonb', 'NULL', 'null')],
    also: {
      name: 'jsonNulls names the columns holding the JSON literal null, not the SQL NULL one',
      check(change, [jsonNull, jsonbNull, domainNull, sqlNull]) {
        expect(change.jsonNulls).toEqual({ after: [jsonNull, jsonbNull, domainNull] });
        expect(change.jsonNulls?.after).not.toContain(sqlNull);
      },
    },
  },
  {
    row: 'bytea',
    samples: [
      s('bytea', `'\\x0a0b'`, '"Cgs="'),
      s('bytea', `'\\x'`, '""'),
      s('bytea', `'\\x00ff0000'`, '"AP8AAA=="'),
      s('bytea', `'\\x${ALL_BYTES.toString('hex')}'`, str(ALL_BYTES.toString('base64'))),
    ],
  },
  {
    row: 'timestamptz',
    samples: [
      s('timestamptz', `'2024-01-02 03:04:05.1+00'`, '"2024-01-02T03:04:05.100000Z"'),
      s('timestamptz', `'2024-01-02 03:04:05.123456+00'`, '"2024-01-02T03:04:05.123456Z"'),
      s('timestamptz', `'2024-01-02 03:04:05+02'`, '"2024-01-02T01:04:05.000000Z"'),
      s('timestamptz', `'2024-06-30 23:59:59.999999-07:30'`, '"2024-07-01T07:29:59.999999Z"'),
    ],
  },
  {
    row: 'timestamp',
    samples: [
      s('timestamp', `'2024-01-02 03:04:05'`, '"2024-01-02T03:04:05.000000"'),
      s('timestamp', `'2024-01-02 03:04:05.000001'`, '"2024-01-02T03:04:05.000001"'),
    ],
  },
  { row: 'date', samples: [s('date', `'2024-01-02'`, '"2024-01-02"')] },
  {
    row: 'date / timestamp / timestamptz infinities',
    samples: [
      s('date', `'infinity'`, '"infinity"'),
      s('date', `'-infinity'`, '"-infinity"'),
      s('timestamp', `'infinity'`, '"infinity"'),
      s('timestamptz', `'-infinity'`, '"-infinity"'),
    ],
  },
  {
    row: 'BC and five-digit years',
    samples: [
      s('timestamptz', `'0044-03-15 12:00:00+00 BC'`, '"-0043-03-15T12:00:00.000000Z"'),
      s('date', `'0001-01-01 BC'`, '"0000-01-01"'),
      s('timestamp', `'4713-01-01 00:00:00 BC'`, '"-4712-01-01T00:00:00.000000"'),
      s('date', `'10000-01-01'`, '"+10000-01-01"'),
      s('timestamp', `'12345-06-07 08:09:10.5'`, '"+12345-06-07T08:09:10.500000"'),
    ],
  },
  {
    row: 'time',
    samples: [
      s('time', `'12:34:56.5'`, '"12:34:56.500000"'),
      s('time', `'00:00:00'`, '"00:00:00.000000"'),
      s('time', `'23:59:59.999999'`, '"23:59:59.999999"'),
      s('time', `'24:00:00'`, '"24:00:00.000000"'),
    ],
  },
  {
    row: 'timetz',
    samples: [
      s('timetz', `'12:34:56.123-08'`, '"12:34:56.123000-08:00"'),
      s('timetz', `'01:02:03+00'`, '"01:02:03.000000+00:00"'),
      s('timetz', `'01:02:03+05:30'`, '"01:02:03.000000+05:30"'),
    ],
  },
  {
    row: 'interval',
    samples: [
      s('interval', `'1 year 2 months 3 days 4 hours 5 minutes 6.5 seconds'`, '"P1Y2M3DT4H5M6.5S"'),
      s('interval', `'36 hours'`, '"PT36H"'),
      s('interval', `'-1 day'`, '"P-1D"'),
      s('interval', `'0'`, '"PT0S"'),
    ],
  },
  {
    row: 'arrays of any type',
    samples: [
      s('int4[]', `'{1,NULL,3}'`, '[1,null,3]'),
      s('int4[]', `'{{1,2},{3,NULL}}'`, '[[1,2],[3,null]]'),
      s('int4[]', `'{}'`, '[]'),
      s('text[]', `ARRAY['a "q"', 'b,c', '{d}', 'NULL', NULL, '', 'back\\slash', ' sp ', 'é✓']`, JSON.stringify(['a "q"', 'b,c', '{d}', 'NULL', null, '', 'back\\slash', ' sp ', 'é✓'])),
      s('int8[]', `'{1,9223372036854775807}'`, '["1","9223372036854775807"]'),
      s('numeric[]', `'{1.50,NaN}'`, '["1.50","NaN"]'),
      s('bool[]', `'{t,f,NULL}'`, '[true,false,null]'),
      s('timestamptz[]', `'{"2024-01-02 03:04:05+00",infinity}'`, '["2024-01-02T03:04:05.000000Z","infinity"]'),
      s('bytea[]', `ARRAY['\\x0a0b'::bytea]`, '["Cgs="]'),
    ],
  },
  {
    row: 'arrays with explicit bounds',
    samples: [s('int4[]', `'[0:1]={1,2}'`, '[1,2]'), s('int4[]', `'[-1:0][2:3]={{1,2},{3,4}}'`, '[[1,2],[3,4]]')],
  },
  { row: 'box[]', samples: [s('box[]', `'{(3,4),(1,2);(7,8),(5,6)}'`, '["(3,4),(1,2)","(7,8),(5,6)"]')] },
  {
    // Each element is its JSON text as a JSON string: the SQL array's nesting is the only array nesting.
    row: 'json[], jsonb[]',
    samples: [
      s('jsonb[]', `ARRAY['{"n":1}'::jsonb, NULL, 'null'::jsonb]`, JSON.stringify(['{"n": 1}', null, 'null'])),
      s('json[]', `ARRAY['{"big": 12345678901234567890}'::json]`, JSON.stringify(['{"big": 12345678901234567890}'])),
      // These two both arrived as [[1,"x"]]: one element holding a JSON array, and a 1×2 array.
      s('jsonb[]', `ARRAY['[1, "x"]'::jsonb]`, JSON.stringify(['[1, "x"]'])),
      s('jsonb[]', String.raw`'{{1,"\"x\""}}'`, JSON.stringify([['1', '"x"']])),
      // json keeps each element's text (number spelling, duplicate keys); the blanks around it go.
      s(
        'json[]',
        `ARRAY['"a string"', ' -1.50e3 ', 'true', '[[1], {"k": [null]}]', '{"a": 1, "a": 2}', 'null', NULL]`,
        JSON.stringify(['"a string"', '-1.50e3', 'true', '[[1], {"k": [null]}]', '{"a": 1, "a": 2}', 'null', null]),
      ),
      s('jsonb[]', String.raw`ARRAY['{"s": "back\\slash \"q\""}'::jsonb]`, JSON.stringify([String.raw`{"s": "back\\slash \"q\""}`])),
      s('json[]', `ARRAY[ARRAY['{"a":1}'::json, NULL], ARRAY['[]'::json, '"s"'::json]]`, JSON.stringify([['{"a":1}', null], ['[]', '"s"']])),
      s('jsonb[]', `'[0:1][1:1][1:1]={{{"[1]"}},{{NULL}}}'`, JSON.stringify([[['[1]']], [[null]]])),
      s('jsonb[]', `'{}'`, '[]'),
      s('json_doc[]', `ARRAY['[1, 2]'::jsonb, NULL, 'null'::jsonb]`, JSON.stringify(['[1, 2]', null, 'null'])),
    ],
  },
  {
    row: 'domains',
    samples: [
      s('posint', '42', '42'),
      s('small_posint', '7', '7'),
      s('amount', `'1.5'`, '"1.50"'),
      s('posint[]', `'{1,2}'`, '[1,2]'),
      s('json_doc', `'{"n": 12345678901234567890}'`, '{"n": 12345678901234567890}'),
    ],
  },
  { row: 'enums', samples: [s('mood', `'happy'`, '"happy"'), s('mood[]', `'{happy,sad}'`, '["happy","sad"]')] },
  {
    row: 'ranges',
    samples: [
      s('int4range', `'[1,5)'`, range('1', '5', true, false)),
      s('int4range', `'(,3]'`, range('null', '4', false, false)),
      s('int8range', `'[1,9223372036854775806]'`, range('"1"', '"9223372036854775807"', true, false)),
      s('numrange', `'[1.5,2.50]'`, range('"1.5"', '"2.50"', true, true)),
      s('numrange', `'(,)'`, range('null', 'null', false, false)),
      s('tstzrange', `'[2024-01-01 00:00:00+00,infinity)'`, range('"2024-01-01T00:00:00.000000Z"', '"infinity"', true, false)),
      s('tsrange', `'[2024-01-01 10:00,2024-01-01 11:00)'`, range('"2024-01-01T10:00:00.000000"', '"2024-01-01T11:00:00.000000"', true, false)),
      s('daterange', `'[2024-01-01,2024-01-31]'`, range('"2024-01-01"', '"2024-02-01"', true, false)),
      s('daterange', `'(,)'`, range('null', 'null', false, false)),
    ],
  },
  { row: 'empty range', samples: [s('int4range', `'empty'`, '{"empty":true}'), s('numrange', `'[3,3)'`, '{"empty":true}')] },
  {
    row: 'multiranges',
    samples: [
      s('int4multirange', `'{[1,3),[5,7)}'`, `[${range('1', '3', true, false)},${range('5', '7', true, false)}]`),
      s('int4multirange', `'{}'`, '[]'),
      s('datemultirange', `'{[2024-01-01,2024-01-05), [2024-02-01,)}'`, `[${range('"2024-01-01"', '"2024-01-05"', true, false)},${range('"2024-02-01"', 'null', true, false)}]`),
    ],
  },
  { row: 'composite (row) types', samples: [s('pair', `ROW(1, 'a b')`, str('(1,"a b")'))] },
  { row: 'int2vector, oidvector', samples: [s('int2vector', `'1 2 3'`, '"1 2 3"'), s('oidvector', `'1 2'`, '"1 2"')] },
  { row: 'unknown OIDs, extension types', samples: [s('hstore', `'"a"=>"1"'`, str('"a"=>"1"'))] },
];

const columnOf = (caseIndex: number, sampleIndex: number): string => `c${String(caseIndex).padStart(2, '0')}_${sampleIndex}`;
const ALL_COLUMNS = CASES.flatMap((c, i) => c.samples.map((sample, j) => ({ name: columnOf(i, j), sample })));

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The probe row, id 1: every sample of the type table. */
const INSERT_PROBE = `INSERT INTO probe (id, ${ALL_COLUMNS.map((col) => col.name).join(', ')})
  VALUES (1, ${ALL_COLUMNS.map((col) => `(${col.sample.sql})::${col.sample.type}`).join(', ')})`;

describe('types: every row of the README type table, PostgreSQL → pgoutput → streamer → SQS', () => {
  let db: Awaited<ReturnType<typeof testDatabase>>;
  let queue: { endpoint: string; queueUrl: string; client: SQSClient };
  let running: RunningStreamer;
  /** The insert of the row holding every sample, and the SQS bodies it arrived in. */
  let inserted: ReceivedChange;
  let insertedBodies: string;

  /** Receive (and delete) until `predicate` holds; fails at once with the streamer's error if it stops. */
  function receive(predicate: (changes: ReceivedChange[]) => boolean): Promise<ReceivedMessage[]> {
    return Promise.race([
      receiveUntil(queue.client, queue.queueUrl, (ms) => predicate(changesOf(ms)), 20_000),
      running.done.then(() => {
        throw new Error('the streamer stopped');
      }),
    ]);
  }

  beforeAll(async () => {
    db = await testDatabase('types');
    queue = await testFifoQueue('types');
    await withClient(db.url, async (c) => {
      // money prints per lc_monetary; fix it so "$1,234.50" is what any server sends.
      await c.query(`ALTER DATABASE "${db.name}" SET lc_monetary = 'C'`);
      await c.query(SETUP_SQL);
      const columns = ALL_COLUMNS.map((col) => `${col.name} ${col.sample.type}`).join(',\n');
      await c.query(`CREATE TABLE probe (id int PRIMARY KEY, ${columns})`);
      await c.query('ALTER TABLE probe REPLICA IDENTITY FULL');
      await c.query('CREATE TABLE late_types (id int PRIMARY KEY)');
      await c.query('CREATE TABLE odd_chars (id int PRIMARY KEY, t text, j jsonb, "note ✎😀" text)');
    });
    running = startStreamer(
      streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['probe', 'late_types', 'odd_chars'], partitions: 1, bootstrap: { pollIntervalMs: 100 } }),
    );
    await running.ready;

    await withClient(db.url, (c) =>
      c.query(INSERT_PROBE),
    );
    // Nothing else is written until this insert arrived, so these bodies hold it alone.
    const messages = await receive((changes) => changes.length >= 1);
    const changes = changesOf(messages);
    expect(changes).toHaveLength(1);
    inserted = changes[0] as ReceivedChange;
    insertedBodies = messages.map((m) => m.body).join('\n');
  });

  afterAll(async () => {
    await running?.stop();
    queue?.client.destroy();
    await db?.drop();
  });

  it('the row holding every sample arrives as one insert', () => {
    expect(inserted).toMatchObject({ op: 'insert', table: 'probe', key: { id: 1 }, before: null });
    expect(Object.keys(inserted.after ?? {})).toEqual(['id', ...ALL_COLUMNS.map((c) => c.name)]);
  });

  describe.each(CASES.map((c, i) => ({ ...c, index: i })))('$row', ({ samples, also, index }) => {
    it.each(samples.map((sample, j) => ({ ...sample, column: columnOf(index, j) })))('$type $sql → $json', ({ column, type, sql, json }) => {
      // The raw text: digits, -0 and json spelling exactly as promised, not just equal after parsing.
      expect(insertedBodies, `${type} ${sql} in the SQS body`).toMatch(new RegExp(`"${column}":${escapeRegExp(json)}[,}]`));
      // Parsed, as a consumer sees it (toEqual tells -0 from 0).
      expect(inserted.after?.[column], `${type} ${sql}`).toEqual(JSON.parse(json));
    });
    if (also) {
      it(also.name, () => also.check(inserted, samples.map((_, j) => columnOf(index, j))));
    }
  });

  it('json[] and jsonb[] elements are the text PostgreSQL holds and parse back to its value', async () => {
    const index = CASES.findIndex((c) => c.row === 'json[], jsonb[]');
    for (const column of (CASES[index] as TypeCase).samples.map((_, j) => columnOf(index, j))) {
      // Row 1 is deleted by a later test; every element in storage order (unnest flattens all dimensions).
      const { rows } = await withClient(db.url, (c) =>
        c.query<{ ndims: number | null; elements: { sqlNull: boolean; text: string | null; value: unknown }[] }>(
          `SELECT array_ndims(${column}) AS ndims,
                  (SELECT coalesce(json_agg(json_build_object('sqlNull', e IS NULL, 'text', e::text, 'value', to_jsonb(e)) ORDER BY n), '[]')
                     FROM unnest(${column}) WITH ORDINALITY AS u(e, n)) AS elements
             FROM probe WHERE id = 1`,
        ),
      );
      const { ndims, elements } = rows[0]!;
      const streamed = inserted.after?.[column] as unknown[];
      // As deep as the SQL array, and no deeper: each leaf is a string or null, never a JSON array.
      const leaves = ndims === null ? streamed : streamed.flat(ndims - 1);
      expect(leaves, column).toHaveLength(elements.length);
      leaves.forEach((leaf, k) => {
        const element = elements[k]!;
        if (element.sqlNull) {
          expect(leaf, `${column}[${k}]`).toBeNull();
        } else {
          expect(leaf, `${column}[${k}]`).toBe(element.text?.trim());
          expect(JSON.parse(leaf as string), `${column}[${k}]`).toEqual(element.value);
        }
      });
    }
  });

  it('SQL NULL is null for every type, and no json column is named in jsonNulls', async () => {
    await withClient(db.url, (c) => c.query('INSERT INTO probe (id) VALUES (2)'));
    const changes = changesOf(await receive((cs) => cs.some((c) => c.key?.id === 2)));
    const nulls = changes.find((c) => c.key?.id === 2);
    expect(nulls?.after).toEqual(Object.fromEntries([['id', 2], ...ALL_COLUMNS.map((c) => [c.name, null])]));
    expect(nulls?.jsonNulls).toBeUndefined();
  });

  it('the old row of a delete (REPLICA IDENTITY FULL) converts exactly like the new row', async () => {
    await withClient(db.url, (c) => c.query('DELETE FROM probe WHERE id = 1'));
    const changes = changesOf(await receive((cs) => cs.some((c) => c.op === 'delete')));
    const deleted = changes.find((c) => c.op === 'delete');
    expect(deleted).toMatchObject({ key: { id: 1 }, after: null });
    expect(deleted?.before).toEqual(inserted.after);
    expect(deleted?.jsonNulls).toEqual({ before: inserted.jsonNulls?.after });
  });

  it('types created after the streamer started convert like the ones it loaded at start', async () => {
    // None of these OIDs is in the catalog the streamer loaded: the Relation message after the
    // ALTER names the column types, and the decoder pauses, loads them, and converts with them.
    // late_elem (only an array's element) and late_span (only a multirange's range) are named
    // by no column, so they have to be loaded as what the column types depend on.
    await withClient(db.url, async (c) => {
      await c.query(`
        CREATE TYPE late_mood AS ENUM ('calm', 'tense');
        CREATE DOMAIN late_amount AS numeric(8, 2);
        CREATE DOMAIN late_int AS int4;
        CREATE DOMAIN late_elem AS int4;
        CREATE DOMAIN late_json AS jsonb;
        CREATE TYPE late_range AS RANGE (subtype = float8);
        CREATE TYPE late_span AS RANGE (subtype = int8, multirange_type_name = late_spans);
        ALTER TABLE late_types
          ADD COLUMN mood late_mood,
          ADD COLUMN amount late_amount,
          ADD COLUMN n late_int,
          ADD COLUMN ints late_elem[],
          ADD COLUMN doc late_json,
          ADD COLUMN doc_null late_json,
          ADD COLUMN span late_range,
          ADD COLUMN spans late_spans;
        INSERT INTO late_types VALUES
          (1, 'tense', 2.5, 42, '{1,NULL,3}', '{"n": 12345678901234567890}', 'null', '[1.5,2.5)', '{[1,2),[3,4]}');
      `);
    });
    const messages = await receive((cs) => cs.some((c) => c.table === 'late_types'));
    const change = changesOf(messages).find((c) => c.table === 'late_types');
    expect(change?.after).toEqual({
      id: 1,
      mood: 'tense',
      amount: '2.50',
      n: 42,
      ints: [1, null, 3],
      doc: JSON.parse('{"n": 12345678901234567890}'),
      doc_null: null,
      span: { lower: 1.5, upper: 2.5, lowerInclusive: true, upperInclusive: false },
      spans: [
        { lower: '1', upper: '2', lowerInclusive: true, upperInclusive: false },
        { lower: '3', upper: '4', lowerInclusive: true, upperInclusive: true },
      ],
    });
    expect(messages.map((m) => m.body).join('\n')).toContain('"doc":{"n": 12345678901234567890}');
    expect(change?.jsonNulls).toEqual({ after: ['doc_null'] });
  });

  it('text and jsonb holding U+FFFF, U+FFFE or emoji reach SQS escaped instead of stopping the streamer (SEND_REJECTED)', async () => {
    // PostgreSQL stores these characters; SQS refuses U+FFFE and U+FFFF in a body, the emulator
    // also surrogates. Written raw they stopped the streamer for good; as JSON escapes they are
    // the same characters in a body every SQS accepts.
    const text = 'a\uffff b\ufffe c😀';
    await withClient(db.url, (c) =>
      c.query('INSERT INTO odd_chars VALUES (1, $1, jsonb_build_object(\'s\', $1::text), $1)', [text]),
    );
    const messages = await receive((cs) => cs.some((c) => c.table === 'odd_chars'));
    const change = changesOf(messages).find((c) => c.table === 'odd_chars');
    expect(change?.after).toEqual({ id: 1, t: text, j: { s: text }, 'note ✎😀': text });
    const escaped = 'a\\uffff b\\ufffe c\\ud83d\\ude00';
    expect(messages.map((m) => m.body).join('\n')).toContain(`"t":"${escaped}","j":{"s": "${escaped}"},"note ✎\\ud83d\\ude00":"${escaped}"`);
  });

  it('a bootstrap writes every column exactly as the stream did: every sample, and text COPY escapes (tab, newline, CR, backslash, \\N)', async () => {
    // Rows read by COPY come as its text format; once unescaped they are the text pgoutput sends.
    const tricky = [
      [2, 'tab\there\nnew line\rcr \\ back\\slash \\N \b\f\v end', `{"s": "a\\\\b\\n\\t", "n": 1.50}`, '\\N'],
      [3, '', null, null],
      [4, '\\', '"\\\\"', 'é✓😀\t'],
    ] as const;
    await withClient(db.url, async (c) => {
      // The probe row again (a test above deleted it), with every sample.
      await c.query(`${INSERT_PROBE} ON CONFLICT (id) DO NOTHING`);
      for (const [id, t, j, note] of tricky) await c.query('INSERT INTO odd_chars VALUES ($1, $2, $3::jsonb, $4)', [id, t, j, note]);
    });
    const streamed = await receive((cs) => cs.some((c) => c.table === 'odd_chars' && c.key?.id === 4));
    const afterText = (bodies: string, op: string, table: string, id: number): string | undefined =>
      new RegExp(`"op":"${op}","schema":"public","table":"${table}","key":\\{"id":${id}\\},"after":(.*?),"before"`).exec(bodies)?.[1];
    const streamedBodies = streamed.map((m) => m.body).join('\n');

    await withClient(db.url, async (c) => {
      await ensureStateSchema(c, 'pgrelay');
      await requestBootstrap(c, 'pgrelay', slotNameFor(db.url), ['public.probe', 'public.odd_chars'], { reason: 'operator', by: 'test' });
    });
    const loaded = await receiveUntil(queue.client, queue.queueUrl, (ms) => bootstrapOf(ms).filter((c) => c.op === 'bootstrap.completed').length >= 2, 30_000);
    const snapshots = bootstrapOf(loaded).filter((c) => c.op === 'snapshot');
    const loadedBodies = loaded.map((m) => m.body).join('\n');

    // The probe row: every sample, raw and parsed, as in the insert.
    const probe = snapshots.find((c) => c.table === 'probe' && c.key?.id === 1);
    expect(probe?.after).toEqual(inserted.after);
    expect(afterText(loadedBodies, 'snapshot', 'probe', 1)).toBe(afterText(insertedBodies, 'insert', 'probe', 1));
    // The escapes: each row's after, text for text, as the stream carried it, and as PostgreSQL holds it.
    for (const [id, t, j, note] of tricky) {
      const raw = afterText(loadedBodies, 'snapshot', 'odd_chars', id);
      expect(raw, `odd_chars ${id}`).toBeDefined();
      expect(raw, `odd_chars ${id}`).toBe(afterText(streamedBodies, 'insert', 'odd_chars', id));
      expect(snapshots.find((c) => c.table === 'odd_chars' && c.key?.id === id)?.after).toEqual({ id, t, j: j === null ? null : JSON.parse(j), 'note ✎😀': note });
    }
  });
});
