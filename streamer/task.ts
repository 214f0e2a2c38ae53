/**
 * The container's entry point (`node /app/task.mjs <command>`, bundled by cdk/streamer-image.ts):
 * `run` for the ECS task, and the operator commands for one-off tasks. No `local`: nothing
 * reachable from here may load embedded PostgreSQL, the SQS emulator or test helpers.
 */
import { TASK_COMMANDS, runCommandLine } from './commands.ts';

runCommandLine(TASK_COMMANDS, process.argv.slice(2));
