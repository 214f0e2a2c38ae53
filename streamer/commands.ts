/**
 * The `pgrelay <command>` table and its dispatch, shared by the two entry points:
 *   streamer/task.ts   the container image (ECS): these commands only
 *   streamer/cli.ts    a developer's machine: these plus `local` (`npm start`), which brings
 *                      embedded PostgreSQL and an SQS emulator and so never enters the image
 */
import { OPERATOR_USAGE } from './cli-args.ts';

export type Command = (argv: string[]) => Promise<number>;

export interface CommandEntry {
  /** How the usage line shows the command. */
  synopsis: string;
  /** Loads the command's module on first use, so one command does not load every other's. */
  load: () => Promise<Command>;
}

export const TASK_COMMANDS: Readonly<Record<string, CommandEntry>> = {
  run: {
    synopsis: 'run',
    load: async () => {
      const { main } = await import('./main.ts');
      return () => main(process.env);
    },
  },
  doctor: { synopsis: 'doctor', load: async () => (await import('./doctor.ts')).doctorCommand },
  status: { synopsis: 'status', load: async () => (await import('./ops.ts')).statusCommand },
  bootstrap: { synopsis: 'bootstrap SCHEMA.TABLE', load: async () => (await import('./ops.ts')).bootstrapCommand },
  slot: { synopsis: 'slot drop', load: async () => (await import('./ops.ts')).slotCommand },
};

export function usage(commands: Readonly<Record<string, CommandEntry>>): string {
  const synopses = Object.values(commands).map((c) => c.synopsis);
  return `usage: pgrelay ${synopses.join(' | ')}\n${OPERATOR_USAGE}`;
}

/** Runs the command `argv` names and exits with its code; usage on stderr for none or an unknown one. */
export function runCommandLine(commands: Readonly<Record<string, CommandEntry>>, argv: string[]): void {
  dispatch(commands, argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`pgrelay: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}

async function dispatch(commands: Readonly<Record<string, CommandEntry>>, argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const entry = name === undefined ? undefined : Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (entry === undefined) {
    process.stderr.write(`${usage(commands)}\n`);
    return name === '--help' || name === 'help' ? 0 : 2;
  }
  const command = await entry.load();
  return command(rest);
}
