/**
 * `pgrelay <command>`:
 *   run                 the streamer (ECS task; config from PGRELAY_CONFIG / PGRELAY_CONFIG_FILE and env)
 *   local               the whole pipeline on this machine (`npm start`)
 *   doctor              check a database is ready for pgrelay; exit 0 ready, 1 blocked, 2 check failed
 *   status              slot, lag, publication, bootstrap progress, last acknowledged position
 *   bootstrap T         request a bootstrap of table T
 *   slot drop           drop the replication slot (asks first, or --yes)
 * Operator commands take --database-url URL or --secret-arn ARN (see --help).
 */
import { OPERATOR_USAGE } from './cli-args.ts';

const USAGE = `usage: pgrelay run | local [--database-url URL --tables a,b] | doctor | status | bootstrap SCHEMA.TABLE | slot drop
${OPERATOR_USAGE}`;

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => {
    const { main } = await import('./main.ts');
    return () => main(process.env);
  },
  local: async () => (await import('./local.ts')).runLocal,
  doctor: async () => (await import('./doctor.ts')).doctorCommand,
  status: async () => (await import('./ops.ts')).statusCommand,
  bootstrap: async () => (await import('./ops.ts')).bootstrapCommand,
  slot: async () => (await import('./ops.ts')).slotCommand,
};

async function cli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === 'help' || !(command in COMMANDS)) {
    process.stderr.write(`${USAGE}\n`);
    return command === '--help' || command === 'help' ? 0 : 2;
  }
  const run = await (COMMANDS[command] as () => Promise<Command>)();
  return run(rest);
}

cli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`pgrelay: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
