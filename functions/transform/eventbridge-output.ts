/**
 * Publishes GraphNodeEvents to an EventBridge bus with PutEvents.
 *
 * PutEvents accepts 1–10 entries whose total size (counted as the user guide's "Calculating
 * PutEvents event entry size" says: Time 14 bytes, Source, DetailType, Detail and Resources by
 * their UTF-8 bytes) stays under 256 KB. A call that breaks either limit is rejected whole;
 * otherwise entries fail one by one inside an HTTP 200 (`FailedEntryCount`, `Entries[i].ErrorCode`).
 * So this output packs calls under both limits, reads every entry's result, resends only the
 * entries that failed with a retryable code, and hands back the events that still failed so the
 * Lambda handler can report their SQS records as batch item failures.
 *
 * Ordering: EventBridge does not guarantee delivery order, calls here run concurrently and a
 * retried entry arrives after later ones. Subscribers that need per-node order read the nodes
 * queue (SQS FIFO, one message group per node partition), not the bus.
 *
 * Duplicates: an accepted entry (one with an EventId) is never resent. A call whose outcome is
 * unknown (a network error or a 5xx after the SDK's own retries) is resent whole, so, as
 * everywhere in pgrelay, delivery is at-least-once; subscribers deduplicate on `position` (unique per event).
 */
import {
  EventBridgeClient,
  PutEventsCommand,
  type EventBridgeClientConfig,
  type PutEventsRequestEntry,
  type PutEventsResultEntry,
} from '@aws-sdk/client-eventbridge';
import { setTimeout as delay } from 'node:timers/promises';
import { labelOf, type GraphNodeEvent } from '#core/change-event.ts';
import { ConfigError, describeError } from '#core/errors.ts';
import type { TransformConfig } from '#core/config.ts';
import { backoffDelay } from '#core/backoff.ts';
import { packInOrder } from '#core/pack.ts';

/** PutEvents' documented limits. */
export const PUT_EVENTS_MAX_ENTRIES = 10;
/**
 * "The total entry size must be less than 256KB." (AWS raised EventBridge payloads to 1 MB on
 * 2026-01-29, and SDK 3.1169's PutEvents doc says 1MB; we keep the long-standing limit until
 * every region we deploy to is known to accept more. Raise it with `maxRequestBytes`.)
 */
export const PUT_EVENTS_MAX_REQUEST_BYTES = 256 * 1024;

/** Per-entry error codes EventBridge documents as not worth retrying. Others are retried. */
const NON_RETRYABLE = new Set([
  'AccessDeniedException',
  'InvalidAccountIdException',
  'InvalidArgument',
  'MalformedDetail',
  'RedactionFailure',
  'NotAuthorizedForSourceException',
  'NotAuthorizedForDetailTypeException',
]);

/** Our own failure codes (not from EventBridge). */
export type EventBridgeOutputFailureCode =
  /** The entry is over the request limit by itself and no `offload` is configured. */
  | 'ENTRY_TOO_LARGE'
  /** `offload` threw. */
  | 'OFFLOAD_FAILED'
  /** `offload` returned a detail that is still too large, or not a JSON object. */
  | 'OFFLOAD_INVALID'
  /** EventBridge answered without a result for this entry. */
  | 'NO_RESULT';

export interface PublishItem {
  event: GraphNodeEvent;
  /** The event as JSON, when the caller already serialized it. @default JSON.stringify(event) */
  detail?: string;
}

export interface PublishFailure<T extends PublishItem = PublishItem> {
  /** The item as given to `publish`, so the caller can map it back to its SQS record. */
  item: T;
  /** Its index in the array given to `publish`. */
  index: number;
  /** EventBridge's ErrorCode (per entry or of the whole call), or one of ours. */
  code: string;
  message: string;
  /** PutEvents calls that carried this entry. */
  attempts: number;
}

export interface PublishResult<T extends PublishItem = PublishItem> {
  /** Entries EventBridge accepted. */
  delivered: number;
  /** Items not sent because their label is not in `labels`. */
  skipped: number;
  /** Of the delivered, those sent as a claim-check reference. */
  offloaded: number;
  /** PutEvents calls made. */
  calls: number;
  /** Items still failed after the attempts; empty when everything was delivered or skipped. */
  failed: PublishFailure<T>[];
}

/**
 * Stores an event too large for EventBridge and returns the detail to send instead: the JSON of
 * a GraphNodeEventRef (see change-event.ts). Keys must derive from the event's position, so a
 * retried offload overwrites itself.
 */
export type OffloadEventDetail = (event: GraphNodeEvent, detail: string) => Promise<string>;

export interface EventBridgeOutputOptions {
  /** Bus name or ARN. */
  busName: string;
  /** Entries carry Source `pgrelay.<sourceId>`. */
  sourceId: string;
  /** Publish only events of these labels. @default every label */
  labels?: readonly string[];
  /** Claim check for events over the size limit; without it they are reported as failed. */
  offload?: OffloadEventDetail;
  /** PutEvents calls per entry before it is reported failed. @default 8 */
  maxAttempts?: number;
  /** First backoff; it doubles per attempt, with jitter. @default 100 */
  baseDelayMs?: number;
  /** Backoff ceiling. With the defaults the attempts span about 10 s. @default 3_000 */
  maxDelayMs?: number;
  /** PutEvents calls in flight at once. @default 4 */
  concurrency?: number;
  /** PutEvents' request size limit. @default 262_144 (256 KB) */
  maxRequestBytes?: number;
  /** Kept free in every call, so a difference in how the service counts cannot tip a call over. @default 8_192 */
  safetyMarginBytes?: number;
}

/** The PutEvents entry size as EventBridge documents it ("Calculating PutEvents event entry size"). */
export function putEventsEntrySize(entry: PutEventsRequestEntry): number {
  let size = entry.Time !== undefined ? 14 : 0;
  size += byteLength(entry.Source) + byteLength(entry.DetailType) + byteLength(entry.Detail);
  for (const resource of entry.Resources ?? []) size += byteLength(resource);
  return size;
}

function byteLength(s: string | undefined): number {
  return s === undefined ? 0 : Buffer.byteLength(s, 'utf8');
}

interface Pending<T extends PublishItem> {
  index: number;
  item: T;
  entry: PutEventsRequestEntry;
  size: number;
  attempts: number;
  offloaded: boolean;
}

interface Outcome {
  /** Undefined when accepted. */
  code?: string;
  message?: string;
  retryable?: boolean;
}

export class EventBridgeOutput {
  readonly #client: EventBridgeClient;
  readonly #busName: string;
  readonly #source: string;
  readonly #labels: ReadonlySet<string> | undefined;
  readonly #offload: OffloadEventDetail | undefined;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #concurrency: number;
  /** Entry bytes one call may carry. */
  readonly #budget: number;

  constructor(client: EventBridgeClient, options: EventBridgeOutputOptions) {
    this.#client = client;
    this.#busName = options.busName;
    this.#source = `pgrelay.${options.sourceId}`;
    this.#labels = options.labels ? new Set(options.labels) : undefined;
    this.#offload = options.offload;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 8);
    this.#baseDelayMs = options.baseDelayMs ?? 100;
    this.#maxDelayMs = options.maxDelayMs ?? 3_000;
    this.#concurrency = Math.max(1, options.concurrency ?? 4);
    this.#budget = (options.maxRequestBytes ?? PUT_EVENTS_MAX_REQUEST_BYTES) - (options.safetyMarginBytes ?? 8 * 1024);
    if (this.#budget <= 0) throw new RangeError('safetyMarginBytes leaves no room in a PutEvents request');
  }

  /**
   * An output for the transform's config (`outputs.eventBridge`). Credentials come from the
   * default provider chain unless given (tests pass dummy ones for the loopback fake).
   */
  static fromConfig(
    config: TransformConfig,
    opts: Omit<EventBridgeOutputOptions, 'busName' | 'sourceId' | 'labels'> & {
      credentials?: EventBridgeClientConfig['credentials'];
    } = {},
  ): EventBridgeOutput {
    const target = config.outputs.eventBridge;
    if (!target) throw new ConfigError(['outputs.eventBridge: not configured']);
    const { credentials, ...options } = opts;
    const client = new EventBridgeClient({
      region: config.region,
      ...(config.eventBridgeEndpoint ? { endpoint: config.eventBridgeEndpoint } : {}),
      ...(credentials ? { credentials } : {}),
      // The SDK retries a failed call (5xx, throttling, network) twice itself; failed entries
      // inside a 200 are retried below, where we know which ones they are.
      maxAttempts: 3,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 10_000 },
    });
    return new EventBridgeOutput(client, {
      ...options,
      busName: target.busName,
      sourceId: config.sourceId,
      ...(target.labels ? { labels: target.labels } : {}),
    });
  }

  /** Releases the SDK client's sockets. */
  destroy(): void {
    this.#client.destroy();
  }

  /**
   * Sends every item's event; resolves once each is accepted or has failed for good. Never
   * rejects for a delivery problem: failures come back in `failed`, each with its item.
   */
  async publish<T extends PublishItem>(items: readonly T[]): Promise<PublishResult<T>> {
    const result: PublishResult<T> = { delivered: 0, skipped: 0, offloaded: 0, calls: 0, failed: [] };
    const fail = (p: { index: number; item: T; attempts: number }, code: string, message: string): void => {
      result.failed.push({ item: p.item, index: p.index, code, message, attempts: p.attempts });
    };

    let pending: Pending<T>[] = [];
    const oversized: Pending<T>[] = [];
    items.forEach((item, index) => {
      const label = labelOf(item.event);
      if (this.#labels && label !== null && !this.#labels.has(label)) {
        result.skipped += 1;
        return;
      }
      const p = this.#pending(index, item, item.detail ?? JSON.stringify(item.event));
      (p.size > this.#budget ? oversized : pending).push(p);
    });

    // Oversized entries would make AWS reject the whole call: swap their detail for a claim check.
    await this.#forEachLimited(oversized, async (p) => {
      if (!this.#offload) {
        return fail(p, 'ENTRY_TOO_LARGE', `entry is ${p.size} bytes, over the ${this.#budget}-byte PutEvents budget, and no offload is configured`);
      }
      let detail: string;
      try {
        detail = await this.#offload(p.item.event, p.entry.Detail as string);
      } catch (err) {
        const { code, message } = describeError(err);
        return fail(p, 'OFFLOAD_FAILED', code ? `${code}: ${message}` : message);
      }
      const replacement = this.#pending(p.index, p.item, detail);
      if (replacement.size > this.#budget || !isJsonObjectText(detail)) {
        return fail(p, 'OFFLOAD_INVALID', `offload returned ${replacement.size} bytes${replacement.size > this.#budget ? ' (still over the budget)' : ''}; expected a GraphNodeEventRef JSON object`);
      }
      replacement.offloaded = true;
      pending.push(replacement);
    });
    pending.sort((a, b) => a.index - b.index);

    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > 1) await delay(this.#backoff(attempt - 1));
      const calls = this.#pack(pending);
      result.calls += calls.length;
      const retry: Pending<T>[] = [];
      await this.#forEachLimited(calls, async (call) => {
        const outcomes = await this.#send(call);
        call.forEach((p, i) => {
          p.attempts += 1;
          const outcome = outcomes[i] as Outcome;
          if (outcome.code === undefined) {
            result.delivered += 1;
            if (p.offloaded) result.offloaded += 1;
          } else if (outcome.retryable && p.attempts < this.#maxAttempts) {
            retry.push(p);
          } else {
            fail(p, outcome.code, outcome.message ?? outcome.code);
          }
        });
      });
      pending = retry.sort((a, b) => a.index - b.index);
    }
    result.failed.sort((a, b) => a.index - b.index);
    return result;
  }

  #pending<T extends PublishItem>(index: number, item: T, detail: string): Pending<T> {
    const entry: PutEventsRequestEntry = {
      Source: this.#source,
      DetailType: item.event.type,
      Detail: detail,
      EventBusName: this.#busName,
    };
    return { index, item, entry, size: putEventsEntrySize(entry), attempts: 0, offloaded: false };
  }

  /** Greedy, in input order: a new call when the next entry would break the count or the size. */
  #pack<T extends PublishItem>(pending: readonly Pending<T>[]): Pending<T>[][] {
    return packInOrder(pending, { maxItems: PUT_EVENTS_MAX_ENTRIES, maxBytes: this.#budget }, (p) => p.size);
  }

  /** One PutEvents call; an outcome per entry, in order. */
  async #send<T extends PublishItem>(call: readonly Pending<T>[]): Promise<Outcome[]> {
    let entries: PutEventsResultEntry[];
    let failedEntryCount: number;
    try {
      const out = await this.#client.send(new PutEventsCommand({ Entries: call.map((p) => p.entry) }));
      entries = out.Entries ?? [];
      failedEntryCount = out.FailedEntryCount ?? 0;
    } catch (err) {
      // The whole call failed: every entry shares its fate.
      const { code, message } = describeCallError(err);
      return call.map(() => ({ code, message, retryable: isRetryableCallError(err) }));
    }
    const outcomes = call.map((_, i): Outcome => {
      const r = entries[i];
      if (r?.ErrorCode) {
        return { code: r.ErrorCode, message: r.ErrorMessage ?? r.ErrorCode, retryable: !NON_RETRYABLE.has(r.ErrorCode) };
      }
      if (r?.EventId) return {};
      // No verdict for this entry: treat it as not delivered (resending risks a duplicate, not a loss).
      return { code: 'NO_RESULT', message: `PutEvents returned no result for entry ${i}`, retryable: true };
    });
    // FailedEntryCount is the service's own tally. If it counts more failures than the entries
    // show, we cannot tell which entries those are: resend them all (a duplicate, never a loss).
    const shownFailed = outcomes.filter((o) => o.code !== undefined).length;
    if (failedEntryCount > shownFailed) {
      return outcomes.map((o) =>
        o.code !== undefined ? o : { code: 'NO_RESULT', message: `FailedEntryCount ${failedEntryCount} but ${shownFailed} entries failed`, retryable: true },
      );
    }
    return outcomes;
  }

  #backoff(retry: number): number {
    return backoffDelay(retry, { initialMs: this.#baseDelayMs, maxMs: this.#maxDelayMs, jitter: true });
  }

  async #forEachLimited<X>(xs: readonly X[], fn: (x: X) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < xs.length) await fn(xs[next++] as X);
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, xs.length) }, worker));
  }
}

function isJsonObjectText(text: string): boolean {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

function describeCallError(err: unknown): { code: string; message: string } {
  const e = err as { name?: unknown; message?: unknown; $metadata?: { httpStatusCode?: number } };
  const code = typeof e?.name === 'string' && e.name !== 'Error' ? e.name : 'PUT_EVENTS_FAILED';
  const status = e?.$metadata?.httpStatusCode;
  const message = typeof e?.message === 'string' && e.message !== '' ? e.message : String(err);
  return { code, message: status ? `HTTP ${status}: ${message}` : message };
}

/** A whole-call failure worth another try: throttling, a 5xx, or no HTTP answer at all. */
function isRetryableCallError(err: unknown): boolean {
  const e = err as { name?: unknown; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  if (e?.$retryable) return true;
  const status = e?.$metadata?.httpStatusCode;
  if (status === undefined) return true;
  return status >= 500 || status === 429 || e.name === 'ThrottlingException';
}
