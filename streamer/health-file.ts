/**
 * The streamer's half of the container health check (cli/health-check.ts is the other): a
 * timer that proves the event loop still turns by rewriting a file.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { describeError } from '#core/errors.ts';
import type { Logger } from './log.ts';

/** How often the health file is rewritten; the health check's default limit is 60 s. */
export const HEALTH_FILE_INTERVAL_MS = 10_000;

/**
 * The container health check (streamer/health-check.ts) asks whether the event loop still
 * turns: a timer here writes the epoch ms to `path` now and every 10 s. Written aside and
 * renamed, so the check never reads half a write. Returns a function that stops the timer.
 */
export function keepHealthFile(path: string, log: Logger): () => void {
  let failing = false;
  const touch = () => {
    try {
      writeFileSync(`${path}.tmp`, String(Date.now()));
      renameSync(`${path}.tmp`, path);
      failing = false;
    } catch (err) {
      if (!failing) log.error('cannot write the health file; the health check will fail', { path, error: describeError(err) });
      failing = true;
    }
  };
  touch();
  const timer = setInterval(touch, HEALTH_FILE_INTERVAL_MS).unref();
  return () => clearInterval(timer);
}

