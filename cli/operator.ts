/**
 * What the operator commands (status.ts, bootstrap.ts, slot.ts) share: where they write and
 * how they ask, their coded error, a connection for the command's body (the shared
 * ConnectionProvider.connect), and turning any failure into one sentence.
 *
 * Exit codes, for scripts: 0 all is well (or done); 1 what was named is missing or broken
 * (slot missing or lost, table missing); 2 the command could not run, or refused.
 * Anything that goes wrong is one sentence naming the server and the fix, never a stack trace.
 */
import { createInterface } from 'node:readline/promises';
import type pg from 'pg';
import { ConfigError, PgRelayError } from '#core/errors.ts';
import { firstLine, type ConnectErrorCode, type ConnectionProvider } from '#shared/connection.ts';
import { OPERATOR_OPTIONS } from './args.ts';
import { parseArgsProblem } from './usage-errors.ts';

/** Options one command takes besides the shared ones (bootstrap --cancel, slot drop --force). */
const COMMAND_OWN_OPTIONS = ['cancel', 'force'];

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

/** Its own codes, and those of a connection that could not be opened (ConnectError, reported as it is). */
export type OperatorErrorCode = 'USAGE' | 'PRIVILEGE' | ConnectErrorCode;

/** A failure already phrased for the operator: one sentence with the fix. */
export class OperatorError extends PgRelayError<OperatorErrorCode> {}

/** What a command's body gets from `runCommand`. */
export interface CommandContext {
  /** host:port/db once known. */
  where: string | undefined;
  /** Connects (ConnectionProvider.connect), runs `fn`, always disconnects. */
  withDatabase<T>(connections: ConnectionProvider, fn: (client: pg.Client) => Promise<T>): Promise<T>;
  /** Reports a refusal or a missing thing as one sentence (and as JSON with --json); returns `exitCode`. */
  fail(exitCode: number, message: string, code?: string): number;
}

/** Runs a command's body: --help, connecting, and every failure as one sentence (and JSON with --json). */
export async function runCommand(name: string, usage: string, argv: string[], io: OperatorIo, body: (ctx: CommandContext) => Promise<number>): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(`${usage}\n`);
    return 0;
  }
  // Known before parsing, so even a parse failure answers in the form asked for.
  const json = argv.includes('--json');
  const session: CommandContext = {
    where: undefined,
    async withDatabase(connections, fn) {
      session.where = connections.describeSafely();
      // A failure is a ConnectError (one sentence, a code such as UNREACHABLE or AUTH): explainFailure reports it as it is.
      const client = await connections.connect({ applicationName: 'pgrelay-ops' });
      try {
        return await fn(client);
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    fail(exitCode, message, code = exitCode === 1 ? 'PGRELAY_NOT_FOUND' : 'PGRELAY_REFUSED') {
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


/** Any failure of a command as { code, sentence }: never a stack trace. */
export function explainFailure(err: unknown, where: string | undefined, command: string): { code: string; message: string } {
  const help = `run pgrelay ${command} --help for the options`;
  if (err instanceof ConfigError) return { code: err.code, message: `${err.problems.join('; ')}; ${help}` };
  if (err instanceof PgRelayError) return { code: err.code, message: err.message };
  const e = err as { code?: string; message?: string };
  const message = firstLine(e?.message ?? String(err));
  const usage = parseArgsProblem(err, [...Object.keys(OPERATOR_OPTIONS), ...COMMAND_OWN_OPTIONS, 'help']);
  if (usage !== undefined) return { code: 'PGRELAY_USAGE', message: `${usage}; ${help}` };
  if (e?.code === 'ERR_INVALID_URL') return { code: 'PGRELAY_USAGE', message: '--database-url is not a valid URL: write postgres://user:password@host:5432/database' };
  const at = where ?? 'the database';
  if (e?.code === '42501') return { code: 'PGRELAY_PRIVILEGE', message: `PostgreSQL at ${at} refused: ${message}; grant the privilege named, or run this as the slot's owner or a superuser (on RDS: rds_replication)` };
  // A SQLSTATE: the server answered, just not as hoped.
  if (typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return { code: 'PGRELAY_SERVER', message: `PostgreSQL at ${at} answered: ${message} (SQLSTATE ${e.code})` };
  if (/terminated|ECONNRESET/i.test(`${e?.code ?? ''} ${message}`)) return { code: 'PGRELAY_UNREACHABLE', message: `the connection to ${at} was lost (${message}): check that the server is up and try again` };
  return { code: 'PGRELAY_SERVER', message: `${message}${e?.code ? ` (${e.code})` : ''}` };
}

