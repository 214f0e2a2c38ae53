/**
 * pgrelay's state schema, where the monitor keeps its observations of the slot and the
 * bootstrap requests: usable as it is, creatable by the monitor on its first run (CREATE on the
 * database), or the CREATE SCHEMA / GRANT an administrator runs. Streaming works without it, so
 * the worst this family says is a warning.
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
