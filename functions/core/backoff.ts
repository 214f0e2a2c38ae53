/**
 * How long to wait before retry number `attempt` (1 for the first retry): `initialMs` doubling
 * each attempt, capped at `maxMs`. With `jitter`, a random part spreads the retries of many
 * senders (concurrent Lambdas, partitions) so they do not come back in step; the delay decides
 * no id, batch boundary or order, so randomness here keeps the data path deterministic.
 * The one backoff every retry loop uses: reconnects, SQS sends, EventBridge entries, nodes-queue
 * messages.
 */
export function backoffDelay(attempt: number, opts: { initialMs: number; maxMs: number; jitter?: boolean }): number {
  // The exponent is capped too: 2 ** 1000 is Infinity, and min(max, Infinity) is right but
  // min(max, NaN) from Infinity * 0 is not.
  const ceiling = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 30));
  return opts.jitter ? ceiling * (0.5 + Math.random() * 0.5) : ceiling;
}
