import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { PayloadRef } from '#core/change-event.ts';
import {
  changeBatchPayloadName,
  hasPayloadRef,
  isPayloadRef,
  payloadKey,
  payloadRefOf,
  readChangeBatch,
  sha256Hex,
  verifyPayload,
  type PayloadStore,
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

/** A store in memory, with the same contract as the S3 one. */
function memoryStore(): PayloadStore & { objects: Map<string, Buffer> } {
  const objects = new Map<string, Buffer>();
  return {
    objects,
    async put(key, body) {
      const bytes = Buffer.from(body, 'utf8');
      objects.set(`pre/${key}`, bytes);
      return payloadRefOf('bucket', `pre/${key}`, bytes);
    },
    async get(ref) {
      const bytes = objects.get(ref.key);
      if (!bytes) throw new Error('missing');
      verifyPayload(ref, bytes);
      return bytes.toString('utf8');
    },
  };
}

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
    expect(() => verifyPayload(ref, truncated)).toThrow(expect.objectContaining({ code: 'PAYLOAD_MISMATCH', message: expect.stringContaining('s3://bucket/pre/changes/x.json') }));
    const altered = Buffer.from(bytes);
    altered[altered.length - 3] = altered[altered.length - 3]! ^ 1;
    expect(() => verifyPayload(ref, altered)).toThrow(expect.objectContaining({ code: 'PAYLOAD_MISMATCH', message: expect.stringContaining('SHA-256') }));
  });

  it('recognises references', () => {
    const ref: PayloadRef = { bucket: 'b', key: 'k', bytes: 1, sha256: 'a'.repeat(64) };
    expect(isPayloadRef(ref)).toBe(true);
    expect(isPayloadRef({ ...ref, sha256: 'A'.repeat(64) })).toBe(false);
    expect(isPayloadRef({ ...ref, bytes: -1 })).toBe(false);
    expect(isPayloadRef(null)).toBe(false);
    expect(hasPayloadRef({ v: 1, partition: 0, payloadRef: ref })).toBe(true);
    expect(hasPayloadRef(JSON.parse(batchBody))).toBe(false);
  });

  it('reads a changes-queue body inline or through its reference, and refuses a reference it cannot honour', async () => {
    const store = memoryStore();
    const inline = await readChangeBatch(batchBody, undefined);
    expect(inline.changes[0]!.after).toEqual({ id: 1, body: 'é😀' });

    const ref = await store.put('changes/src/x.json', batchBody);
    const refBody = JSON.stringify({ v: 1, partition: 3, payloadRef: ref });
    expect(await readChangeBatch(refBody, store)).toEqual(inline);

    await expect(readChangeBatch(refBody, undefined)).rejects.toMatchObject({ code: 'PAYLOAD_STORE_MISSING' });
    await expect(readChangeBatch(JSON.stringify({ v: 1, partition: 4, payloadRef: ref }), store)).rejects.toMatchObject({ code: 'PAYLOAD_MISMATCH' });
    store.objects.set(ref.key, Buffer.from(batchBody.replace('"id":1', '"id":2')));
    await expect(readChangeBatch(refBody, store)).rejects.toMatchObject({ code: 'PAYLOAD_MISMATCH' });
  });
});
