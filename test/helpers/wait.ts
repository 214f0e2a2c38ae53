import { setTimeout as delay } from 'node:timers/promises';

export interface WaitOptions {
  /** How long to keep trying. @default 10_000 */
  timeoutMs?: number;
  /** Pause between two checks. @default 25 */
  intervalMs?: number;
  /**
   * What was awaited, for the error thrown on timeout; a function is called only then, so it
   * can describe the state at the timeout (the output a process printed meanwhile). @default 'condition'
   */
  message?: string | (() => string);
}

/**
 * Polls `condition` until it returns true, and throws on timeout.
 * A condition that throws counts as "not yet"; its last error becomes the timeout error's cause,
 * so a test that waits on a failing query still says why.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  opts: WaitOptions = {},
): Promise<void> {
  await waitForValue(async () => ((await condition()) ? true : undefined), opts);
}

/**
 * Polls `fn` until it returns something other than `undefined`, and returns that value.
 * Throws on timeout, naming `opts.message` and the last error `fn` threw, if any.
 */
export async function waitForValue<T>(
  fn: () => T | undefined | Promise<T | undefined>,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 25;
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  let attempts = 0;
  for (;;) {
    attempts += 1;
    try {
      const value = await fn();
      if (value !== undefined) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() >= deadline) break;
    await delay(Math.min(intervalMs, Math.max(0, deadline - performance.now())));
  }
  const what = (typeof opts.message === 'function' ? opts.message() : opts.message) ?? 'condition';
  const why = lastError === undefined ? '' : `; last error: ${describe(lastError)}`;
  throw new Error(`Timed out after ${timeoutMs} ms (${attempts} checks) waiting for ${what}${why}`, {
    cause: lastError,
  });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
