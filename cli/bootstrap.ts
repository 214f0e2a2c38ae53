/**
 * `pgrelay bootstrap SCHEMA.TABLE`: ask the streamer to load a table's existing rows, or with
 * `--cancel` stop a load that is requested or under way. The request is a row of the state
 * schema's bootstrap table (reason `operator`; the schema is made here when missing); the
 * streamer takes it up at its next look for requests, and `pgrelay status` follows it.
 */
import type pg from 'pg';
import { parseTableName, tableKey, type TableName } from '#core/identifiers.ts';
import { cancelBootstrap, readBootstrapRequests, requestBootstrap, type BootstrapRequest } from '#shared/bootstrap-state.ts';
import { ensureStateSchema, stateNames } from '#shared/source-state.ts';
import { bootstrapRecord, readBootstrapProgress, type BootstrapProgress, type BootstrapRecord } from '#shared/source-status.ts';
import { OPERATOR_USAGE, parseOperatorArgs, type OperatorTarget } from './args.ts';
import { OperatorError, processIo, runCommand, type CommandContext, type OperatorIo } from './operator.ts';

const BOOTSTRAP_USAGE = `usage: pgrelay bootstrap SCHEMA.TABLE [options]
Asks the streamer to load every existing row of the table (a load under way starts over);
follow it with pgrelay status.
options:
  --cancel                  stop the table's requested or running load instead
Exit code: 0 requested (or cancelled), 1 no such table (with --cancel: no load to cancel), 2 refused or could not run.
${OPERATOR_USAGE}`;

export async function bootstrapCommand(argv: string[], io: OperatorIo = processIo()): Promise<number> {
  // --cancel belongs to `bootstrap` alone, so it is taken out before the shared parser sees it.
  const cancel = argv.includes('--cancel');
  const rest = argv.filter((a) => a !== '--cancel');
  return runCommand('bootstrap', BOOTSTRAP_USAGE, argv, io, async (ctx) => {
    const target = parseOperatorArgs(rest, io.env);
    const [name, ...extra] = target.positionals;
    if (name === undefined || extra.length > 0) throw new OperatorError('USAGE', `name one table to bootstrap: pgrelay bootstrap schema.table${cancel ? ' --cancel' : ''}`);
    const table = parseTableName(name);
    if (typeof table === 'string') throw new OperatorError('USAGE', table);
    return ctx.withDatabase(target.connections, (client) => (cancel ? cancelLoad(client, ctx, io, target, table) : requestLoad(client, ctx, io, target, table)));
  });
}

/** Records an `operator` request for the table, after checking it exists and is one the streamer streams. */
async function requestLoad(client: pg.Client, ctx: CommandContext, io: OperatorIo, target: OperatorTarget, table: TableName): Promise<number> {
  const key = tableKey(table);
  const { rows } = await client.query<{ relkind: string | null; user: string }>(
    `SELECT (SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2) AS relkind,
            current_user::text AS user`,
    [table.schema, table.table],
  );
  const relkind = rows[0]?.relkind ?? null;
  if (relkind === null) {
    return ctx.fail(1, `table ${key} does not exist in ${ctx.where}: check the name (names are case-sensitive; quote mixed-case names: "Schema"."Table")`);
  }
  if (relkind !== 'r' && relkind !== 'p') {
    return ctx.fail(1, `${key} is not a table (relkind '${relkind}'): only tables and partitioned tables can be bootstrapped`);
  }
  if (target.tables.length > 0 && !target.tables.some((t) => tableKey(t) === key)) {
    return ctx.fail(
      2,
      `${key} is not one of the configured tables (${target.tables.map(tableKey).join(', ')}): the streamer loads only the tables it streams, so nothing was requested; add it to tables in the config first`,
    );
  }
  const schema = target.stateSchema;
  await ensureStateSchema(client, schema);
  const previous = await lockedRow(client, schema, target.slotName, key, async (before) => {
    await requestBootstrap(client, schema, target.slotName, [key], { reason: 'operator', by: `pgrelay bootstrap (${rows[0]?.user ?? '?'})`, detail: 'asked for with pgrelay bootstrap' });
    return before;
  });
  const bootstrap = await progressOf(client, schema, target.slotName, key);
  const streamer = await streamerState(client, target.slotName);

  const before = previous === undefined ? undefined : bootstrapRecord(previous);
  const replaced =
    before === undefined
      ? undefined
      : before.state === 'running'
        ? `the load under way (load ${before.loadId ?? '?'}, ${rowsSoFar(before)}) starts over from the first row`
        : before.state === 'requested'
          ? `it replaces the request waiting since ${before.requestedAt} (reason ${before.reason})`
          : `it replaces the last load (${before.state}${before.finishedAt !== null ? ` at ${before.finishedAt}` : ''})`;
  const when =
    streamer === 'missing'
      ? `replication slot ${target.slotName} does not exist yet: the load starts once a streamer runs (it creates the slot)`
      : streamer === 'inactive'
        ? `no streamer is connected to replication slot ${target.slotName} now: the load starts when one runs`
        : 'the streamer takes it up at its next look for requests (every bootstrap.pollIntervalMs, 5 s by default)';
  const message = [`requested the bootstrap of ${key} on ${ctx.where} (slot ${target.slotName})`, ...(replaced !== undefined ? [replaced] : []), when, 'follow it with pgrelay status'];
  if (target.json) {
    out(io, { target: ctx.where, slot: target.slotName, stateSchema: schema, table: key, requested: true, restarted: before?.state === 'running', previous: before ?? null, streamer, bootstrap, message: message.join('; ') });
  } else {
    io.out(`${message[0]}\n${message.slice(1).map((m) => `  ${m}\n`).join('')}`);
  }
  return 0;
}

/** Cancels the table's requested or running load; exit 1 when there is none. */
async function cancelLoad(client: pg.Client, ctx: CommandContext, io: OperatorIo, target: OperatorTarget, table: TableName): Promise<number> {
  const key = tableKey(table);
  const schema = target.stateSchema;
  const { rows } = await client.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [stateNames(schema).bootstrap]);
  if (rows[0]?.exists !== true) {
    return ctx.fail(1, `nothing to cancel: no bootstrap was ever requested in ${ctx.where} (pgrelay's state schema ${schema} has no bootstrap table)`);
  }
  const { previous, was } = await lockedRow(client, schema, target.slotName, key, async (previous) => ({ previous, was: await cancelBootstrap(client, schema, target.slotName, key) }));
  if (was === undefined || previous === undefined) {
    const what = previous === undefined ? `no bootstrap of ${key} was requested for slot ${target.slotName}` : `the bootstrap of ${key} is ${bootstrapRecord(previous).detail}`;
    return ctx.fail(1, `nothing to cancel: ${what}`);
  }
  const before = bootstrapRecord(previous);
  const bootstrap = await progressOf(client, schema, target.slotName, key);
  const what =
    was === 'running'
      ? `the load under way (load ${before.loadId ?? '?'}, ${rowsSoFar(before)}) stops before its next chunk, and consumers see it end as cancelled`
      : `it had waited since ${before.requestedAt} (reason ${before.reason}) and had not started: nothing was read`;
  const message = `cancelled the bootstrap of ${key} on ${ctx.where} (slot ${target.slotName}): ${what}`;
  if (target.json) out(io, { target: ctx.where, slot: target.slotName, stateSchema: schema, table: key, cancelled: true, previousState: was, previous: before, bootstrap, message });
  else io.out(`${message}\n`);
  return 0;
}

/** Runs `fn` in a transaction holding the table's request row (when there is one), with that row as it was. */
async function lockedRow<T>(client: pg.Client, schema: string, slotName: string, key: string, fn: (row: BootstrapRequest | undefined) => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT 1 FROM ${stateNames(schema).bootstrap} WHERE slot_name = $1 AND table_name = $2 FOR UPDATE`, [slotName, key]);
    const result = await fn((await readBootstrapRequests(client, schema, slotName)).get(key));
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function progressOf(client: pg.Client, schema: string, slotName: string, key: string): Promise<BootstrapProgress | undefined> {
  return (await readBootstrapProgress(client, [key], schema, slotName)).get(key);
}

/** Whether a streamer holds the slot now, which says when the request will be taken up. */
async function streamerState(client: pg.Client, slotName: string): Promise<'active' | 'inactive' | 'missing'> {
  const { rows } = await client.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slotName]);
  return rows[0] === undefined ? 'missing' : rows[0].active ? 'active' : 'inactive';
}

function rowsSoFar(b: BootstrapRecord): string {
  const n = (x: number) => x.toLocaleString('en-US');
  return `${n(b.rowsRead)}${b.rowsEstimated !== null ? ` of ~${n(b.rowsEstimated)}` : ''} rows read`;
}

function out(io: OperatorIo, doc: object): void {
  io.out(`${JSON.stringify(doc, null, 2)}\n`);
}
