/**
 * Operator commands:
 *   pgrelay status                      slot, lag, retained WAL, publication, bootstrap progress
 *   pgrelay bootstrap SCHEMA.TABLE      request a table's initial load (not in this release)
 *   pgrelay slot drop [--yes] [--force] drop the replication slot, after confirmation
 *
 * Exit codes, for scripts: 0 all is well (or done); 1 what was named is missing or broken
 * (slot missing or lost, table missing); 2 the command could not run, or refused.
 * Anything that goes wrong is one sentence naming the server and the fix, never a stack trace.
 */
import { createInterface } from 'node:readline/promises';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { ConfigError, PgRelayError } from '#core/errors.ts';
import { parseTableName, tableKey } from '#core/identifiers.ts';
import { OPERATOR_USAGE, parseOperatorArgs } from './cli-args.ts';
import { explainConnectionFailure, type ConnectionProvider } from '#shared/connection.ts';
import { forgetSlot, readSlotWatch, stateSchemaReadable } from '#shared/source-state.ts';
import { readSlot } from './source.ts';
import { formatBytes, readStatus, statusProblems, type SourceStatus, type StatusProblem } from '#shared/source-status.ts';

/** Where a command writes and how it asks; tests pass their own. */
export interface OperatorIo {
  out(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
  /** Asks a question on the terminal; undefined when stdin is not a terminal. */
  ask: ((question: string) => Promise<string>) | undefined;
}

export function processIo(): OperatorIo {
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    env: process.env,
    ask: process.stdin.isTTY
      ? async (question) => {
          // The prompt goes to stderr: stdout stays clean for --json.
          const rl = createInterface({ input: process.stdin, output: process.stderr });
          try {
            return await rl.question(question);
          } finally {
            rl.close();
          }
        }
      : undefined,
  };
}

export type OperatorErrorCode =
  | 'USAGE'
  | 'UNREACHABLE'
  | 'TIMEOUT'
  | 'AUTH'
  | 'NO_DATABASE'
  | 'TLS'
  | 'SECRET'
  | 'SERVER'
  | 'PRIVILEGE';

/** A failure already phrased for the operator: one sentence with the fix. */
export class OperatorError extends PgRelayError {
  declare readonly code: OperatorErrorCode;
  constructor(code: OperatorErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

const STATUS_USAGE = `usage: pgrelay status [--slot NAME] [--publication NAME] [--tables a,b] [--json]\n${OPERATOR_USAGE}`;
const BOOTSTRAP_USAGE = `usage: pgrelay bootstrap SCHEMA.TABLE\n${OPERATOR_USAGE}`;
const SLOT_USAGE = `usage: pgrelay slot drop [--slot NAME] [--yes] [--force]
  --force                   end the session holding the slot (a running streamer) and drop it anyway
${OPERATOR_USAGE}`;

// --- status -----------------------------------------------------------------------------------

export async function statusCommand(argv: string[], io: OperatorIo = processIo()): Promise<number> {
  return runCommand('status', STATUS_USAGE, argv, io, async (session) => {
    const target = parseOperatorArgs(argv, io.env);
    if (target.positionals.length > 0) throw new OperatorError('USAGE', `status takes no arguments, got "${target.positionals.join(' ')}"; run pgrelay status --help`);
    const status = await session.withDatabase(target.connections, (client) => readStatus(client, target));
    const problems = statusProblems(status);
    if (target.json) io.out(`${JSON.stringify({ target: session.where, ...status, problems }, null, 2)}\n`);
    else io.out(formatStatus(session.where ?? '', status, problems));
    // Only what stops streaming fails the check; warnings are for the reader.
    return status.slot.state === 'ok' ? 0 : 1;
  });
}

const LABEL = 14;

function line(label: string, value: string): string {
  return `${label.padEnd(LABEL)}${value}\n`;
}

export function formatStatus(where: string, s: SourceStatus, problems: StatusProblem[]): string {
  let out = `pgrelay status of ${where} (PostgreSQL ${s.serverVersion}${s.inRecovery ? ', standby' : ''})\n`;
  const slot = s.slot;
  if (slot.state === 'missing') {
    out += line('slot', `${slot.name}: MISSING`);
  } else {
    const activity = slot.active ? `active (pid ${slot.activePid ?? '?'})` : 'inactive (no streamer connected)';
    const state = slot.state === 'ok' ? '' : `${slot.state.toUpperCase()}, `;
    out += line('slot', `${slot.name}: ${state}${activity}${slot.walStatus !== null ? `, wal_status ${slot.walStatus}` : ''}`);
    out += line('acknowledged', slot.confirmedFlushLsn ?? 'none');
    if (slot.lagBytes !== null) out += line('lag', `${formatBytes(slot.lagBytes)} (WAL written since the acknowledged position; now at ${s.currentWalLsn ?? '?'})`);
    if (slot.retainedWalBytes !== null) {
      const safe =
        slot.safeWalSizeBytes !== null
          ? `${formatBytes(slot.safeWalSizeBytes)} more before the slot is at risk`
          : slot.walStatus !== null
            ? 'no cap: max_slot_wal_keep_size is -1'
            : 'no cap known before PostgreSQL 13';
      out += line('retained WAL', `${formatBytes(slot.retainedWalBytes)} (${safe})`);
    }
  }
  const w = s.watch;
  if (w !== null) {
    if (w.confirmedSeenAt !== null && s.lastAckAgeSeconds !== null) {
      out += line('monitor', `acknowledged position unchanged for ${s.lastAckAgeSeconds} s (since ${w.confirmedSeenAt.toISOString()}, as the monitor saw it)`);
    } else if (w.confirmedSeenAt !== null) {
      out += line('monitor', `acknowledged position moved since the monitor's last look (${w.confirmedSeenAt.toISOString()})`);
    }
    if (w.lastStopAt !== null) out += line('last restart', `${w.lastStopAt.toISOString()}: ${w.lastStopReason ?? ''}`);
    if (w.recreatedAt !== null) out += line('gap', `slot recreated ${w.recreatedAt.toISOString()}: changes after ${w.gapAfterLsn ?? '?'} and before ${w.gapUntilLsn ?? '?'} were lost; tables requested for a re-read`);
  }
  const pub = s.publication;
  out += line(
    'publication',
    !pub.exists ? `${pub.name}: MISSING` : `${pub.name}: ${pub.allTables ? 'all tables' : `${pub.tables.length} table${pub.tables.length === 1 ? '' : 's'}`}${pub.missingTables.length > 0 ? `, lacks ${pub.missingTables.join(', ')}` : ''}`,
  );
  const width = Math.max(0, ...s.tables.map((t) => t.table.length));
  for (const t of s.tables) {
    const membership = !t.exists ? 'does not exist ' : t.inPublication ? 'published      ' : 'NOT published  ';
    out += line('table', `${t.table.padEnd(width)}  ${membership}bootstrap ${t.bootstrap.detail}`);
  }
  if (problems.length > 0) {
    out += 'problems\n';
    for (const p of problems) out += `  ${p.severity}: ${p.message}\n`;
  }
  return out;
}

// --- bootstrap --------------------------------------------------------------------------------

export async function bootstrapCommand(argv: string[], io: OperatorIo = processIo()): Promise<number> {
  return runCommand('bootstrap', BOOTSTRAP_USAGE, argv, io, async (session) => {
    const target = parseOperatorArgs(argv, io.env);
    const [name, ...extra] = target.positionals;
    if (name === undefined || extra.length > 0) throw new OperatorError('USAGE', 'name one table to bootstrap: pgrelay bootstrap schema.table');
    const table = parseTableName(name);
    if (typeof table === 'string') throw new OperatorError('USAGE', table);
    const relkind = await session.withDatabase(target.connections, async (client) => {
      const { rows } = await client.query<{ relkind: string }>(
        'SELECT c.relkind::text AS relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2',
        [table.schema, table.table],
      );
      return rows[0]?.relkind;
    });
    const key = tableKey(table);
    if (relkind === undefined) {
      return session.fail(1, `table ${key} does not exist in ${session.where}: check the name (names are case-sensitive; quote mixed-case names: "Schema"."Table")`);
    }
    if (relkind !== 'r' && relkind !== 'p') {
      return session.fail(1, `${key} is not a table (relkind '${relkind}'): only tables and partitioned tables can be bootstrapped`);
    }
    // The request has nowhere to go until the streamer can bootstrap: say so, record nothing.
    return session.fail(2, `table ${key} exists, but bootstrap is not available in this pgrelay release (it arrives in a later one); nothing was requested`, 'NOT_AVAILABLE');
  });
}

// --- slot drop --------------------------------------------------------------------------------

/** How long `--force` keeps ending the holder's session while the holder reconnects. */
const FORCE_DROP_TIMEOUT_MS = 10_000;

export async function slotCommand(argv: string[], io: OperatorIo = processIo()): Promise<number> {
  // --force belongs to `slot drop` alone, so it is taken out before the shared parser sees it.
  const force = argv.includes('--force');
  const rest = argv.filter((a) => a !== '--force');
  return runCommand('slot', SLOT_USAGE, argv, io, async (session) => {
    const target = parseOperatorArgs(rest, io.env);
    if (target.positionals.length !== 1 || target.positionals[0] !== 'drop') {
      throw new OperatorError('USAGE', `unknown slot command "${target.positionals.join(' ')}": the only one is pgrelay slot drop [--slot NAME] [--yes] [--force]`);
    }
    const name = target.slotName;
    return session.withDatabase(target.connections, async (client) => {
      const where = session.where as string;
      const db = (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db;
      const slot = await readSlot(client, name);
      const remembered = (await stateSchemaReadable(client, target.stateSchema)) && (await readSlotWatch(client, target.stateSchema, name)) !== undefined;
      if (slot === undefined && remembered) {
        // Dropped by someone after the monitor saw it: the streamer refuses to create it again
        // until an operator accepts the gap, which is what this does.
        await forgetSlot(client, target.stateSchema, name);
        const message = `replication slot ${name} was already gone from ${where}; pgrelay has forgotten it, so the streamer creates a new one at its next start. Changes committed while it was missing are not streamed: bootstrap the tables to re-read them`;
        if (target.json) io.out(`${JSON.stringify({ target: where, slot: name, dropped: false, forgotten: true, message })}\n`);
        else io.out(`${message}\n`);
        return 0;
      }
      if (slot === undefined) return session.fail(1, `replication slot ${name} does not exist on ${where}, so there is nothing to drop; check --slot (or slotName in the config)`);
      // pg_drop_replication_slot works across the cluster: never drop another database's slot.
      if (slot.database !== db) {
        const owner = slot.database === null ? 'is a physical slot' : `belongs to database ${slot.database}`;
        return session.fail(2, `replication slot ${name} ${owner}, not ${db}: nothing was dropped${slot.database !== null ? `; connect to ${slot.database} to drop it there` : ''}`);
      }
      if (slot.active && !force) {
        return session.fail(2, `replication slot ${name} is in use by process ${slot.activePid ?? '?'} (a streamer is connected): nothing was dropped; stop the streamer first, or pass --force to end that session and drop the slot`);
      }
      if (!target.yes) {
        if (io.ask === undefined) return session.fail(2, `refusing to drop replication slot ${name} without confirmation: stdin is not a terminal, so pass --yes`);
        const answer = await io.ask(
          `Drop replication slot ${name} on ${where}? PostgreSQL will stop retaining WAL for it and pgrelay will need a bootstrap to resume. Type the slot name to confirm: `,
        );
        if (answer.trim() !== name) return session.fail(2, `the answer did not match ${name}: nothing was dropped`);
      }
      const outcome = await dropSlot(client, name, force);
      if (outcome.result === 'gone') return session.fail(1, `replication slot ${name} disappeared before it could be dropped (someone else dropped it)`);
      if (outcome.result === 'active') {
        return session.fail(
          2,
          force
            ? `replication slot ${name} was taken again by process ${outcome.pid ?? '?'} each time its session was ended, for ${FORCE_DROP_TIMEOUT_MS / 1000} s: stop the streamer, then drop the slot`
            : `replication slot ${name} was taken by process ${outcome.pid ?? '?'} meanwhile: nothing was dropped; stop the streamer first, or pass --force`,
        );
      }
      if (remembered) await forgetSlot(client, target.stateSchema, name);
      if (target.json) io.out(`${JSON.stringify({ target: where, slot: name, dropped: true, terminatedPids: outcome.terminated })}\n`);
      else {
        const ended = outcome.terminated.length > 0 ? ` after ending the session of process ${outcome.terminated.join(', ')}` : '';
        io.out(`dropped replication slot ${name} on ${where}${ended}; PostgreSQL no longer retains WAL for it, and pgrelay needs a bootstrap of its tables to resume without gaps\n`);
      }
      return 0;
    });
  });
}

type DropOutcome = { result: 'dropped'; terminated: number[] } | { result: 'gone' } | { result: 'active'; pid: number | null };

async function dropSlot(client: pg.Client, name: string, force: boolean): Promise<DropOutcome> {
  const terminated: number[] = [];
  const deadline = Date.now() + FORCE_DROP_TIMEOUT_MS;
  for (;;) {
    if (force) {
      // The slot is chosen in a materialized CTE and only its holder is ended in the outer
      // query: PostgreSQL orders WHERE conditions as it likes, and with pg_terminate_backend
      // among them it ran before the slot-name test and ended every slot holder on the server.
      const { rows } = await client.query<{ pid: number }>(
        `WITH target AS MATERIALIZED (
           SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database() AND active_pid IS NOT NULL
         )
         SELECT active_pid AS pid FROM target WHERE pg_terminate_backend(active_pid)`,
        [name],
      );
      for (const r of rows) if (!terminated.includes(r.pid)) terminated.push(r.pid);
    }
    try {
      // The database check and the drop in one statement: no other database's slot of that name can slip in.
      const { rowCount } = await client.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()', [name]);
      return rowCount === 0 ? { result: 'gone' } : { result: 'dropped', terminated };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '42704') return { result: 'gone' };
      if (code !== '55006') throw err;
      // 55006: still active. A terminated walsender lets go of the slot a moment after it exits,
      // and a streamer reconnects on its own: keep ending it until the drop wins or time is up.
      if (!force || Date.now() >= deadline) {
        const pid = (await readSlot(client, name))?.activePid ?? null;
        return { result: 'active', pid };
      }
      await delay(50);
    }
  }
}

// --- shared: running a command, connecting, explaining failures ---------------------------------

interface Session {
  /** host:port/db once known. */
  where: string | undefined;
  /** Connects, runs `fn`, always disconnects. Connection failures become OperatorErrors. */
  withDatabase<T>(connections: ConnectionProvider, fn: (client: pg.Client) => Promise<T>): Promise<T>;
  /** Reports a refusal or a missing thing as one sentence (and as JSON with --json); returns `exitCode`. */
  fail(exitCode: number, message: string, code?: string): number;
}

async function runCommand(name: string, usage: string, argv: string[], io: OperatorIo, body: (session: Session) => Promise<number>): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(`${usage}\n`);
    return 0;
  }
  // Known before parsing, so even a parse failure answers in the form asked for.
  const json = argv.includes('--json');
  const session: Session = {
    where: undefined,
    async withDatabase(connections, fn) {
      session.where = describeTarget(connections);
      const client = await connect(connections, session.where);
      try {
        return await fn(client);
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    fail(exitCode, message, code = exitCode === 1 ? 'NOT_FOUND' : 'REFUSED') {
      io.err(`pgrelay ${name}: ${message}\n`);
      if (json) io.out(`${JSON.stringify({ error: { code, message } })}\n`);
      return exitCode;
    },
  };
  try {
    return await body(session);
  } catch (err) {
    const { code, message } = explainFailure(err, session.where, name);
    return session.fail(2, message, code);
  }
}

function describeTarget(connections: ConnectionProvider): string {
  try {
    return connections.describe();
  } catch {
    return 'the database';
  }
}

async function connect(connections: ConnectionProvider, where: string): Promise<pg.Client> {
  let config: pg.ClientConfig;
  try {
    config = await connections.clientConfig({ applicationName: 'pgrelay-ops' });
  } catch (err) {
    if (err instanceof PgRelayError) throw err;
    const e = err as { name?: string; message?: string };
    throw new OperatorError(
      'SECRET',
      `cannot read the database secret (${e.name ?? 'error'}: ${firstLine(e.message)}): check --secret-arn, the region (--region) and that these AWS credentials may call secretsmanager:GetSecretValue`,
      { cause: err },
    );
  }
  const client = new pg.Client(config);
  // An idle client whose server goes away emits 'error'; the next query reports it instead.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return client;
  } catch (err) {
    await client.end().catch(() => undefined);
    throw explainConnectFailure(err, where, config.user ?? 'the user');
  }
}

/** One sentence for a connection that did not happen: what, to which server, and the fix. */
export function explainConnectFailure(err: unknown, where: string, user: string): OperatorError {
  const hostPort = where.split('/')[0] ?? where;
  const sep = hostPort.lastIndexOf(':');
  const failure = explainConnectionFailure(err, {
    host: sep > 0 ? hostPort.slice(0, sep) : hostPort,
    port: sep > 0 ? Number(hostPort.slice(sep + 1)) : 5432,
    database: where.slice(hostPort.length + 1),
    user,
  });
  return new OperatorError(failure.code, failure.message, { cause: err });
}

/** Any failure of a command as { code, sentence }: never a stack trace. */
export function explainFailure(err: unknown, where: string | undefined, command: string): { code: string; message: string } {
  const help = `run pgrelay ${command} --help for the options`;
  if (err instanceof ConfigError) return { code: err.code, message: `${err.problems.join('; ')}; ${help}` };
  if (err instanceof PgRelayError) return { code: err.code, message: err.message };
  const e = err as { code?: string; message?: string };
  const message = firstLine(e?.message ?? String(err));
  if (typeof e?.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS_')) {
    // node:util's text goes on about positionals after '--'; its first sentence is the point.
    return { code: 'USAGE', message: `${message.split(/\. /)[0]}; ${help}` };
  }
  if (e?.code === 'ERR_INVALID_URL') return { code: 'USAGE', message: '--database-url is not a valid URL: write postgres://user:password@host:5432/database' };
  const at = where ?? 'the database';
  if (e?.code === '42501') return { code: 'PRIVILEGE', message: `PostgreSQL at ${at} refused: ${message}; grant the privilege named, or run this as the slot's owner or a superuser (on RDS: rds_replication)` };
  // A SQLSTATE: the server answered, just not as hoped.
  if (typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return { code: 'SERVER', message: `PostgreSQL at ${at} answered: ${message} (SQLSTATE ${e.code})` };
  if (/terminated|ECONNRESET/i.test(`${e?.code ?? ''} ${message}`)) return { code: 'UNREACHABLE', message: `the connection to ${at} was lost (${message}): check that the server is up and try again` };
  return { code: 'SERVER', message: `${message}${e?.code ? ` (${e.code})` : ''}` };
}

function firstLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0] ?? '';
}

