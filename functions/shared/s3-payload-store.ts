/**
 * The claim-check store on S3, used by the streamer (writes change batches too large for SQS),
 * the transform (reads them, writes events too large for EventBridge) and the consumer helper
 * (reads those). It lives here, not in functions/core, because core stays free of the AWS SDK,
 * and not under one stage, because three stages share it.
 */
import { GetObjectCommand, NoSuchBucket, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { PayloadRef } from '#core/change-event.ts';
import { PgRelayError } from '#core/errors.ts';
import { payloadRefOf, verifyPayload, type PayloadStore } from '#core/payload-store.ts';

export interface S3PayloadStoreOptions {
  bucket: string;
  /** Prepended to every key; an IAM policy may be limited to it. */
  prefix: string;
  region: string;
  /** An S3-compatible endpoint (local emulator); path-style addressing is used with it. */
  endpoint?: string;
  /** Static credentials (local emulator). @default the SDK's default provider chain */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * Attempts per request inside the SDK. The streamer retries forever with its own backoff
   * and passes 2, like its SQS client. @default 3 (the SDK's default)
   */
  maxAttempts?: number;
}

/** `destroy()` closes the client's sockets (tests, short-lived tools). */
export function s3PayloadStore(opts: S3PayloadStoreOptions): PayloadStore & { destroy(): void } {
  const client = new S3Client({
    region: opts.region,
    ...(opts.endpoint ? { endpoint: opts.endpoint, forcePathStyle: true } : {}),
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
    maxAttempts: opts.maxAttempts ?? 3,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
  });
  return {
    destroy: () => client.destroy(),

    async put(key, body) {
      const bytes = Buffer.from(body, 'utf8');
      const ref = payloadRefOf(opts.bucket, `${opts.prefix}${key}`, bytes);
      await client.send(
        new PutObjectCommand({
          Bucket: ref.bucket,
          Key: ref.key,
          Body: bytes,
          ContentType: 'application/json',
          // S3 checks the body against the digest we already computed for the reference, and
          // refuses a PUT that arrived damaged (BadDigest) instead of storing it.
          ChecksumAlgorithm: 'SHA256',
          ChecksumSHA256: Buffer.from(ref.sha256, 'hex').toString('base64'),
        }),
      );
      return ref;
    },

    async get(ref: PayloadRef) {
      let bytes: Uint8Array;
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
        if (!res.Body) throw new PgRelayError('PAYLOAD_MISSING', `s3://${ref.bucket}/${ref.key} returned no body`);
        bytes = await res.Body.transformToByteArray();
      } catch (err) {
        if (err instanceof NoSuchKey || err instanceof NoSuchBucket) {
          throw new PgRelayError('PAYLOAD_MISSING', `s3://${ref.bucket}/${ref.key} does not exist (${err.name})`, { cause: err });
        }
        throw err;
      }
      verifyPayload(ref, bytes);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
    },
  };
}
