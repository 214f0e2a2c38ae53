/** `pgrelay run`: the streamer process, configured from the environment (streamer/process.ts). */
import { runStreamerProcess } from '#streamer/process.ts';

export function runCommand(): Promise<number> {
  return runStreamerProcess(process.env);
}
