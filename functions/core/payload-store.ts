/**
 * Claim checks: a payload too large for its channel (an SQS message, 1 MiB; an EventBridge
 * entry, 256 KB) is stored as an object and the channel carries a `PayloadRef` to it.
 * This file holds what every process shares and what needs no AWS SDK: the store interface,
 * key naming and the integrity check. The S3 implementation is functions/shared/s3-payload-store.ts.
 *
 * Keys are `${prefix}${kind}/${name}.json`, and callers pass names derived from positions
 * (never clocks or random numbers), so a retried or repeated upload of the same content
 * overwrites the same object instead of leaving a second copy behind.
 */
import { createHash } from 'node:crypto';
import { changeBatch, changeBatchRef, payloadRef, type ChangeBatch, type PayloadRef } from './change-event.ts';
import { PgRelayError } from './errors.ts';

/**
 * `PAYLOAD_MISSING`: the object a reference names does not exist (expired, deleted, wrong bucket).
 * `PAYLOAD_MISMATCH`: it exists but its size or SHA-256 differs from the reference.
 * `PAYLOAD_STORE_MISSING`: a message is a reference but no store is configured to read it from.
 */
export type PayloadErrorCode = 'PAYLOAD_MISSING' | 'PAYLOAD_MISMATCH' | 'PAYLOAD_STORE_MISSING';

export interface PayloadStore {
  /**
   * Stores `body` (UTF-8 JSON) under the store's prefix + `key` (make it with `payloadKey`) and
   * returns the reference a message carries instead. Overwrites: same key, same object.
   */
  put(key: string, body: string): Promise<PayloadRef>;
  /** The stored text, after checking its size and SHA-256 against `ref` (throws `PayloadErrorCode`s). */
  get(ref: PayloadRef): Promise<string>;
}

const KIND = /^[a-z][a-z0-9-]{0,31}$/;
/** Slash-separated segments of S3's "safe" characters: no ':' or other characters that need escaping. */
const NAME = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;

/** `${kind}/${name}.json`: the part of an object key below the store's prefix. */
export function payloadKey(kind: string, name: string): string {
  if (!KIND.test(kind)) throw new RangeError(`payload kind ${JSON.stringify(kind)}: lower-case letters, digits and -`);
  if (!NAME.test(name) || name.split('/').some((s) => s === '.' || s === '..')) {
    throw new RangeError(`payload name ${JSON.stringify(name)}: segments of letters, digits, _ . - separated by /`);
  }
  return `${kind}/${name}.json`;
}

/**
 * Name of the object holding one changes-queue message: the source, then the message's
 * deduplication id (partition and first/last position), whose ':' become '-'. Deterministic,
 * so the upload of a message retried after a failure or a crash overwrites the same object.
 */
export function changeBatchPayloadName(sourceId: string, deduplicationId: string): string {
  return `${sourceId}/${deduplicationId.replaceAll(':', '-')}`;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The reference to `bytes` stored at `bucket`/`key`. */
export function payloadRefOf(bucket: string, key: string, bytes: Uint8Array): PayloadRef {
  return { bucket, key, bytes: bytes.byteLength, sha256: sha256Hex(bytes) };
}

/** Throws `PAYLOAD_MISMATCH`, naming the object, unless `bytes` is exactly what `ref` describes. */
export function verifyPayload(ref: PayloadRef, bytes: Uint8Array): void {
  if (bytes.byteLength !== ref.bytes) {
    throw new PgRelayError('PAYLOAD_MISMATCH', `s3://${ref.bucket}/${ref.key} holds ${bytes.byteLength} bytes, the reference says ${ref.bytes}`);
  }
  const actual = sha256Hex(bytes);
  if (actual !== ref.sha256) {
    throw new PgRelayError('PAYLOAD_MISMATCH', `s3://${ref.bucket}/${ref.key} has SHA-256 ${actual}, the reference says ${ref.sha256}`);
  }
}

export function isPayloadRef(x: unknown): x is PayloadRef {
  return payloadRef.safeParse(x).success;
}

/** Cheap test on a parsed message body: is it a claim check (a `payloadRef` member) rather than an inline batch? */
export function hasPayloadRef(body: unknown): body is { payloadRef: unknown } {
  return typeof body === 'object' && body !== null && 'payloadRef' in body;
}

/**
 * A changes-queue message body as a ChangeBatch, fetching it from `store` when the message is
 * a ChangeBatchRef. Validates both forms (zod errors for a malformed body), and that the stored
 * batch is of the partition the reference names.
 */
export async function readChangeBatch(body: string, store: PayloadStore | undefined): Promise<ChangeBatch> {
  const parsed: unknown = JSON.parse(body);
  if (!hasPayloadRef(parsed)) return changeBatch.parse(parsed);
  const ref = changeBatchRef.parse(parsed);
  if (!store) {
    throw new PgRelayError('PAYLOAD_STORE_MISSING', `message refers to s3://${ref.payloadRef.bucket}/${ref.payloadRef.key}, but no largePayloads store is configured`);
  }
  const batch = changeBatch.parse(JSON.parse(await store.get(ref.payloadRef)));
  if (batch.partition !== ref.partition) {
    throw new PgRelayError('PAYLOAD_MISMATCH', `s3://${ref.payloadRef.bucket}/${ref.payloadRef.key} holds partition ${batch.partition}, the reference says ${ref.partition}`);
  }
  return batch;
}
