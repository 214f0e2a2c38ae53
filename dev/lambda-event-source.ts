/**
 * What Lambda's SQS event source mapping does, on a real queue (npm start runs the transform
 * and the consumer through this; tests too): receive a batch (FIFO: up to
 * 10 messages), hand the handler an event in the exact SQS event shape, then delete the
 * records it did not report in `batchItemFailures`; the failed ones reappear after their
 * visibility timeout, with a higher receive count, and the queue's redrive policy moves them
 * to the dead-letter queue after maxReceiveCount.
 */
import { DeleteMessageBatchCommand, GetQueueAttributesCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SqsBatchResponse, SqsEvent, SqsRecord } from '#shared/lambda-types.ts';

export interface PollResult {
  received: number;
  failed: string[];
}

export async function invokeFromQueue(
  client: SQSClient,
  queueUrl: string,
  handler: (event: SqsEvent) => Promise<SqsBatchResponse>,
  opts: { visibilityTimeoutSeconds?: number; waitTimeSeconds?: number; maxMessages?: number } = {},
): Promise<PollResult> {
  const { Attributes } = await client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }));
  const arn = Attributes?.QueueArn ?? 'arn:aws:sqs:us-east-1:000000000000:unknown';
  const { Messages = [] } = await client.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: opts.maxMessages ?? 10,
      WaitTimeSeconds: opts.waitTimeSeconds ?? 1,
      VisibilityTimeout: opts.visibilityTimeoutSeconds ?? 2,
      MessageSystemAttributeNames: ['All'],
      MessageAttributeNames: ['All'],
    }),
  );
  if (Messages.length === 0) return { received: 0, failed: [] };
  const records: SqsRecord[] = Messages.map((m) => ({
    messageId: m.MessageId ?? '',
    receiptHandle: m.ReceiptHandle ?? '',
    body: m.Body ?? '',
    attributes: {
      ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? '1',
      SentTimestamp: m.Attributes?.SentTimestamp ?? String(Date.now()),
      SenderId: m.Attributes?.SenderId ?? 'local',
      ApproximateFirstReceiveTimestamp: m.Attributes?.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
      ...(m.Attributes?.MessageGroupId ? { MessageGroupId: m.Attributes.MessageGroupId } : {}),
      ...(m.Attributes?.MessageDeduplicationId ? { MessageDeduplicationId: m.Attributes.MessageDeduplicationId } : {}),
      ...(m.Attributes?.SequenceNumber ? { SequenceNumber: m.Attributes.SequenceNumber } : {}),
    },
    messageAttributes: {},
    md5OfBody: m.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: arn,
    awsRegion: 'us-east-1',
  }));
  const response = await handler({ Records: records });
  const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
  const done = Messages.filter((m) => !failed.has(m.MessageId ?? ''));
  if (done.length > 0) {
    await client.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })) }));
  }
  return { received: Messages.length, failed: [...failed] };
}

/** Poll a queue into a handler until stopped, like an event source mapping. */
export class SqsEventSource {
  private running = false;
  private loop: Promise<void> | undefined;
  invocations = 0;
  records = 0;
  failures = 0;

  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    private readonly handler: (event: SqsEvent) => Promise<SqsBatchResponse>,
    private readonly opts: { visibilityTimeoutSeconds?: number; onError?: (err: unknown) => void } = {},
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        try {
          const r = await invokeFromQueue(this.client, this.queueUrl, this.handler, { visibilityTimeoutSeconds: this.opts.visibilityTimeoutSeconds ?? 5, waitTimeSeconds: 1 });
          if (r.received > 0) this.invocations++;
          this.records += r.received;
          this.failures += r.failed.length;
        } catch (err) {
          if (this.running) this.opts.onError?.(err);
        }
      }
    })();
  }

  /** Stops after the receive in progress (at most its long-poll wait). */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
