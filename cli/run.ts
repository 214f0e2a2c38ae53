/** `pgrelay run`: the streamer process, configured from the environment (streamer/process.ts). */
import { runStreamerProcess } from '#streamer/process.ts';
import { USAGE_EXIT } from './usage-errors.ts';

const RUN_USAGE = `usage: pgrelay run
Runs the streamer: holds the replication slot, streams the configured tables' changes to the
changes queue, and confirms positions once SQS accepted them, until SIGTERM or SIGINT. It takes
no options: its config comes from the environment —
  PGRELAY_CONFIG        the config document (JSON), or
  PGRELAY_CONFIG_FILE   a file holding it
  PGRELAY_DATABASE_URL, PGRELAY_QUEUE_URL, PGRELAY_TABLES, PGRELAY_SQS_ENDPOINT, AWS_REGION
                        single settings, over the document's
  PGRELAY_HEALTH_FILE   where to write the health check's heartbeat (the container sets it)
Exit code: 0 stopped by a signal, 1 a fatal error, 2 an invalid configuration or usage (said in the log).`;

export async function runCommand(argv: string[] = []): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${RUN_USAGE}\n`);
    return 0;
  }
  if (argv.length > 0) {
    process.stderr.write(`pgrelay run: takes no arguments, got "${argv.join(' ')}"; its config comes from PGRELAY_CONFIG (run pgrelay run --help)\n`);
    return USAGE_EXIT;
  }
  return runStreamerProcess(process.env);
}
