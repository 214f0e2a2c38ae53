/**
 * Sends closed batches to the SQS FIFO queue with SendMessageBatch.
 *
 * Order per message group needs care: SQS keeps send order within a group, but two
 * requests in flight for one group, or a partial failure followed by a later success in
 * the same group, would reorder it. So each partition has at most one message in flight,
 * and a request carries at most one message per partition (up to 10 partitions, within
 * SQS's 1 MiB request limit). A failed entry stays at the head of its partition and is
 * retried with backoff; nothing behind it in that partition is sent meanwhile.
 *
 * An `oversized` message (one change too large for SQS) is a claim check: at the head of its
 * partition, its body is first stored in the payload store under a name derived from its
 * deduplication id, then a ChangeBatchRef goes to SQS in its place (same group, same
 * deduplication id). The upload is retried like a send, and the partition waits for it:
 * nothing behind it is sent, and its change counts as accepted only when SQS accepted the
 * reference. The stored body counts in `pendingBytes` until then.
 */
import { SendMessageBatchCommand, type SendMessageBatchCommandOutput, type SQSClient } from '@aws-sdk/client-sqs';
import { backoffDelay } from '#core/backoff.ts';
import { SQS_MAX_MESSAGE_BYTES } from '#core/config.ts';
import { DeliveryError, PgRelayError, describeError } from '#core/errors.ts';
import { messageGroupId } from '#core/partition.ts';
import { changeBatchPayloadName, payloadKey, type PayloadStore } from '#core/payload-store.ts';
import { withBodyPieces } from '#shared/sqs-batch-body.ts';
import type { OutgoingMessage } from './batcher.ts';
import type { Logger } from './log.ts';

/** Entry errors that no retry can fix: stop, acknowledge nothing, say why. */
const PERMANENT_ENTRY_ERRORS = new Set([
  'InvalidParameterValue',
  'InvalidMessageContents',
  'MessageTooLong',
  'InvalidAttributeName',
  'InvalidAttributeValue',
  'MissingParameter',
  'UnsupportedOperation',
]);

const MAX_ENTRIES = 10;

export interface SqsSinkOptions {
  client: SQSClient;
  queueUrl: string;
  maxConcurrentSends: number;
  log: Logger;
  onAccepted(msg: OutgoingMessage): void;
  onFatal(err: Error): void;
  /** Where bodies too large for SQS go; the batcher emits `oversized` messages only when it is set. */
  payloads?: PayloadStore;
  /** Names this source in payload keys (two sources may share a bucket and prefix). */
  sourceId: string;
  /** Backoff bounds for retries. */
  retryInitialMs?: number;
  retryMaxMs?: number;
}

interface PartitionQueue {
  messages: OutgoingMessage[];
  head: number;
  inFlight: boolean;
  attempts: number;
  notBefore: number;
  /** The ChangeBatchRef body sent for the head message once its payload is stored. */
  claimCheck: string | undefined;
}

export class SqsSink {
  private readonly partitions = new Map<number, PartitionQueue>();
  /** Partitions with a message ready to go, in arrival order (round robin). */
  private readonly ready: number[] = [];
  private readonly readySet = new Set<number>();
  private active = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAt = Infinity;
  private idleWaiters: (() => void)[] = [];
  private stopped = false;
  /** Bytes of messages queued or in flight. */
  pendingBytes = 0;
  pendingMessages = 0;
  sentMessages = 0;
  sentChanges = 0;
  sentBytes = 0;
  requests = 0;
  failedEntries = 0;
  failedRequests = 0;
  storedPayloads = 0;
  storedBytes = 0;
  failedUploads = 0;

  constructor(private readonly opts: SqsSinkOptions) {}

  enqueue(msg: OutgoingMessage): void {
    let q = this.partitions.get(msg.partition);
    if (!q) {
      q = { messages: [], head: 0, inFlight: false, attempts: 0, notBefore: 0, claimCheck: undefined };
      this.partitions.set(msg.partition, q);
    }
    q.messages.push(msg);
    this.pendingBytes += msg.bytes;
    this.pendingMessages++;
    this.markReady(msg.partition, q);
    this.pump();
  }

  /** Resolves once every enqueued message has been accepted by SQS, or the sink is stopped. */
  idle(): Promise<void> {
    if (this.pendingMessages === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stop sending (after a fatal error or on shutdown timeout); queued messages are dropped from memory, never acknowledged. */
  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private markReady(partition: number, q: PartitionQueue): void {
    if (!q.inFlight && q.head < q.messages.length && !this.readySet.has(partition)) {
      this.readySet.add(partition);
      this.ready.push(partition);
    }
  }

  private pump(): void {
    if (this.stopped) return;
    const now = performance.now();
    let earliestRetry = Infinity;
    while (this.active < this.opts.maxConcurrentSends && this.ready.length > 0) {
      const batch: OutgoingMessage[] = [];
      let bytes = 0;
      const deferred: number[] = [];
      while (batch.length < MAX_ENTRIES && this.ready.length > 0) {
        const p = this.ready.shift() as number;
        const q = this.partitions.get(p) as PartitionQueue;
        if (q.notBefore > now) {
          deferred.push(p);
          earliestRetry = Math.min(earliestRetry, q.notBefore);
          continue;
        }
        const msg = q.messages[q.head] as OutgoingMessage;
        if (msg.oversized && q.claimCheck === undefined) {
          // Store the body first; the reference joins a later request.
          this.readySet.delete(p);
          q.inFlight = true;
          void this.upload(q, msg);
          continue;
        }
        const wireBytes = msg.oversized ? Buffer.byteLength(q.claimCheck as string) : msg.bytes;
        if (batch.length > 0 && bytes + wireBytes > SQS_MAX_MESSAGE_BYTES) {
          this.ready.unshift(p);
          break;
        }
        this.readySet.delete(p);
        q.inFlight = true;
        batch.push(msg);
        bytes += wireBytes;
      }
      this.ready.push(...deferred);
      if (batch.length === 0) break;
      this.active++;
      void this.send(batch);
    }
    if (earliestRetry < this.retryAt) {
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.retryAt = earliestRetry;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.retryAt = Infinity;
        this.pump();
      }, Math.max(1, earliestRetry - now));
    }
  }

  private async send(batch: OutgoingMessage[]): Promise<void> {
    this.requests++;
    let result: SendMessageBatchCommandOutput | undefined;
    let requestError: unknown;
    try {
      result = await this.opts.client.send(
        new SendMessageBatchCommand({
          QueueUrl: this.opts.queueUrl,
          Entries: batch.map((m, i) => {
            const entry = { Id: String(i), MessageBody: '', MessageGroupId: messageGroupId(m.partition), MessageDeduplicationId: m.deduplicationId };
            if (m.oversized) {
              entry.MessageBody = (this.partitions.get(m.partition) as PartitionQueue).claimCheck as string;
              return entry;
            }
            // Written into the request from its pieces, never joined (see sqs-batch-body.ts).
            return withBodyPieces(entry, m.pieces);
          }),
        }),
      );
    } catch (err) {
      requestError = err;
    }
    this.active--;
    if (this.stopped) return;

    if (requestError !== undefined || !result) {
      this.failedRequests++;
      for (const m of batch) this.retryLater(m, describeError(requestError));
    } else {
      const failed = new Map((result.Failed ?? []).map((f) => [Number(f.Id), f]));
      const succeeded = new Set((result.Successful ?? []).map((s) => Number(s.Id)));
      batch.forEach((m, i) => {
        const f = failed.get(i);
        if (f) {
          this.failedEntries++;
          if (f.SenderFault && PERMANENT_ENTRY_ERRORS.has(f.Code ?? '')) {
            this.fatal(new DeliveryError('SEND_REJECTED', `SQS rejected a message for partition ${m.partition} (${f.Code}: ${f.Message ?? ''}); stopping without acknowledging it`));
            return;
          }
          this.retryLater(m, { code: f.Code ?? 'unknown', message: f.Message ?? '' });
        } else if (succeeded.has(i)) {
          this.accept(m);
        } else {
          // Neither listed: treat as not accepted; the deduplication id makes a resend safe.
          this.retryLater(m, { code: 'MissingResult', message: 'entry absent from both Successful and Failed' });
        }
      });
    }
    this.pump();
  }

  private accept(m: OutgoingMessage): void {
    const q = this.partitions.get(m.partition) as PartitionQueue;
    q.messages[q.head] = undefined as unknown as OutgoingMessage;
    q.head++;
    if (q.head > 256 && q.head * 2 > q.messages.length) {
      q.messages.splice(0, q.head);
      q.head = 0;
    }
    q.inFlight = false;
    q.attempts = 0;
    q.notBefore = 0;
    q.claimCheck = undefined;
    this.pendingBytes -= m.bytes;
    this.pendingMessages--;
    this.sentMessages++;
    this.sentChanges += m.changes;
    this.sentBytes += m.bytes;
    this.opts.onAccepted(m);
    this.markReady(m.partition, q);
    if (this.pendingMessages === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Stores an oversized message's body; on success its ChangeBatchRef waits at the head of the partition. */
  private async upload(q: PartitionQueue, m: OutgoingMessage): Promise<void> {
    const store = this.opts.payloads;
    let key: string | undefined;
    let uploadError: unknown;
    try {
      if (!store) throw new PgRelayError('INTERNAL', 'an oversized message reached a sink without a payload store');
      key = payloadKey('changes', changeBatchPayloadName(this.opts.sourceId, m.deduplicationId));
      const ref = await store.put(key, m.body);
      q.claimCheck = JSON.stringify({ v: 1, partition: m.partition, payloadRef: ref });
    } catch (err) {
      uploadError = err;
    }
    if (this.stopped) return;
    if (q.claimCheck === undefined) {
      this.failedUploads++;
      this.retryLater(m, describeError(uploadError), 'payload upload failed, retrying', { key, bytes: m.bytes });
    } else {
      this.storedPayloads++;
      this.storedBytes += m.bytes;
      q.inFlight = false;
      q.attempts = 0;
      q.notBefore = 0;
      this.markReady(m.partition, q);
    }
    this.pump();
  }

  private retryLater(m: OutgoingMessage, reason: { code?: string; message: string }, what = 'sqs send failed, retrying', fields?: Record<string, unknown>): void {
    const q = this.partitions.get(m.partition) as PartitionQueue;
    q.inFlight = false;
    q.attempts++;
    const delay = backoffDelay(q.attempts, { initialMs: this.opts.retryInitialMs ?? 100, maxMs: this.opts.retryMaxMs ?? 20_000, jitter: true });
    q.notBefore = performance.now() + delay;
    if (q.attempts === 1 || q.attempts % 10 === 0) {
      this.opts.log.warn(what, { partition: m.partition, ...fields, attempt: q.attempts, retryInMs: Math.round(delay), error: reason });
    }
    this.markReady(m.partition, q);
  }

  private fatal(err: Error): void {
    if (this.stopped) return;
    this.stop();
    this.opts.onFatal(err);
  }
}
