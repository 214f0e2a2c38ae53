/**
 * `pgrelay <command>`: the operator's command and the container's entry point (the image runs
 * `node /app/pgrelay.mjs run`; cdk/streamer-image.ts bundles this file).
 *   run                 the streamer process (config from PGRELAY_CONFIG / PGRELAY_CONFIG_FILE and env)
 *   doctor              is a database ready for pgrelay? exit 0 ready, 1 blocked, 2 the check failed
 *   status              slot, lag, publication, bootstrap progress, last acknowledged position
 *   bootstrap T         request a bootstrap of table T
 *   slot drop           drop the replication slot (asks first, or --yes)
 * Operator commands take --database-url URL or --secret-arn ARN (see each command's --help);
 * `--help` and `--version` answer without loading any. Usage errors (unknown command or option,
 * a missing value) exit 2 with one line naming them. Each command's module loads on first use,
 * so one command does not load every other's.
 *
 * Imports only downward (streamer/, functions/); never dev/ (`npm start` lives there) or test/.
 */
import { closest, USAGE_EXIT } from './usage-errors.ts';
import { packageVersion } from './version.ts';

export type Command = (argv: string[]) => Promise<number>;

export interface CommandEntry {
  /** How the command list shows the command. */
  synopsis: string;
  /** One line: what it does. */
  summary: string;
  load: () => Promise<Command>;
}

export const COMMANDS: Readonly<Record<string, CommandEntry>> = {
  run: { synopsis: 'run', summary: 'the streamer process (config from PGRELAY_CONFIG or PGRELAY_CONFIG_FILE)', load: async () => (await import('./run.ts')).runCommand },
  doctor: { synopsis: 'doctor', summary: 'is a database ready for pgrelay? the SQL or setting for each problem', load: async () => (await import('./doctor.ts')).doctorCommand },
  status: { synopsis: 'status', summary: 'slot, lag, publication, bootstrap progress, last acknowledged position', load: async () => (await import('./status.ts')).statusCommand },
  bootstrap: { synopsis: 'bootstrap SCHEMA.TABLE', summary: "load a table's existing rows (--cancel stops a load)", load: async () => (await import('./bootstrap.ts')).bootstrapCommand },
  slot: { synopsis: 'slot drop', summary: 'drop the replication slot (asks first, or --yes)', load: async () => (await import('./slot.ts')).slotCommand },
};

export function usage(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.synopsis.length)) + 2;
  return [
    'usage: pgrelay <command> [options]',
    '',
    'commands:',
    ...Object.values(COMMANDS).map((c) => `  ${c.synopsis.padEnd(width)}${c.summary}`),
    '',
    'options:',
    `  ${'-h, --help'.padEnd(width)}this help; pgrelay <command> --help for a command's options`,
    `  ${'-v, --version'.padEnd(width)}the version of pgrelay`,
  ].join('\n');
}

async function dispatch(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h') {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (name === 'help') {
    // `pgrelay help doctor` is `pgrelay doctor --help`.
    if (rest[0] === undefined) {
      process.stdout.write(`${usage()}\n`);
      return 0;
    }
    return dispatch([rest[0], '--help']);
  }
  if (name === '--version' || name === '-v' || name === '-V') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (name === undefined) {
    // As git and npm do: no command is a usage error, answered with the usage.
    process.stderr.write(`${usage()}\n`);
    return USAGE_EXIT;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (entry === undefined) {
    const what = name.startsWith('-') ? `unknown option ${name}` : `unknown command "${name}"`;
    const guess = closest(name.replace(/^-+/, ''), [...Object.keys(COMMANDS), ...(name.startsWith('-') ? ['help', 'version'] : [])]);
    const hint = guess === undefined ? '' : name.startsWith('-') ? ` (did you mean --${guess}?)` : ` (did you mean "${guess}"?)`;
    process.stderr.write(`pgrelay: ${what}${hint}; run pgrelay --help for the commands\n`);
    return USAGE_EXIT;
  }
  const command = await entry.load();
  return command(rest);
}

dispatch(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`pgrelay: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
