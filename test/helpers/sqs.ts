/**
 * Small helpers to read FIFO queues in tests, on the suite's SQS emulator (dev/sqs-emulator.ts).
 *
 * fauxqs facts that shape these helpers:
 *  - a FIFO receive returns at most one message per message group, and nothing more of a group
 *    while one of its messages is in flight: readers here delete what they receive before the
 *    next receive, or later messages of the group stay hidden until the visibility timeout;
 *  - queues are looked up by the exact QueueUrl string CreateQueue returned
 *    (`http://sqs.us-east-1.localhost:<port>/000000000000/<name>`); clients route by their
 *    `endpoint`, not by that URL's host, so the URL keeps working through a proxy.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
  type Message,
  type SQSClientConfig,
} from '@aws-sdk/client-sqs';

/**
 * An SQS client for a local endpoint: fixed region and dummy static credentials, so neither the
 * environment nor ~/.aws can send it to real AWS. Call `client.destroy()` when done.
 */
export function sqsClient(endpoint: string, config: Partial<SQSClientConfig> = {}): SQSClient {
  return new SQSClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    ...config,
    endpoint,
  });
}

export interface FifoQueueOptions {
  /** Also create `<name>-dlq.fifo` and redrive to it (see `dlqUrlOf`). @default false */
  dlq?: boolean;
  /** Receives before a message moves to the DLQ. @default 3 */
  maxReceiveCount?: number;
  /** @default false */
  contentBasedDeduplication?: boolean;
  /** Queue default visibility timeout in seconds. @default 30 */
  visibilityTimeoutSeconds?: number;
}

/** Creates a FIFO queue with a unique name derived from `hint` and returns its URL. */
export async function createFifoQueue(endpoint: string, hint: string, opts: FifoQueueOptions = {}): Promise<string> {
  const client = sqsClient(endpoint);
  try {
    const name = uniqueQueueName(hint);
    const attributes: Record<string, string> = {
      FifoQueue: 'true',
      ContentBasedDeduplication: String(opts.contentBasedDeduplication ?? false),
      VisibilityTimeout: String(opts.visibilityTimeoutSeconds ?? 30),
    };
    if (opts.dlq) {
      const dlq = await client.send(
        new CreateQueueCommand({ QueueName: dlqNameOf(name), Attributes: { FifoQueue: 'true' } }),
      );
      const dlqArn = await queueArn(client, required(dlq.QueueUrl, 'CreateQueue (DLQ) returned no QueueUrl'));
      attributes.RedrivePolicy = JSON.stringify({
        deadLetterTargetArn: dlqArn,
        maxReceiveCount: opts.maxReceiveCount ?? 3,
      });
    }
    const created = await client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
    return required(created.QueueUrl, 'CreateQueue returned no QueueUrl');
  } finally {
    client.destroy();
  }
}

/** URL of the dead-letter queue `createFifoQueue(..., { dlq: true })` made for `queueUrl`. */
export function dlqUrlOf(queueUrl: string): string {
  const slash = queueUrl.lastIndexOf('/');
  return `${queueUrl.slice(0, slash + 1)}${dlqNameOf(queueUrl.slice(slash + 1))}`;
}

/** The queue's ARN (`QueueArn` attribute). */
export async function queueArn(client: SQSClient, queueUrl: string): Promise<string> {
  const { Attributes } = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
  );
  return required(Attributes?.QueueArn, `no QueueArn for ${queueUrl}`);
}

export interface ReceivedMessage {
  body: string;
  messageId: string;
  groupId: string | undefined;
  deduplicationId: string | undefined;
  /** FIFO sequence number: a decimal string, compare as BigInt. */
  sequenceNumber: string | undefined;
  receiveCount: number;
  /** String message attributes by name. */
  messageAttributes: Record<string, string>;
}

export interface ReadOptions {
  /** Seconds a received message stays hidden if it is not deleted. @default 5 */
  visibilityTimeoutSeconds?: number;
  /** Long-poll time of each receive. @default 1 */
  waitTimeSeconds?: number;
}

/**
 * Receives and deletes messages, 10 per call at most, until `until(allSoFar)` is true or a
 * receive (long polling `waitTimeSeconds`) comes back empty. Returns them in receive order.
 */
export async function drainQueue(
  client: SQSClient,
  queueUrl: string,
  opts: ReadOptions & { until?: (received: ReceivedMessage[]) => boolean } = {},
): Promise<ReceivedMessage[]> {
  const received: ReceivedMessage[] = [];
  while (!opts.until?.(received)) {
    const batch = await receiveAndDelete(client, queueUrl, opts);
    if (batch.length === 0) break;
    received.push(...batch);
  }
  return received;
}

/**
 * Receives and deletes messages, accumulating them, until `predicate(allSoFar)` is true; throws
 * if it is still false after `timeoutMs`, saying how many messages did arrive.
 */
export async function receiveUntil(
  client: SQSClient,
  queueUrl: string,
  predicate: (received: ReceivedMessage[]) => boolean,
  timeoutMs = 15_000,
  opts: ReadOptions = {},
): Promise<ReceivedMessage[]> {
  const received: ReceivedMessage[] = [];
  const deadline = performance.now() + timeoutMs;
  while (!predicate(received)) {
    const remainingMs = deadline - performance.now();
    if (remainingMs <= 0) {
      const sample = received
        .slice(-5)
        .map((m) => `[${m.groupId ?? '-'}] ${m.body.slice(0, 120)}`)
        .join('\n  ');
      throw new Error(
        `receiveUntil: condition still false after ${timeoutMs} ms on ${queueUrl}; ` +
          `received ${received.length} message(s)${sample ? `, the last:\n  ${sample}` : ''}`,
      );
    }
    const waitTimeSeconds = Math.min(opts.waitTimeSeconds ?? 1, Math.floor(remainingMs / 1000));
    const batch = await receiveAndDelete(client, queueUrl, { ...opts, waitTimeSeconds });
    // In the last second the receive cannot long-poll; do not spin on an empty queue.
    if (batch.length === 0 && waitTimeSeconds === 0) await delay(Math.min(50, remainingMs));
    received.push(...batch);
  }
  return received;
}

/** Sum of the ApproximateNumberOfMessages* attributes: visible, in flight and delayed. */
export async function approximateMessageCount(client: SQSClient, queueUrl: string): Promise<number> {
  const names = [
    'ApproximateNumberOfMessages',
    'ApproximateNumberOfMessagesNotVisible',
    'ApproximateNumberOfMessagesDelayed',
  ] as const;
  const { Attributes } = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: [...names] }),
  );
  return names.reduce((sum, name) => sum + Number(Attributes?.[name] ?? 0), 0);
}

/** Endpoint of the suite's SQS emulator (from the global setup). Only inside a vitest test file. */
export async function testSqsEndpoint(): Promise<string> {
  // Imported here: the global setup imports this module, and vitest's runtime must not load there.
  const { inject } = await import('vitest');
  return inject('sqsEndpoint');
}

/** `createFifoQueue` on the suite's emulator, with a client for it (destroy it when done). */
export async function testFifoQueue(
  hint: string,
  opts: FifoQueueOptions = {},
): Promise<{ endpoint: string; queueUrl: string; client: SQSClient }> {
  const endpoint = await testSqsEndpoint();
  const queueUrl = await createFifoQueue(endpoint, hint, opts);
  return { endpoint, queueUrl, client: sqsClient(endpoint) };
}

// ---------------------------------------------------------------------------------------------

async function receiveAndDelete(
  client: SQSClient,
  queueUrl: string,
  opts: ReadOptions,
): Promise<ReceivedMessage[]> {
  const { Messages = [] } = await client.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      VisibilityTimeout: opts.visibilityTimeoutSeconds ?? 5,
      WaitTimeSeconds: opts.waitTimeSeconds ?? 1,
      MessageSystemAttributeNames: [
        'MessageGroupId',
        'MessageDeduplicationId',
        'SequenceNumber',
        'ApproximateReceiveCount',
      ],
      MessageAttributeNames: ['All'],
    }),
  );
  if (Messages.length === 0) return [];
  const deleted = await client.send(
    new DeleteMessageBatchCommand({
      QueueUrl: queueUrl,
      Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: required(m.ReceiptHandle, 'no ReceiptHandle') })),
    }),
  );
  if (deleted.Failed && deleted.Failed.length > 0) {
    throw new Error(`DeleteMessageBatch failed: ${JSON.stringify(deleted.Failed)}`);
  }
  return Messages.map(toReceived);
}

function toReceived(message: Message): ReceivedMessage {
  const system = message.Attributes ?? {};
  const messageAttributes: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    if (value.StringValue !== undefined) messageAttributes[name] = value.StringValue;
  }
  return {
    body: message.Body ?? '',
    messageId: message.MessageId ?? '',
    groupId: system.MessageGroupId,
    deduplicationId: system.MessageDeduplicationId,
    sequenceNumber: system.SequenceNumber,
    receiveCount: Number(system.ApproximateReceiveCount ?? 0),
    messageAttributes,
  };
}

function uniqueQueueName(hint: string): string {
  const base = hint.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 50) || 'queue';
  // Random, not a counter: several vitest workers share one emulator. Total stays under SQS's 80.
  return `${base}-${randomBytes(4).toString('hex')}.fifo`;
}

function dlqNameOf(queueName: string): string {
  return queueName.replace(/\.fifo$/, '-dlq.fifo');
}

function required<T>(value: T | undefined, message: string): T {
  if (value === undefined) throw new Error(message);
  return value;
}
