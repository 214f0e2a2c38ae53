/**
 * The container health check: `node /app/health-check.mjs [MAX_AGE_SECONDS]` exits 0 when the
 * file at PGRELAY_HEALTH_FILE was written less than MAX_AGE_SECONDS ago (default 60), else 1
 * with one line on stderr. `pgrelay run` rewrites the file every 10 s from a timer
 * (streamer/main.ts), so a fresh file proves its event loop turns.
 *
 * Bundled to its own file and imports nothing of the streamer's: it starts a Node process every
 * time ECS asks.
 */
import { readFileSync } from 'node:fs';

function check(env: Record<string, string | undefined>, argv: string[]): string | undefined {
  const path = env.PGRELAY_HEALTH_FILE;
  if (!path) return 'PGRELAY_HEALTH_FILE is not set';
  const maxAgeSeconds = argv[0] === undefined ? 60 : Number(argv[0]);
  if (!(maxAgeSeconds > 0)) return `max age must be a positive number of seconds, got ${JSON.stringify(argv[0])}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return code === 'ENOENT' ? `health file ${path} is missing` : `health file ${path} is unreadable: ${String(err)}`;
  }
  const writtenAt = Number(text.trim());
  if (!Number.isSafeInteger(writtenAt)) return `health file ${path} holds no timestamp: ${JSON.stringify(text.slice(0, 40))}`;
  const ageSeconds = (Date.now() - writtenAt) / 1000;
  if (ageSeconds >= maxAgeSeconds) return `health file ${path} is ${ageSeconds.toFixed(1)} s old (limit ${maxAgeSeconds} s)`;
  return undefined;
}

const problem = check(process.env, process.argv.slice(2));
if (problem !== undefined) {
  process.stderr.write(`pgrelay health check failed: ${problem}\n`);
  process.exitCode = 1;
}
