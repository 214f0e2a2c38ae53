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
import { payloadRef, type PayloadRef } from './change-event.ts';
import { PgRelayError } from './errors.ts';

/**
 * Codes of the PgRelayErrors a store's `get` throws. `PAYLOAD_MISSING`: the object a reference
 * names does not exist (expired, deleted, wrong bucket). `PAYLOAD_MISMATCH`: it exists but its
 * size or SHA-256 differs from the reference. Other errors (network, throttling) pass through.
 */
export type PayloadErrorCode = 'PAYLOAD_MISSING' | 'PAYLOAD_MISMATCH';

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
