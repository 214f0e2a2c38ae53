/**
 * An SQS client stand-in for benchmarks whose SendMessageBatch accepts every entry at once
 * (after `delayMs`, if set), so a scenario measures the caller's own work. `onEntries` sees
 * each request's entries.
 */
import type { SendMessageBatchCommand, SendMessageBatchRequestEntry, SQSClient } from '@aws-sdk/client-sqs';
import { setTimeout as delay } from 'node:timers/promises';

export function acceptingSqsClient(onEntries?: (entries: SendMessageBatchRequestEntry[]) => void, delayMs = 0): SQSClient {
  let messageIds = 0;
  const client = {
    send: async (command: SendMessageBatchCommand) => {
      if (delayMs > 0) await delay(delayMs);
      const entries = command.input.Entries ?? [];
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
