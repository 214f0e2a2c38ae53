/**
 * The configured tables and their keys: that each exists and is a table, that the user may
 * read it (USAGE on the schema, SELECT on the table: bootstrap needs both), that the streamer
 * can key its rows (asked of the streamer's own resolveTables, so doctor and streamer agree by
 * construction), that a partitioned table's partitions carry the replica identity it needs, and
 * which columns may arrive as `unchanged` (TOAST without REPLICA IDENTITY FULL).
 */
import type pg from 'pg';
import type { StreamerConfig } from '#core/config.ts';
import { SourceError, type SourceErrorCode } from '#core/errors.ts';
import { qualifiedName, quoteIdent, tableKey, type TableName } from '#core/identifiers.ts';
import { resolveTables } from '#streamer/source.ts';
import type { Finding } from './finding.ts';

export interface TableFacts {
  name: TableName;
  exists: boolean;
  /** r: table, p: partitioned table, v, m, f ...: not publishable. */
  relkind: string;
  /** d: default (primary key), n: nothing, f: full, i: index */
  replident: string;
  primaryKey: string[];
  owner: string;
  /** The doctor's user owns the table (or is a superuser / member of its owner). */
  isOwner: boolean;
  canSelect: boolean;
  schemaUsage: boolean;
  /** Columns whose values may be stored out of line (TOAST): text, jsonb, bytea, arrays ... */
  toastable: string[];
  /** A unique, non-partial index on NOT NULL columns: a replica identity candidate. */
  uniqueIndex: { name: string; columns: string[] } | null;
  /** Leaf partitions of a partitioned table (their own replica identity is what decoding uses). */
  leaves: { name: TableName; replident: string; hasPk: boolean }[];
}

/** What resolveTables (streamer/source.ts) decided for the table: the streamer's own verdict. */
export type KeyVerdict = { ok: true; keyColumns: string[] } | { ok: false; code: SourceErrorCode; message: string };

const TABLE_SQL = `
SELECT c.oid::text AS oid, c.relkind::text AS relkind, c.relreplident::text AS replident,
       pg_get_userbyid(c.relowner)::text AS owner, pg_has_role(c.relowner, 'USAGE') AS is_owner,
       has_table_privilege(c.oid, 'SELECT') AS can_select, has_schema_privilege(n.oid, 'USAGE') AS schema_usage,
       ARRAY(SELECT a.attname::text FROM pg_index i
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord) AS pk,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attstorage IN ('x', 'e')
             ORDER BY a.attnum) AS toastable,
       (SELECT json_build_object('name', ic.relname::text, 'columns', ARRAY(
                 SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord))
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate AND i.indisvalid
          AND i.indpred IS NULL AND i.indexprs IS NULL
          AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) AS k(attnum)
                          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum WHERE NOT a.attnotnull)
        ORDER BY i.indnatts, ic.relname LIMIT 1) AS unique_index
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`;

const LEAVES_SQL = `
SELECT n.nspname::text AS schema, c.relname::text AS "table", c.relreplident::text AS replident,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk
FROM pg_partition_tree($1::oid) t JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE t.isleaf AND c.relkind = 'r' ORDER BY 1, 2`;

export async function readTableFacts(client: pg.Client, name: TableName, versionNum: number): Promise<TableFacts> {
  const { rows } = await client.query<{
    oid: string;
    relkind: string;
    replident: string;
    owner: string;
    is_owner: boolean;
    can_select: boolean;
    schema_usage: boolean;
    pk: string[];
    toastable: string[];
    unique_index: { name: string; columns: string[] } | null;
  }>(TABLE_SQL, [name.schema, name.table]);
  const row = rows[0];
  if (!row) {
    return { name, exists: false, relkind: '', replident: '', primaryKey: [], owner: '', isOwner: false, canSelect: false, schemaUsage: false, toastable: [], uniqueIndex: null, leaves: [] };
  }
  let leaves: TableFacts['leaves'] = [];
  if (row.relkind === 'p' && versionNum >= 120000) {
    const result = await client.query<{ schema: string; table: string; replident: string; has_pk: boolean }>(LEAVES_SQL, [row.oid]);
    leaves = result.rows.map((l) => ({ name: { schema: l.schema, table: l.table }, replident: l.replident, hasPk: l.has_pk }));
  }
  return {
    name,
    exists: true,
    relkind: row.relkind,
    replident: row.replident,
    primaryKey: row.pk,
    owner: row.owner,
    isOwner: row.is_owner,
    canSelect: row.can_select,
    schemaUsage: row.schema_usage,
    toastable: row.toastable,
    uniqueIndex: row.unique_index,
    leaves,
  };
}

/** The streamer's verdict on the table's key (resolveTables from streamer/source.ts). */
export async function streamerVerdict(client: pg.Client, table: TableName, tableKeys: Map<string, string[]>): Promise<KeyVerdict> {
  // resolveTables reads only `tables` and `tableKeys` of the config.
  const config = { tables: [table], tableKeys } as unknown as StreamerConfig;
  try {
    const info = (await resolveTables(client, config)).get(tableKey(table));
    return { ok: true, keyColumns: info?.keyColumns ?? [] };
  } catch (err) {
    // The key is fine there; the partitions' identity is the problem, and the partition
    // finding (tableFindings) says which ones and how to fix each.
    if (err instanceof SourceError && err.reason === 'PARTITION_IDENTITY') return { ok: true, keyColumns: tableKeys.get(tableKey(table)) ?? [] };
    if (err instanceof SourceError) return { ok: false, code: err.reason, message: err.message };
    throw err;
  }
}

/** When no table is named anywhere: keys, privileges and publication membership go unchecked. */
export function noTablesFinding(): Finding {
  return {
    id: 'tables',
    severity: 'warn',
    title: 'no tables to check',
    detail: 'Neither --tables nor a config names them, and the publication lists none, so keys, privileges and publication membership were not checked.',
    fix: { note: 'run doctor with --tables schema.table,... or --config FILE' },
  };
}

export function tableFindings(t: TableFacts, verdict: KeyVerdict, ctx: { user: string; tableKeys: Map<string, string[]> }): Finding[] {
  const key = tableKey(t.name);
  const q = qualifiedName(t.name);
  if (!t.exists) {
    return [{
      id: `table.exists:${key}`,
      severity: 'block',
      title: `table ${key} does not exist`,
      detail: 'Names are case-sensitive: a mixed-case name is written quoted in the config ("Schema"."Table").',
      fix: { note: 'correct the name in tables (or --tables), create the table, or remove it from the list' },
    }];
  }
  if (t.relkind !== 'r' && t.relkind !== 'p') {
    return [{ id: `table.exists:${key}`, severity: 'block', title: `${key} is not a table (relkind ${t.relkind})`, detail: 'Only tables and partitioned tables can be published.', fix: { note: 'remove it from tables; publish the table it reads from instead' } }];
  }
  const findings: Finding[] = [];
  const grants: string[] = [];
  if (!t.schemaUsage) grants.push(`GRANT USAGE ON SCHEMA ${quoteIdent(t.name.schema)} TO ${quoteIdent(ctx.user)};`);
  if (!t.canSelect) grants.push(`GRANT SELECT ON ${q} TO ${quoteIdent(ctx.user)};`);
  const readDetail = "The bootstrap reads the table's existing rows with SELECT (and re-reads large values it left out).";
  findings.push(
    grants.length === 0
      ? { id: `table.privileges:${key}`, severity: 'ok', title: `${ctx.user} may read ${key}, as its bootstrap does`, detail: readDetail }
      : {
          id: `table.privileges:${key}`,
          severity: 'block',
          title: `${ctx.user} may not read ${key}${t.schemaUsage ? '' : ` (no USAGE on schema ${t.name.schema})`}, so its bootstrap would fail`,
          detail: readDetail,
          fix: { sql: grants.join('\n'), note: `run as the table owner (${t.owner}) or a superuser` },
        },
  );
  findings.push(keyFinding(t, verdict, ctx.tableKeys));
  const needsFull = t.replident === 'f';
  if (t.relkind === 'p') {
    const bad = t.leaves.filter((l) => !(l.replident === 'f' || (!needsFull && (l.replident === 'i' || (l.replident === 'd' && l.hasPk)))));
    if (bad.length > 0 && verdict.ok) {
      findings.push({
        id: `table.partitions:${key}`,
        severity: 'block',
        title: `partitions of ${key} lack the replica identity the table needs: ${bad.map((l) => tableKey(l.name)).join(', ')}`,
        detail: 'Changes are decoded per partition, with each partition\'s own replica identity; ALTER TABLE on the partitioned table does not change its partitions, nor does it reach partitions created later.',
        fix: { sql: bad.map((l) => `ALTER TABLE ${qualifiedName(l.name)} REPLICA IDENTITY FULL;`).join('\n') },
      });
    }
  }
  if (verdict.ok && !needsFull && t.toastable.length > 0) {
    findings.push({
      id: `table.toast:${key}`,
      severity: 'warn',
      title: `${key} has columns stored out of line (TOAST) without REPLICA IDENTITY FULL: ${t.toastable.join(', ')}`,
      detail: 'An update that leaves a large value unchanged does not carry it: the event names the column in `unchanged` instead of its value. REPLICA IDENTITY FULL makes PostgreSQL log the old row, from which pgrelay fills it, at the cost of more WAL per update and delete.',
      fix: { sql: `ALTER TABLE ${q} REPLICA IDENTITY FULL;`, note: t.relkind === 'p' ? 'and the same for each partition' : 'skip it if consumers handle `unchanged`' },
    });
  }
  return findings;
}

function keyFinding(t: TableFacts, verdict: KeyVerdict, tableKeys: Map<string, string[]>): Finding {
  const key = tableKey(t.name);
  const q = qualifiedName(t.name);
  const id = `table.key:${key}`;
  if (verdict.ok) {
    const source = tableKeys.has(key) ? 'tableKeys' : t.replident === 'i' ? 'replica identity index' : 'primary key';
    return { id, severity: 'ok', title: `${key} is keyed by (${verdict.keyColumns.join(', ')}) from its ${source}`, detail: `Node ids are ${t.name.table}:<${verdict.keyColumns.join(', ')}>.` };
  }
  // The streamer's own sentence is the detail; the title and the fix are chosen by its code.
  const block = { id, severity: 'block' as const, detail: `The streamer would stop with: ${verdict.message}` };
  const configured = tableKeys.get(key);
  const tableKeysNote = `give its key in the config: "tableKeys": {"${key}": ["column", ...]} (columns that identify a row)`;
  const useIndex = t.uniqueIndex && `ALTER TABLE ${q} REPLICA IDENTITY USING INDEX ${quoteIdent(t.uniqueIndex.name)};`;
  switch (verdict.code) {
    case 'REPLICA_IDENTITY':
      if (t.replident === 'n') {
        const title = `${key} has REPLICA IDENTITY NOTHING: its updates and deletes carry no key`;
        if (t.primaryKey.length > 0) return { ...block, title, fix: { sql: `ALTER TABLE ${q} REPLICA IDENTITY DEFAULT;` } };
        if (useIndex) return { ...block, title, fix: { sql: useIndex, note: 'or add a primary key' } };
        return { ...block, title, fix: { sql: `ALTER TABLE ${q} REPLICA IDENTITY FULL;`, ...(configured ? {} : { note: `and ${tableKeysNote}` }) } };
      }
      return { ...block, title: `${key}: deletes would not carry every tableKeys column (${configured?.join(', ') ?? ''})`, fix: { sql: `ALTER TABLE ${q} REPLICA IDENTITY FULL;` } };
    case 'NO_USABLE_KEY': {
      if (configured) return { ...block, title: `tableKeys for ${key} name columns it does not have`, fix: { note: 'correct tableKeys in the config' } };
      const title = `${key} has no primary key, so pgrelay cannot tell its rows apart`;
      if (useIndex && t.uniqueIndex) {
        return {
          ...block,
          title,
          detail: `${block.detail}. The unique index ${t.uniqueIndex.name} on NOT NULL (${t.uniqueIndex.columns.join(', ')}) can serve as the key.`,
          fix: { sql: useIndex, note: 'or add a primary key' },
        };
      }
      if (t.replident === 'f') return { ...block, title, fix: { note: `it has REPLICA IDENTITY FULL already: ${tableKeysNote}, or add a primary key` } };
      return { ...block, title, fix: { sql: `ALTER TABLE ${q} REPLICA IDENTITY FULL;`, note: `and ${tableKeysNote}; or add a primary key instead` } };
    }
    default:
      return { ...block, title: `${key} cannot be streamed (${verdict.code})` };
  }
}
