/**
 * `pgrelay doctor`: is this database ready for pgrelay, and if not, what exactly to run or
 * change. This file is the command: its arguments (the operator arguments plus tableKeys and
 * managePublication from the config), running the check (diagnose, cli/doctor/diagnose.ts, which
 * asks each check family in cli/doctor/), printing the report (text or --json) and the exit
 * code: 0 ready, 1 something blocks streaming, 2 the check itself could not run (no connection,
 * bad arguments).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, describeError } from '#core/errors.ts';
import { parseTableName, tableKey } from '#core/identifiers.ts';
import { ConnectError } from '#shared/connection.ts';
import { OPERATOR_OPTIONS, OPERATOR_USAGE, parseOperatorArgs } from './args.ts';
import { parseArgsProblem, USAGE_EXIT } from './usage-errors.ts';
import { diagnose, type DoctorTarget } from './doctor/diagnose.ts';
import { exitCodeOf, formatReport } from './doctor/report.ts';

export interface DoctorIo {
  out(text: string): void;
  err(text: string): void;
  /** ✓ ! ✗ marks instead of [ok] [warn] [BLOCK]. */
  unicode: boolean;
}

export async function doctorCommand(argv: string[]): Promise<number> {
  return runDoctor(argv, process.env, {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    unicode: process.stdout.isTTY === true,
  });
}

/** The whole command with its output going to `io`; returns the exit code. */
export async function runDoctor(argv: string[], env: Record<string, string | undefined>, io: DoctorIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(`usage: pgrelay doctor [options]
Checks that the database is ready for pgrelay (server settings, the role and its privileges,
TLS, the publication, every table's key, the slot) and prints the SQL or setting change for
each problem.
Exit code: 0 ready, 1 something blocks streaming, 2 the check could not run.
${OPERATOR_USAGE}\n`);
    return 0;
  }
  let target: DoctorTarget;
  let json: boolean;
  try {
    const operator = parseOperatorArgs(argv, env);
    json = operator.json;
    target = { ...operator, ...configExtras(argv, env) };
  } catch (err) {
    const message = err instanceof ConfigError ? err.problems.join('; ') : (parseArgsProblem(err, [...Object.keys(OPERATOR_OPTIONS), 'help']) ?? describeError(err).message);
    if (argv.includes('--json')) io.out(`${JSON.stringify({ ready: false, platform: null, error: { code: 'PGRELAY_INVALID_ARGUMENTS', message }, findings: [] }, null, 2)}\n`);
    io.err(`pgrelay doctor: ${message}; run pgrelay doctor --help for the options\n`);
    return USAGE_EXIT;
  }
  try {
    const report = await diagnose(target);
    io.out(json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, { unicode: io.unicode }));
    return exitCodeOf(report.findings);
  } catch (err) {
    // A connection that could not be opened is already one sentence naming the server and the fix.
    const known = err instanceof ConnectError;
    const message = known ? err.message : `the check could not run: ${describeError(err).message}`;
    if (json) io.out(`${JSON.stringify({ ready: false, platform: null, target: target.connections.describe(), error: { code: known ? 'PGRELAY_CANNOT_CONNECT' : 'PGRELAY_CHECK_FAILED', message }, findings: [] }, null, 2)}\n`);
    io.err(`pgrelay doctor: ${message}\n`);
    return 2;
  }
}

/** tableKeys and managePublication from the config document (the operator arguments do not carry them). */
function configExtras(argv: string[], env: Record<string, string | undefined>): Pick<DoctorTarget, 'tableKeys' | 'managePublication'> {
  const { values } = parseArgs({ args: argv, strict: false, allowPositionals: true, options: { config: { type: 'string' } } });
  // parseOperatorArgs has already read and parsed the same text, so neither fails here.
  const text = typeof values.config === 'string' ? readFileSync(values.config, 'utf8') : env.PGRELAY_CONFIG;
  const doc = (text === undefined ? {} : JSON.parse(text)) as { tableKeys?: unknown; managePublication?: unknown };
  const tableKeys = new Map<string, string[]>();
  const problems: string[] = [];
  if (doc.tableKeys !== undefined && (typeof doc.tableKeys !== 'object' || doc.tableKeys === null)) problems.push('tableKeys: must be an object');
  for (const [name, columns] of Object.entries((doc.tableKeys ?? {}) as Record<string, unknown>)) {
    const parsed = parseTableName(name);
    if (typeof parsed === 'string') problems.push(`tableKeys.${name}: ${parsed}`);
    else if (!Array.isArray(columns) || columns.length === 0) problems.push(`tableKeys.${name}: list the key columns`);
    else tableKeys.set(tableKey(parsed), columns.map(String));
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { tableKeys, managePublication: doc.managePublication !== false };
}
