import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { PayloadRef } from '#core/change-event.ts';
import {
  changeBatchPayloadName,
  isPayloadRef,
  payloadKey,
  payloadRefOf,
  sha256Hex,
  verifyPayload,
} from '#core/payload-store.ts';

const batchBody = JSON.stringify({
  v: 1,
  partition: 3,
  changes: [
    {
      v: 1, op: 'insert', schema: 'public', table: 't', key: { id: 1 }, after: { id: 1, body: 'é😀' }, before: null,
      position: { commitLsn: '0/10', seq: 0 }, tx: { xid: 1, commitLsn: '0/10', commitTime: '2024-01-01T00:00:00.000000Z' },
    },
  ],
});

describe('payload store helpers', () => {
  it('names objects by kind and a deterministic name, with no characters S3 keys need escaped', () => {
    const name = changeBatchPayloadName('orders-db', '3.0000000000001234:00000000.0000000000001234:00000002');
    expect(name).toBe('orders-db/3.0000000000001234-00000000.0000000000001234-00000002');
    expect(payloadKey('changes', name)).toBe('changes/orders-db/3.0000000000001234-00000000.0000000000001234-00000002.json');
    // The same message, the same key: a retried upload overwrites its own object.
    expect(payloadKey('changes', changeBatchPayloadName('orders-db', '3.0000000000001234:00000000.0000000000001234:00000002'))).toBe(
      payloadKey('changes', name),
    );
    for (const bad of ['', 'a b', 'a:b', '../x', 'a//b', '/a', 'a/']) expect(() => payloadKey('changes', bad), bad).toThrow(RangeError);
    expect(() => payloadKey('Changes', 'x')).toThrow(RangeError);
  });

  it('describes a payload by its UTF-8 size and SHA-256, and rejects any other bytes naming the object', () => {
    const bytes = Buffer.from(batchBody, 'utf8');
    const ref = payloadRefOf('bucket', 'pre/changes/x.json', bytes);
    expect(ref).toEqual({ bucket: 'bucket', key: 'pre/changes/x.json', bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    expect(ref.bytes).toBeGreaterThan(batchBody.length); // multi-byte characters counted as bytes
    expect(sha256Hex(new Uint8Array())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(isPayloadRef(ref)).toBe(true);
    expect(() => verifyPayload(ref, bytes)).not.toThrow();

    const truncated = bytes.subarray(0, bytes.length - 1);
    expect(() => verifyPayload(ref, truncated)).toThrow(expect.objectContaining({ code: 'PGRELAY_PAYLOAD_MISMATCH', message: expect.stringContaining('s3://bucket/pre/changes/x.json') }));
    const altered = Buffer.from(bytes);
    altered[altered.length - 3] = altered[altered.length - 3]! ^ 1;
    expect(() => verifyPayload(ref, altered)).toThrow(expect.objectContaining({ code: 'PGRELAY_PAYLOAD_MISMATCH', message: expect.stringContaining('SHA-256') }));
  });

  it('recognises references', () => {
    const ref: PayloadRef = { bucket: 'b', key: 'k', bytes: 1, sha256: 'a'.repeat(64) };
    expect(isPayloadRef(ref)).toBe(true);
    expect(isPayloadRef({ ...ref, sha256: 'A'.repeat(64) })).toBe(false);
    expect(isPayloadRef({ ...ref, bytes: -1 })).toBe(false);
    expect(isPayloadRef(null)).toBe(false);
  });
});
