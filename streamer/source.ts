/**
 * Gets the source database ready before streaming and says precisely what is wrong when
 * it cannot: wal_level, each table and its key, the publication (created or completed when
 * `managePublication` and privileges allow), and the pgoutput slot. The publication is made
 * before the slot: a slot decodes with historic catalogs and would not see a later one.
 */
import { readSlotWatch, stateSchemaReadable } from '#shared/source-state.ts';
import type { Client } from 'pg';
import type { StreamerConfig } from '#core/config.ts';
import { SourceError, type SourceErrorCode } from '#core/errors.ts';
import { qualifiedName, quoteIdent, tableKey } from '#core/identifiers.ts';
import { formatLsn, parseLsn } from '#core/position.ts';
import { TYPE_CATALOG_SQL, typeFromCatalogRow, type PgType } from '#core/values/catalog.ts';
import type { TableInfo } from './decoder.ts';
import type { Logger } from './log.ts';

export interface SlotState {
  confirmedFlushLsn: bigint;
  created: boolean;
  active: boolean;
  activePid: number | null;
  walStatus: string | null;
}

export interface PreparedSource {
  serverVersion: number;
  tables: Map<string, TableInfo>;
  slot: SlotState;
}

const TABLE_SQL = `
SELECT c.oid::bigint AS oid, c.relkind::text AS relkind, c.relreplident::text AS replident,
  ARRAY(SELECT a.attname::text FROM pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns,
  ARRAY(SELECT a.attname::text FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord) AS pk,
  ARRAY(SELECT a.attname::text FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = c.oid AND i.indisreplident ORDER BY k.ord) AS ident
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`;

interface TableRow {
  oid: number;
  relkind: string;
  replident: string;
  columns: string[];
  pk: string[];
  ident: string[];
}

class Problems {
  readonly list: { code: SourceErrorCode; text: string }[] = [];
  add(code: SourceErrorCode, text: string): void {
    this.list.push({ code, text });
  }
  throwIfAny(): void {
    const first = this.list[0];
    if (first) throw new SourceError(first.code, this.list.map((p) => p.text).join('\n'));
  }
}

export async function checkWalLevel(client: Client): Promise<number> {
  const { rows } = await client.query<{ wal_level: string; version: string }>(
    `SELECT current_setting('wal_level') AS wal_level, current_setting('server_version_num') AS version`,
  );
  const row = rows[0] as { wal_level: string; version: string };
  if (row.wal_level !== 'logical') {
    throw new SourceError(
      'WAL_LEVEL',
      `wal_level is '${row.wal_level}', logical replication needs 'logical': run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL (on RDS/Aurora set rds.logical_replication = 1 in the parameter group and reboot)`,
    );
  }
  return Number(row.version);
}

/** Resolve every configured table's key; all problems reported together. */
export async function resolveTables(client: Client, config: StreamerConfig): Promise<Map<string, TableInfo>> {
  const problems = new Problems();
  const tables = new Map<string, TableInfo>();
  for (const t of config.tables) {
    const ref = tableKey(t);
    const { rows } = await client.query<TableRow>(TABLE_SQL, [t.schema, t.table]);
    const row = rows[0];
    if (!row) {
      problems.add('TABLE_NOT_FOUND', `table ${ref} does not exist (names are case-sensitive; quote mixed-case names in config: "Schema"."Table")`);
      continue;
    }
    if (row.relkind !== 'r' && row.relkind !== 'p') {
      problems.add('TABLE_NOT_FOUND', `${ref} is not a table (relkind '${row.relkind}'); only tables and partitioned tables can be published`);
      continue;
    }
    const configured = config.tableKeys.get(ref);
    const identity = row.replident === 'i' ? row.ident : row.replident === 'd' ? row.pk : row.replident === 'f' ? row.columns : [];
    if (row.replident === 'n') {
      problems.add('REPLICA_IDENTITY', `${ref} has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be published: run ALTER TABLE ${qualifiedName(t)} REPLICA IDENTITY DEFAULT (or FULL)`);
      continue;
    }
    let keyColumns: string[];
    if (configured) {
      const unknown = configured.filter((c) => !row.columns.includes(c));
      if (unknown.length > 0) {
        problems.add('NO_USABLE_KEY', `tableKeys for ${ref} names columns that do not exist: ${unknown.join(', ')}`);
        continue;
      }
      if (!configured.every((c) => identity.includes(c))) {
        problems.add(
          'REPLICA_IDENTITY',
          `${ref}: deletes and key changes only carry the replica identity columns (${identity.join(', ') || 'none'}), not all of tableKeys (${configured.join(', ')}): run ALTER TABLE ${qualifiedName(t)} REPLICA IDENTITY FULL`,
        );
        continue;
      }
      if (row.relkind === 'p' && row.replident === 'f' && !configured.every((c) => row.pk.includes(c))) {
        // Old rows come from each partition's own replica identity: FULL on the parent alone
        // leaves deletes in the partitions without the tableKeys columns.
        const { rows: lacking } = await client.query<{ name: string }>(
          `SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_partition_tree($1::regclass) p
             JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE p.isleaf AND c.relreplident <> 'f' ORDER BY 1`,
          [qualifiedName(t)],
        );
        if (lacking.length > 0) {
          problems.add(
            'PARTITION_IDENTITY',
            `${ref}: REPLICA IDENTITY FULL on a partitioned table does not reach its partitions, and ${lacking.map((r) => r.name).join(', ')} would send deletes without the tableKeys columns: run ${lacking.map((r) => `ALTER TABLE ${r.name} REPLICA IDENTITY FULL;`).join(' ')}`,
          );
          continue;
        }
      }
      keyColumns = configured;
    } else if (row.replident === 'i' && row.ident.length > 0) {
      // Before the primary key: with REPLICA IDENTITY USING INDEX a delete (and a key change)
      // carries only that index's columns, so it is the one key every change can name.
      keyColumns = row.ident;
    } else if (row.pk.length > 0) {
      keyColumns = row.pk;
    } else {
      problems.add(
        'NO_USABLE_KEY',
        row.replident === 'd'
          ? `${ref} has no primary key: add one, or set tableKeys for it and run ALTER TABLE ${qualifiedName(t)} REPLICA IDENTITY FULL`
          : `${ref} has no primary key: set tableKeys for it (the columns that identify a row)`,
      );
      continue;
    }
    tables.set(ref, { schema: t.schema, table: t.table, keyColumns, partitioned: row.relkind === 'p' });
  }
  problems.throwIfAny();
  return tables;
}

export async function ensurePublication(
  client: Client,
  config: StreamerConfig,
  serverVersion: number,
  log: Logger,
  tables: Map<string, TableInfo>,
): Promise<void> {
  const name = config.publicationName;
  const viaRoot = serverVersion >= 130000;
  const { rows } = await client.query<{ puballtables: boolean; pubviaroot?: boolean; pubinsert: boolean; pubupdate: boolean; pubdelete: boolean; pubtruncate: boolean }>(
    `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate${viaRoot ? ', pubviaroot' : ''} FROM pg_publication WHERE pubname = $1`,
    [name],
  );
  const pub = rows[0];
  const wanted = config.tables.map((t) => qualifiedName(t));
  if (!pub) {
    if (!config.managePublication) {
      throw new SourceError('PUBLICATION', `publication ${name} does not exist: run CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${wanted.join(', ')}${viaRoot ? ' WITH (publish_via_partition_root = true)' : ''}`);
    }
    const sql = `CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${wanted.join(', ')}${viaRoot ? ' WITH (publish_via_partition_root = true)' : ''}`;
    try {
      await client.query(sql);
    } catch (err) {
      if ((err as { code?: string }).code === '42710') return ensurePublication(client, config, serverVersion, log, tables); // created concurrently
      throw privilegeError(err, `cannot create publication ${name}`, sql);
    }
    log.info('publication created', { publication: name, tables: config.tables.map(tableKey) });
    return;
  }
  // A publication that leaves out an operation would drop those changes without any error.
  const skipped = (['insert', 'update', 'delete', 'truncate'] as const).filter((op) => !pub[`pub${op}`]);
  if (skipped.length > 0) {
    const sql = `ALTER PUBLICATION ${quoteIdent(name)} SET (publish = 'insert, update, delete, truncate')`;
    if (!config.managePublication) {
      throw new SourceError('PUBLICATION', `publication ${name} does not publish ${skipped.join(', ')}: those changes would be lost; run ${sql}`);
    }
    await client.query(sql).catch((err: unknown) => {
      throw privilegeError(err, `publication ${name} does not publish ${skipped.join(', ')}`, sql);
    });
    log.info('publication now publishes every operation', { publication: name, added: skipped });
  }
  const partitioned = [...tables.values()].filter((t) => t.partitioned).map((t) => `${t.schema}.${t.table}`);
  if (viaRoot && pub.pubviaroot === false && partitioned.length > 0) {
    const sql = `ALTER PUBLICATION ${quoteIdent(name)} SET (publish_via_partition_root = true)`;
    if (!config.managePublication) throw new SourceError('PUBLICATION', `publication ${name} publishes the partitions of ${partitioned.join(', ')} under their own names; run ${sql}`);
    await client.query(sql).catch((err: unknown) => {
      throw privilegeError(err, `cannot alter publication ${name}`, sql);
    });
  }
  if (pub.puballtables) return;
  const members = await client.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
    [name],
  );
  const present = new Set(members.rows.map((r) => `${r.schemaname}.${r.tablename}`));
  const missing = config.tables.filter((t) => !present.has(tableKey(t)));
  if (missing.length === 0) return;
  const sql = `ALTER PUBLICATION ${quoteIdent(name)} ADD TABLE ${missing.map(qualifiedName).join(', ')}`;
  if (!config.managePublication) {
    throw new SourceError('PUBLICATION', `publication ${name} lacks ${missing.map(tableKey).join(', ')}: run ${sql}`);
  }
  try {
    await client.query(sql);
  } catch (err) {
    throw privilegeError(err, `publication ${name} lacks ${missing.map(tableKey).join(', ')}`, sql);
  }
  log.info('tables added to publication', { publication: name, tables: missing.map(tableKey) });
}

function privilegeError(err: unknown, what: string, sql: string): unknown {
  const code = (err as { code?: string }).code;
  if (code === '42501') {
    return new SourceError('PRIVILEGE', `${what}: permission denied (${(err as Error).message}); have the table owner or a superuser run: ${sql}`, { cause: err });
  }
  return err;
}

export async function readSlot(client: Client, slotName: string): Promise<(SlotState & { plugin: string; database: string | null; slotType: string }) | undefined> {
  const { rows } = await client.query<{
    plugin: string | null;
    slot_type: string;
    database: string | null;
    active: boolean;
    active_pid: number | null;
    confirmed_flush_lsn: string | null;
    wal_status: string | null;
  }>(
    `SELECT plugin, slot_type, database, active, active_pid, confirmed_flush_lsn::text,
            ${'wal_status'} FROM pg_replication_slots WHERE slot_name = $1`,
    [slotName],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    plugin: r.plugin ?? '',
    slotType: r.slot_type,
    database: r.database,
    active: r.active,
    activePid: r.active_pid,
    walStatus: r.wal_status,
    confirmedFlushLsn: r.confirmed_flush_lsn ? parseLsn(r.confirmed_flush_lsn) : 0n,
    created: false,
  };
}

export async function ensureSlot(client: Client, slotName: string, log: Logger, stateSchema?: string): Promise<SlotState> {
  let slot = await readSlot(client, slotName);
  let created = false;
  if (!slot) {
    await refuseIfDropped(client, slotName, stateSchema);
    try {
      await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slotName]);
      created = true;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '42501') {
        throw new SourceError('PRIVILEGE', `cannot create replication slot ${slotName}: the user needs the REPLICATION attribute (ALTER ROLE ... WITH REPLICATION) or, on RDS/Aurora, GRANT rds_replication TO ...`, { cause: err });
      }
      if (code === '53400') {
        throw new SourceError('SLOT_PLUGIN', `cannot create replication slot ${slotName}: all replication slots are in use; raise max_replication_slots or drop an unused slot`, { cause: err });
      }
      if (code !== '42710') throw err; // 42710: created concurrently, read it below
    }
    slot = await readSlot(client, slotName);
    if (!slot) throw new SourceError('SLOT_PLUGIN', `replication slot ${slotName} vanished right after it was created`);
    if (created) log.info('replication slot created', { slot: slotName, confirmedFlushLsn: formatLsn(slot.confirmedFlushLsn) });
  }
  const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
  const db = rows[0]?.db;
  if (slot.slotType !== 'logical' || slot.plugin !== 'pgoutput') {
    throw new SourceError('SLOT_PLUGIN', `replication slot ${slotName} exists but is ${slot.slotType}/${slot.plugin || 'physical'}, not logical/pgoutput; pick another slotName or drop it`);
  }
  if (slot.database !== db) {
    throw new SourceError('SLOT_DATABASE', `replication slot ${slotName} belongs to database ${slot.database}, not ${db}; pick another slotName`);
  }
  if (slot.walStatus === 'lost') {
    throw new SourceError(
      'SLOT_LOST',
      `replication slot ${slotName} was invalidated (wal_status = lost): the WAL it needed is gone, so changes after ${formatLsn(slot.confirmedFlushLsn)} were lost. ${REPAIR_HINT(slotName)}`,
    );
  }
  return { ...slot, created };
}

const REPAIR_HINT = (slotName: string) =>
  `Turn on the monitor's recreateLostSlot to have it recreate the slot and request a re-read of every table, or accept the gap by hand: pgrelay slot drop --slot ${slotName}, then start the streamer again`;

/**
 * A missing slot that pgrelay's monitor had seen was dropped by someone: creating it again
 * would start streaming from now and hide every change in between, so refuse and say so.
 * Without the state schema (no monitor yet, or a try-it run) a missing slot is simply new.
 */
async function refuseIfDropped(client: Client, slotName: string, stateSchema: string | undefined): Promise<void> {
  if (stateSchema === undefined || !(await stateSchemaReadable(client, stateSchema))) return;
  const watch = await readSlotWatch(client, stateSchema, slotName);
  if (watch === undefined) return;
  throw new SourceError(
    'SLOT_LOST',
    `replication slot ${slotName} was dropped: pgrelay's monitor had seen it since ${watch.registeredAt.toISOString()}, acknowledged up to ${watch.confirmedLsn ?? 'an unknown position'}; changes committed after that were not streamed. ${REPAIR_HINT(slotName)}`,
  );
}

export async function loadTypes(client: Client, oids?: number[]): Promise<PgType[]> {
  const { rows } = oids
    ? await client.query(`SELECT * FROM (${TYPE_CATALOG_SQL}) AS t WHERE t.oid = ANY($1::oid[])`, [oids])
    : await client.query(TYPE_CATALOG_SQL);
  return rows.map((r: Record<string, unknown>) => typeFromCatalogRow(r));
}

export async function prepareSource(client: Client, config: StreamerConfig, log: Logger): Promise<PreparedSource> {
  const serverVersion = await checkWalLevel(client);
  if (config.messages.prefixes.length > 0 && serverVersion < 140000) {
    // pgoutput sends logical messages from PostgreSQL 14 on; before, they would silently never arrive.
    throw new SourceError('SERVER_VERSION', `messages.prefixes needs PostgreSQL 14 or newer (pgoutput sends logical messages from 14 on); this server is ${Math.floor(serverVersion / 10000)}`);
  }
  const tables = await resolveTables(client, config);
  await ensurePublication(client, config, serverVersion, log, tables);
  const slot = await ensureSlot(client, config.slotName, log, config.stateSchema);
  return { serverVersion, tables, slot };
}
