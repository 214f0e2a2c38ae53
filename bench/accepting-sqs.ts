/**
 * An SQS client stand-in for benchmarks whose SendMessageBatch accepts every entry at once
 * (after `delayMs`, if set), so a scenario measures the caller's own work. `onEntries` sees
 * each request's entries (read a body with `entryBody`). Each request's document is written as
 * the streamer's real client writes it (`writeBatchRequest`, into a reused buffer, with the
 * MD5 of each body), so that work stays in the figures; only the network and SQS are left out.
 */
import type { SendMessageBatchCommand, SendMessageBatchRequestEntry, SQSClient } from '@aws-sdk/client-sqs';
import { setTimeout as delay } from 'node:timers/promises';
import { writeBatchRequest } from '#shared/sqs-batch-body.ts';

export function acceptingSqsClient(onEntries?: (entries: SendMessageBatchRequestEntry[]) => void, delayMs = 0): SQSClient {
  let messageIds = 0;
  let buffer: Buffer | undefined;
  const client = {
    send: async (command: SendMessageBatchCommand) => {
      if (delayMs > 0) await delay(delayMs);
      const entries = command.input.Entries ?? [];
      buffer = writeBatchRequest(command.input, buffer).buffer;
      onEntries?.(entries);
      return {
        $metadata: {},
        Successful: entries.map((e) => ({ Id: e.Id, MessageId: String(++messageIds), MD5OfMessageBody: '' })),
        Failed: [],
      };
    },
    destroy: () => undefined,
  };
  return client as unknown as SQSClient;
}
