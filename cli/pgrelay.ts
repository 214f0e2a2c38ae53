/**
 * `pgrelay <command>`: the operator's command and the container's entry point (the image runs
 * `node /app/pgrelay.mjs run`; cdk/streamer-image.ts bundles this file).
 *   run                 the streamer process (config from PGRELAY_CONFIG / PGRELAY_CONFIG_FILE and env)
 *   doctor              is a database ready for pgrelay? exit 0 ready, 1 blocked, 2 the check failed
 *   status              slot, lag, publication, bootstrap progress, last acknowledged position
 *   bootstrap T         request a bootstrap of table T
 *   slot drop           drop the replication slot (asks first, or --yes)
 * Operator commands take --database-url URL or --secret-arn ARN (see --help). Each command's
 * module loads on first use, so one command does not load every other's.
 *
 * Imports only downward (streamer/, functions/); never dev/ (`npm start` lives there) or test/.
 */
import { OPERATOR_USAGE } from './args.ts';

export type Command = (argv: string[]) => Promise<number>;

export interface CommandEntry {
  /** How the usage line shows the command. */
  synopsis: string;
  load: () => Promise<Command>;
}

export const COMMANDS: Readonly<Record<string, CommandEntry>> = {
  run: { synopsis: 'run', load: async () => (await import('./run.ts')).runCommand },
  doctor: { synopsis: 'doctor', load: async () => (await import('./doctor.ts')).doctorCommand },
  status: { synopsis: 'status', load: async () => (await import('./status.ts')).statusCommand },
  bootstrap: { synopsis: 'bootstrap SCHEMA.TABLE [--cancel]', load: async () => (await import('./bootstrap.ts')).bootstrapCommand },
  slot: { synopsis: 'slot drop', load: async () => (await import('./slot.ts')).slotCommand },
};

export function usage(): string {
  return `usage: pgrelay ${Object.values(COMMANDS)
    .map((c) => c.synopsis)
    .join(' | ')}\n${OPERATOR_USAGE}`;
}

async function dispatch(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const entry = name === undefined ? undefined : Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (entry === undefined) {
    process.stderr.write(`${usage()}\n`);
    return name === '--help' || name === 'help' ? 0 : 2;
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
