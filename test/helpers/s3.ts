/**
 * S3 on the suite's emulator: fauxqs serves S3 on the same endpoint as SQS (path-style
 * addressing: http://127.0.0.1:<port>/<bucket>/<key>). Buckets are created per test, with
 * unique names, because test files share one emulator.
 */
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { changeBatch, changeBatchRef, type ChangeBatch, type PayloadRef } from '#core/change-event.ts';
import { s3PayloadStore } from '#shared/s3-payload-store.ts';
import type { ReceivedMessage } from './sqs.ts';
import { isStreamChange, type ReceivedChange } from './streamer.ts';

const LOCAL_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

/** An S3 client for a local endpoint (path-style, dummy credentials). Call `client.destroy()` when done. */
export function s3Client(endpoint: string): S3Client {
  return new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: LOCAL_CREDENTIALS });
}

/** Creates a bucket with a unique name derived from `hint` and returns its name. */
export async function createTestBucket(endpoint: string, hint: string): Promise<string> {
  const client = s3Client(endpoint);
  try {
    const base = hint.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'bucket';
    const bucket = `${base}-${randomBytes(4).toString('hex')}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return bucket;
  } finally {
    client.destroy();
  }
}

/**
 * Parses received changes-queue messages into changes, fetching claim-checked batches from S3
 * (through the real store, which checks size and SHA-256). `refs` lists the references seen.
 */
export async function resolveChanges(
  endpoint: string,
  messages: ReceivedMessage[],
): Promise<{ changes: ReceivedChange[]; refs: { message: ReceivedMessage; payloadRef: PayloadRef }[] }> {
  const store = s3PayloadStore({ bucket: '', prefix: '', region: 'us-east-1', endpoint, credentials: LOCAL_CREDENTIALS });
  try {
    const changes: ReceivedChange[] = [];
    const refs: { message: ReceivedMessage; payloadRef: PayloadRef }[] = [];
    for (const m of messages) {
      const doc = JSON.parse(m.body) as Record<string, unknown>;
      let batch: ChangeBatch;
      if ('payloadRef' in doc) {
        const ref = changeBatchRef.parse(doc);
        refs.push({ message: m, payloadRef: ref.payloadRef });
        batch = changeBatch.parse(JSON.parse(await store.get(ref.payloadRef)));
        if (batch.partition !== ref.partition) throw new Error(`stored batch of partition ${batch.partition} behind a reference for ${ref.partition}`);
      } else {
        batch = changeBatch.parse(doc);
      }
      for (const c of batch.changes) if (isStreamChange(c)) changes.push({ ...c, partition: batch.partition, groupId: m.groupId ?? '' });
    }
    return { changes, refs };
  } finally {
    store.destroy();
  }
}

/** Changes in received messages without fetching anything: a reference counts as the one change it stands for. */
export function changeCount(messages: ReceivedMessage[]): number {
  let n = 0;
  for (const m of messages) {
    const doc = JSON.parse(m.body) as { changes?: unknown[]; payloadRef?: unknown };
    n += doc.payloadRef !== undefined ? 1 : (doc.changes?.length ?? 0);
  }
  return n;
}
