/**
 * pgrelay's publication: whether it exists or the streamer may create it (CREATE on the
 * database, ownership of the tables), whether it publishes every action and every configured
 * table (or the streamer may add them), whether partitions arrive under the root's name
 * (publish_via_partition_root), and whether row filters or column lists hide changes. The fix
 * for a missing one is the statement the streamer itself would run.
 */
import type pg from 'pg';
import { qualifiedName, quoteIdent, tableKey, type TableName } from '#core/identifiers.ts';
import type { Finding } from './finding.ts';
import type { TableFacts } from './tables.ts';

export interface PublicationFacts {
  name: string;
  exists: boolean;
  owner: string | null;
  /** The doctor's user owns the publication (or is a superuser / member of its owner). */
  mayAlter: boolean;
  allTables: boolean;
  /** null before PostgreSQL 13. */
  viaRoot: boolean | null;
  publish: { insert: boolean; update: boolean; delete: boolean; truncate: boolean };
  /** Every table it publishes (pg_publication_tables). */
  members: TableName[];
  /** Tables it publishes with a row filter or a column list (PostgreSQL 15+). */
  filtered: string[];
}


const PUBLICATION_SQL = `
SELECT p.puballtables AS all_tables, p.pubinsert, p.pubupdate, p.pubdelete,
       coalesce((to_jsonb(p) ->> 'pubtruncate')::boolean, true) AS pubtruncate,
       (to_jsonb(p) ->> 'pubviaroot')::boolean AS viaroot,
       pg_get_userbyid(p.pubowner)::text AS owner, pg_has_role(p.pubowner, 'USAGE') AS may_alter
FROM pg_publication p WHERE p.pubname = $1`;

const PUBLICATION_TABLES_SQL = `SELECT schemaname::text AS schema, tablename::text AS "table" FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2`;

// Row filters (prqual) and column lists (prattrs) exist from PostgreSQL 15.
const PUBLICATION_FILTERS_SQL = `
SELECT n.nspname::text || '.' || c.relname::text AS name
FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE p.pubname = $1 AND (to_jsonb(r) ->> 'prqual' IS NOT NULL OR to_jsonb(r) ->> 'prattrs' IS NOT NULL)
ORDER BY 1`;

export async function readPublicationFacts(client: pg.Client, name: string): Promise<PublicationFacts> {
  const { rows } = await client.query<{ all_tables: boolean; pubinsert: boolean; pubupdate: boolean; pubdelete: boolean; pubtruncate: boolean; viaroot: boolean | null; owner: string; may_alter: boolean }>(PUBLICATION_SQL, [name]);
  const row = rows[0];
  if (!row) {
    return { name, exists: false, owner: null, mayAlter: false, allTables: false, viaRoot: null, publish: { insert: true, update: true, delete: true, truncate: true }, members: [], filtered: [] };
  }
  const members = await client.query<TableName>(PUBLICATION_TABLES_SQL, [name]);
  const filtered = await client.query<{ name: string }>(PUBLICATION_FILTERS_SQL, [name]);
  return {
    name,
    exists: true,
    owner: row.owner,
    mayAlter: row.may_alter,
    allTables: row.all_tables,
    viaRoot: row.viaroot,
    publish: { insert: row.pubinsert, update: row.pubupdate, delete: row.pubdelete, truncate: row.pubtruncate },
    members: members.rows.map((r) => ({ schema: r.schema, table: r.table })),
    filtered: filtered.rows.map((r) => r.name),
  };
}

/** The statement the streamer runs when the publication is missing (streamer/source.ts ensurePublication). */
export function createPublicationSql(name: string, tables: TableName[], serverVersion: number): string {
  return `CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${tables.map(qualifiedName).join(', ')}${serverVersion >= 130000 ? ' WITH (publish_via_partition_root = true)' : ''};`;
}

export function publicationFindings(
  p: PublicationFacts,
  ctx: { user: string; database: string; tables: TableFacts[]; canCreateInDatabase: boolean; managePublication: boolean; serverVersion: number },
): Finding[] {
  const publishable = ctx.tables.filter((t) => t.exists && (t.relkind === 'r' || t.relkind === 'p'));
  const notOwned = publishable.filter((t) => !t.isOwner);
  const ownersNote = notOwned.length > 0 ? `run as the owner of ${notOwned.map((t) => `${tableKey(t.name)} (${t.owner})`).join(', ')}, or a superuser` : undefined;
  const id = 'publication';
  if (!p.exists) {
    if (publishable.length === 0) {
      return [{ id, severity: 'block', title: `publication ${p.name} does not exist`, detail: 'No table to put in it was given or found.', fix: { note: 'name the tables with --tables or --config, then run doctor again for the statement' } }];
    }
    const sql = createPublicationSql(p.name, publishable.map((t) => t.name), ctx.serverVersion);
    const reasons: string[] = [];
    if (!ctx.managePublication) reasons.push('managePublication is false');
    if (!ctx.canCreateInDatabase) reasons.push(`${ctx.user} has no CREATE privilege on database ${ctx.database}`);
    if (notOwned.length > 0) reasons.push(`${ctx.user} does not own ${notOwned.map((t) => tableKey(t.name)).join(', ')}`);
    if (reasons.length === 0) {
      return [{ id, severity: 'ok', title: `publication ${p.name} does not exist yet; the streamer will create it`, detail: `${ctx.user} may create it (CREATE on the database, owner of the tables). To create it ahead instead, run the statement below.`, fix: { sql } }];
    }
    return [{
      id,
      severity: 'block',
      title: `publication ${p.name} does not exist`,
      detail: `The streamer cannot create it: ${reasons.join('; ')}. Creating a publication for tables needs CREATE on the database and ownership of each table.`,
      fix: { sql, note: [ownersNote ?? 'run as a superuser or the tables\' owner', `then ALTER PUBLICATION ${quoteIdent(p.name)} OWNER TO ${quoteIdent(ctx.user)}; lets the streamer add tables later (it must own them too)`].join('; ') },
    }];
  }
  const findings: Finding[] = [];
  const who = p.mayAlter ? `${ctx.user} may alter it` : `only ${p.owner ?? 'its owner'} (or a superuser) may alter it`;
  findings.push({ id, severity: 'ok', title: `publication ${p.name} exists (owner ${p.owner ?? 'unknown'})`, detail: `${p.allTables ? 'It publishes ALL TABLES' : `It publishes ${p.members.length} table${p.members.length === 1 ? '' : 's'}`}; ${who}.` });
  const missingActions = (['insert', 'update', 'delete', 'truncate'] as const).filter((a) => !p.publish[a]);
  if (missingActions.length > 0) {
    findings.push({
      id: 'publication.publish',
      severity: 'block',
      title: `publication ${p.name} does not publish ${missingActions.join(', ')}`,
      detail: 'Those changes would never reach pgrelay: they are lost without an error.',
      fix: { sql: `ALTER PUBLICATION ${quoteIdent(p.name)} SET (publish = 'insert, update, delete, truncate');`, note: p.mayAlter ? undefined : `run as ${p.owner ?? 'its owner'} or a superuser` },
    });
  }
  if (!p.allTables) {
    const present = new Set(p.members.map(tableKey));
    const missing = publishable.filter((t) => !present.has(tableKey(t.name)));
    if (missing.length > 0) {
      const sql = `ALTER PUBLICATION ${quoteIdent(p.name)} ADD TABLE ${missing.map((t) => qualifiedName(t.name)).join(', ')};`;
      const canAdd = ctx.managePublication && p.mayAlter && missing.every((t) => t.isOwner);
      const names = missing.map((t) => tableKey(t.name)).join(', ');
      findings.push(
        canAdd
          ? { id: 'publication.tables', severity: 'ok', title: `publication ${p.name} lacks ${names}; the streamer will add ${missing.length === 1 ? 'it' : 'them'}`, detail: `${ctx.user} owns the publication and the tables.`, fix: { sql } }
          : {
              id: 'publication.tables',
              severity: 'block',
              title: `publication ${p.name} lacks ${names}`,
              detail: `Their changes would not be streamed, and the streamer cannot add them: ${!ctx.managePublication ? 'managePublication is false' : !p.mayAlter ? `${who}` : `${ctx.user} does not own ${missing.filter((t) => !t.isOwner).map((t) => tableKey(t.name)).join(', ')}`}.`,
              fix: { sql, note: `run as the owner of the publication and of the tables, or a superuser` },
            },
      );
    } else if (publishable.length > 0) {
      findings.push({ id: 'publication.tables', severity: 'ok', title: `publication ${p.name} publishes every configured table`, detail: publishable.map((t) => tableKey(t.name)).join(', ') });
    }
  }
  const partitioned = publishable.filter((t) => t.relkind === 'p');
  if (p.viaRoot === false && partitioned.length > 0) {
    const canAlter = ctx.managePublication && p.mayAlter;
    findings.push({
      id: 'publication.via_root',
      severity: canAlter ? 'ok' : 'block',
      title: canAlter
        ? `publication ${p.name} publishes partitions under their own names; the streamer will set publish_via_partition_root`
        : `publication ${p.name} publishes the partitions of ${partitioned.map((t) => tableKey(t.name)).join(', ')} under their own names`,
      detail: 'pgrelay expects changes under the partitioned table\'s name (publish_via_partition_root = true).',
      fix: { sql: `ALTER PUBLICATION ${quoteIdent(p.name)} SET (publish_via_partition_root = true);` },
    });
  }
  if (p.filtered.length > 0) {
    findings.push({
      id: 'publication.filters',
      severity: 'warn',
      title: `publication ${p.name} filters rows or columns of ${p.filtered.join(', ')}`,
      detail: 'pgrelay sees only what passes the row filter or column list; bootstrap reads whole tables, so the two would disagree.',
      fix: { note: 'drop the filter unless it is intended: ALTER PUBLICATION ... SET TABLE without WHERE / column list' },
    });
  }
  return findings;
}
