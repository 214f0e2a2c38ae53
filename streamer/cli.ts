/**
 * `pgrelay <command>`:
 *   run     the streamer (ECS task; config from PGRELAY_CONFIG / PGRELAY_CONFIG_FILE and env)
 *   local   the whole pipeline on this machine (`npm start`)
 */
import { main } from './main.ts';
import { runLocal } from './local.ts';

const USAGE = 'usage: pgrelay run | pgrelay local [--database-url URL --tables a,b]';

async function cli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return main(process.env);
    case 'local':
      return runLocal(rest);
    default:
      process.stderr.write(`${USAGE}\n`);
      return 2;
  }
}

cli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`pgrelay: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
