/**
 * `pgrelay <command>` on a developer's machine:
 *   run                 the streamer (ECS task; config from PGRELAY_CONFIG / PGRELAY_CONFIG_FILE and env)
 *   doctor              check a database is ready for pgrelay; exit 0 ready, 1 blocked, 2 check failed
 *   status              slot, lag, publication, bootstrap progress, last acknowledged position
 *   bootstrap T         request a bootstrap of table T
 *   slot drop           drop the replication slot (asks first, or --yes)
 *   local               the whole pipeline on this machine (`npm start`)
 * Operator commands take --database-url URL or --secret-arn ARN (see --help).
 * The container image runs the same commands without `local` (streamer/task.ts).
 */
import { TASK_COMMANDS, runCommandLine } from './commands.ts';

runCommandLine(
  {
    ...TASK_COMMANDS,
    local: { synopsis: 'local [--database-url URL --tables a,b]', load: async () => (await import('./local.ts')).runLocal },
  },
  process.argv.slice(2),
);
