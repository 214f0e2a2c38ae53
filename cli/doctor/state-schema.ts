/**
 * pgrelay's state schema, where the monitor keeps its observations of the slot and the
 * bootstrap requests: usable as it is, creatable by the monitor on its first run (CREATE on the
 * database), or the CREATE SCHEMA / GRANT an administrator runs. Streaming works without it, so
 * the worst it says of the schema is a warning. Once the bootstrap table exists, the streamer
 * must read and update it (it takes each request and records its progress there): without that
 * no load happens, which blocks.
 */
import type pg from 'pg';
import { quoteIdent } from '#core/identifiers.ts';
import type { Finding } from './finding.ts';
import { singleRow } from '#shared/single-row.ts';

export interface StateSchemaFacts {
  schema: string;
  user: string;
  exists: boolean;
  /** USAGE and CREATE on the schema (the monitor adds its tables there). */
  usable: boolean;
  /** Both state tables exist and the user may read and write them. */
  tablesWritable: boolean;
  /** CREATE on the database: the monitor can make the schema itself. */
  canCreateSchema: boolean;
}

/** Whether the monitor's state schema is there and usable, or can be made (CREATE on the database). */
const STATE_SCHEMA_SQL = `
  SELECT n.oid IS NOT NULL AS exists,
         COALESCE(has_schema_privilege(n.oid, 'USAGE') AND has_schema_privilege(n.oid, 'CREATE'), false) AS usable,
         COALESCE(to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL
                  AND has_table_privilege(to_regclass($2), 'SELECT, INSERT, UPDATE, DELETE')
                  AND has_table_privilege(to_regclass($3), 'SELECT, INSERT, UPDATE, DELETE'), false) AS tables_writable,
         has_database_privilege(current_database(), 'CREATE') AS can_create
  FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = $1`;

export async function readStateSchemaFacts(client: pg.Client, schema: string, user: string): Promise<StateSchemaFacts> {
  const row = await singleRow<{ exists: boolean; usable: boolean; tables_writable: boolean; can_create: boolean }>(client, STATE_SCHEMA_SQL, [
    schema,
    `${quoteIdent(schema)}.slot_watch`,
    `${quoteIdent(schema)}.bootstrap`,
  ]);
  return { schema, user, exists: row.exists, usable: row.usable, tablesWritable: row.tables_writable, canCreateSchema: row.can_create };
}

/** Where the monitor keeps its memory: ready, creatable on its first run, or the grant that is missing. */
export function stateSchemaFinding(f: StateSchemaFacts): Finding {
  const id = 'state.schema';
  if (f.exists && (f.tablesWritable || f.usable)) {
    return { id, severity: 'ok', title: `pgrelay's state schema ${f.schema} is usable by ${f.user}`, detail: 'The monitor keeps its observations and bootstrap requests there.' };
  }
  if (!f.exists && f.canCreateSchema) {
    return { id, severity: 'ok', title: `the monitor can create pgrelay's state schema ${f.schema}`, detail: `${f.user} has CREATE on the database; the first monitor run makes the schema and its two tables.` };
  }
  const schema = quoteIdent(f.schema);
  const user = quoteIdent(f.user);
  return {
    id,
    severity: 'warn',
    title: f.exists ? `${f.user} cannot use pgrelay's state schema ${f.schema}` : `${f.user} cannot create pgrelay's state schema ${f.schema}`,
    detail:
      'Streaming works without it, but the monitor then cannot tell a dropped slot from a new one, measure how long the streamer has not acknowledged, keep its restart cool-down, or record bootstrap requests.',
    fix: { sql: f.exists ? `GRANT USAGE, CREATE ON SCHEMA ${schema} TO ${user};\nGRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${user};` : `CREATE SCHEMA ${schema} AUTHORIZATION ${user};` },
  };
}

/** The state schema's bootstrap table and what this user may do with it; undefined when it does not exist yet. */
export interface BootstrapTableFacts {
  schema: string;
  user: string;
  schemaUsage: boolean;
  canSelect: boolean;
  canUpdate: boolean;
}

// Found through the catalog rather than to_regclass, which raises when the user lacks USAGE on the schema.
const BOOTSTRAP_TABLE_SQL = `
  SELECT has_schema_privilege(n.oid, 'USAGE') AS schema_usage,
         has_table_privilege(c.oid, 'SELECT') AS can_select, has_table_privilege(c.oid, 'UPDATE') AS can_update
  FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'bootstrap' AND c.relkind = 'r'
  WHERE n.nspname = $1`;

export async function readBootstrapTableFacts(client: pg.Client, schema: string, user: string): Promise<BootstrapTableFacts | undefined> {
  const { rows } = await client.query<{ schema_usage: boolean; can_select: boolean; can_update: boolean }>(BOOTSTRAP_TABLE_SQL, [schema]);
  const row = rows[0];
  return row === undefined ? undefined : { schema, user, schemaUsage: row.schema_usage, canSelect: row.can_select, canUpdate: row.can_update };
}

/** The streamer takes requests and records each load's progress in the bootstrap table: SELECT and UPDATE on it. */
export function bootstrapTableFinding(f: BootstrapTableFacts): Finding {
  const id = 'state.bootstrap_table';
  const table = `${f.schema}.bootstrap`;
  const detail = 'The streamer reads the bootstrap requests there, and updates each one as its load starts, advances and ends.';
  const grants: string[] = [];
  if (!f.schemaUsage) grants.push(`GRANT USAGE ON SCHEMA ${quoteIdent(f.schema)} TO ${quoteIdent(f.user)};`);
  const missing = [...(f.canSelect ? [] : ['SELECT']), ...(f.canUpdate ? [] : ['UPDATE'])];
  if (missing.length > 0) grants.push(`GRANT ${missing.join(', ')} ON ${quoteIdent(f.schema)}."bootstrap" TO ${quoteIdent(f.user)};`);
  if (grants.length === 0) return { id, severity: 'ok', title: `${f.user} may read and update the bootstrap requests in ${table}`, detail };
  const lacks = [...(f.schemaUsage ? [] : [`USAGE on schema ${f.schema}`]), ...missing.map((p) => `${p} on ${table}`)];
  return {
    id,
    severity: 'block',
    title: `as ${f.user} the streamer cannot carry out any bootstrap: no ${lacks.join(', no ')}`,
    detail,
    fix: { sql: grants.join('\n'), note: "run as the state schema's owner or a superuser" },
  };
}
