/**
 * Reading a table in key order, a chunk at a time, each chunk in its own short REPEATABLE READ
 * transaction together with its snapshot (`pg_current_snapshot()`), and writing the bootstrap's
 * marks. Rows come by COPY as the text of each type's output function (no type parsing on the
 * client), which under pgrelay's session settings is exactly the text pgoutput sends: the
 * streamer's value writers apply unchanged.
 *
 * Keys compare in the database, with the columns' own collations and operators (the order the
 * key's index has), never in memory: text, uuid, enum, numeric, timestamp and composite keys all
 * order as PostgreSQL orders them.
 */
import type pg from 'pg';
import { PgRelayError } from '#core/errors.ts';
import { qualifiedName, quoteIdent, type TableName } from '#core/identifiers.ts';
import { BOOTSTRAP_PREFIX } from './marker.ts';
import { copyRows, quoteLiteral, type CopyRows } from './copy-rows.ts';
import { parseSnapshot, type ChunkSnapshot } from './snapshot.ts';

export interface TableShape {
  ref: string;
  table: TableName;
  /** Published columns in table order, with their types. */
  columns: { name: string; typeOid: number; typeName: string }[];
  /** Indexes into `columns` of the key columns, in key order. */
  keyIndexes: number[];
  /** `FROM …` target and the key's SQL pieces, built once per load. */
  sql: { select: string; keyList: string; keyTypes: string[]; snapshot: string };
}

/** Raw text for every type: the output function's text, as pgoutput sends it. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

/**
 * The columns pgoutput sends for `table` (PostgreSQL 15+: the publication's column list; before,
 * every column but generated ones, which pgoutput leaves out) and its key's place among them.
 */
export async function describeTable(client: pg.Client, table: TableName, keyColumns: string[], publication: string, serverVersion: number): Promise<TableShape> {
  const qualified = qualifiedName(table);
  const generated = serverVersion >= 120000 ? "AND a.attgenerated = ''" : '';
  const published =
    serverVersion >= 150000
      ? `AND a.attname = ANY (COALESCE((SELECT attnames FROM pg_publication_tables WHERE pubname = $2 AND schemaname = $3 AND tablename = $4), ARRAY[]::name[]))`
      : '';
  const { rows } = await client.query<{ name: string; type_oid: number; type_name: string }>(
    `SELECT a.attname AS name, a.atttypid::int AS type_oid, format_type(a.atttypid, a.atttypmod) AS type_name
       FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ${generated} ${published}
      ORDER BY a.attnum`,
    serverVersion >= 150000 ? [qualified, publication, table.schema, table.table] : [qualified],
  );
  const columns = rows.map((r) => ({ name: r.name, typeOid: r.type_oid, typeName: r.type_name }));
  const keyIndexes = keyColumns.map((k) => {
    const i = columns.findIndex((c) => c.name === k);
    if (i < 0) throw new PgRelayError('BOOTSTRAP_NO_KEY', `${qualified}: key column "${k}" is not among the published columns (${columns.map((c) => c.name).join(', ')})`);
    return i;
  });
  const nullable = await client.query<{ name: string }>(
    `SELECT attname AS name FROM pg_attribute WHERE attrelid = $1::regclass AND attname = ANY ($2::name[]) AND NOT attnotnull`,
    [qualified, keyColumns],
  );
  if (nullable.rows.length > 0) {
    throw new PgRelayError(
      'BOOTSTRAP_NULLABLE_KEY',
      `${qualified}: key column ${nullable.rows.map((r) => `"${r.name}"`).join(', ')} may hold NULL, so its rows cannot be read in key order; make it NOT NULL (ALTER TABLE ${qualified} ALTER COLUMN … SET NOT NULL) or choose other tableKeys`,
    );
  }
  const keyList = keyIndexes.map((i) => quoteIdent(columns[i]?.name as string)).join(', ');
  return {
    ref: `${table.schema}.${table.table}`,
    table,
    columns,
    keyIndexes,
    sql: {
      select: `SELECT ${columns.map((c) => quoteIdent(c.name)).join(', ')} FROM ${qualified}`,
      keyList,
      keyTypes: keyIndexes.map((i) => columns[i]?.typeName as string),
      // pg_current_snapshot() from PostgreSQL 13; txid_current_snapshot() before (same text form).
      snapshot: serverVersion >= 130000 ? 'pg_current_snapshot()' : 'txid_current_snapshot()',
    },
  };
}

/** `('v1'::t1, 'v2'::t2)`: a key as literals of the key columns' types (COPY takes no bind parameters). */
function keyTuple(shape: TableShape, key: readonly string[]): string {
  return `(${shape.sql.keyTypes.map((t, i) => `${quoteLiteral(key[i] as string)}::${t}`).join(', ')})`;
}

/** The table's last key now (a load ends there: rows added later arrive as live inserts); null when empty. */
export async function lastKey(client: pg.Client, shape: TableShape): Promise<string[] | null> {
  const desc = shape.sql.keyList
    .split(', ')
    .map((k) => `${k} DESC`)
    .join(', ');
  const { rows } = await client.query<string[]>({ text: `SELECT ${shape.sql.keyList} FROM ${qualifiedName(shape.table)} ORDER BY ${desc} LIMIT 1`, rowMode: 'array', types: RAW_TEXT });
  return rows[0] ?? null;
}

/** pg_class.reltuples (of the leaves, for a partitioned table); null when PostgreSQL has no estimate yet. */
export async function estimateRows(client: pg.Client, table: TableName): Promise<number | null> {
  const { rows } = await client.query<{ n: string | null }>(
    `SELECT sum(GREATEST(c.reltuples, 0))::bigint::text AS n FROM pg_class c
      WHERE c.oid IN (SELECT relid FROM pg_partition_tree($1::regclass) WHERE isleaf) OR c.oid = $1::regclass AND c.relkind = 'r'`,
    [qualifiedName(table)],
  );
  const n = rows[0]?.n;
  return n === null || n === undefined ? null : Number(n);
}

export interface ChunkRead {
  snapshot: ChunkSnapshot;
  /** Rows in key order, as COPY's text. */
  rows: CopyRows;
  /** The last row's key texts; null when the chunk is empty. */
  lastKey: string[] | null;
  ms: number;
}

/**
 * One chunk: the rows after `after` (exclusive) up to `upTo` (inclusive), at most `limit`, in key
 * order — or, with `keys`, exactly those rows — read by COPY in one REPEATABLE READ transaction
 * whose snapshot is taken first.
 */
export async function readChunk(
  client: pg.Client,
  shape: TableShape,
  range: { after: string[] | null; upTo: string[] | null; limit: number } | { keys: string[][] },
): Promise<ChunkRead> {
  const started = performance.now();
  const where: string[] = [];
  let limit = '';
  if ('keys' in range) {
    where.push(`(${shape.sql.keyList}) IN (${range.keys.map((key) => keyTuple(shape, key)).join(', ')})`);
  } else {
    if (range.after !== null) where.push(`(${shape.sql.keyList}) > ${keyTuple(shape, range.after)}`);
    if (range.upTo !== null) where.push(`(${shape.sql.keyList}) <= ${keyTuple(shape, range.upTo)}`);
    limit = ` LIMIT ${Math.floor(range.limit)}`;
  }
  const text = `COPY (${shape.sql.select}${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${shape.sql.keyList}${limit}) TO STDOUT`;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    // The first statement takes the transaction's snapshot: the one the rows are read in.
    const snap = await client.query<{ s: string }>(`SELECT ${shape.sql.snapshot}::text AS s`);
    const rows = await copyRows(client, text);
    await client.query('COMMIT');
    const lastKey = rows.count > 0 ? rows.pick(rows.count - 1, shape.columns.length, shape.keyIndexes) : null;
    return { snapshot: parseSnapshot(snap.rows[0]?.s ?? ''), rows, lastKey, ms: performance.now() - started };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Writes a mark into the WAL (non-transactional: it is there at once); returns its LSN. From
 * PostgreSQL 17 the record is flushed at once, so the walsender sends it within milliseconds;
 * before, it waits for the WAL writer or the next commit (up to `wal_writer_delay`, 200 ms by
 * default, on an idle server).
 */
export async function writeMark(client: pg.Client, content: string, serverVersion: number): Promise<string> {
  const text = serverVersion >= 170000 ? 'SELECT pg_logical_emit_message(false, $1, $2, true)::text AS lsn' : 'SELECT pg_logical_emit_message(false, $1, $2)::text AS lsn';
  const { rows } = await client.query<{ lsn: string }>(text, [BOOTSTRAP_PREFIX, content]);
  return rows[0]?.lsn ?? '';
}
