import { describe, expect, it } from 'vitest';
import { changeBatch } from '#core/change-event.ts';
import { DeliveryError } from '#core/errors.ts';
import { Batcher, type OutgoingMessage } from '#streamer/batcher.ts';
import { TxMarker } from '#streamer/checkpoint.ts';

function change(seq: number, pad = 0): string {
  return JSON.stringify({
    v: 1, op: 'insert', schema: 'public', table: 't', key: { id: seq }, after: { id: seq, pad: 'x'.repeat(pad) }, before: null,
    position: { commitLsn: '0/10', seq }, tx: { xid: 1, commitLsn: '0/10', commitTime: '2024-01-01T00:00:00.000000Z' },
  });
}

describe('batcher', () => {
  it('closes a message before it would exceed maxBytes, and every body parses as a ChangeBatch', () => {
    const out: OutgoingMessage[] = [];
    const b = new Batcher({ partitions: 2, maxBytes: 4096, maxChanges: 1000, lingerMs: 1000 }, (m) => out.push(m));
    const tx = new TxMarker();
    for (let i = 0; i < 50; i++) b.add(1, change(i, 200), Buffer.byteLength(change(i, 200)), tx, 16n, i);
    b.flushAll();
    expect(out.length).toBeGreaterThan(2);
    let seen = 0;
    for (const m of out) {
      expect(Buffer.byteLength(m.body)).toBe(m.bytes);
      expect(m.bytes).toBeLessThanOrEqual(4096);
      const parsed = changeBatch.parse(JSON.parse(m.body));
      expect(parsed.partition).toBe(1);
      expect(parsed.changes.map((c) => c.position.seq)).toEqual(Array.from({ length: m.changes }, (_, k) => seen + k));
      seen += m.changes;
    }
    expect(seen).toBe(50);
    expect(tx.pending).toBe(50);
    expect(b.bufferedBytes).toBe(0);
  });

  it('closes on the change count and on linger, and derives deduplication ids from positions', () => {
    let now = 0;
    const out: OutgoingMessage[] = [];
    const b = new Batcher({ partitions: 1, maxBytes: 256 * 1024, maxChanges: 3, lingerMs: 10 }, (m) => out.push(m), () => now);
    const tx = new TxMarker();
    for (let i = 0; i < 4; i++) b.add(0, change(i), Buffer.byteLength(change(i)), tx, 0x1234n, i);
    expect(out.map((m) => m.changes)).toEqual([3]);
    b.flushDue();
    expect(out).toHaveLength(1);
    now = 10;
    b.flushDue();
    expect(out.map((m) => m.changes)).toEqual([3, 1]);
    expect(out[0]!.deduplicationId).toBe('0.0000000000001234:00000000.0000000000001234:00000002');
    expect(out[1]!.deduplicationId).toBe('0.0000000000001234:00000003.0000000000001234:00000003');
  });

  it('records how many changes of each transaction a message carries', () => {
    const out: OutgoingMessage[] = [];
    const b = new Batcher({ partitions: 1, maxBytes: 256 * 1024, maxChanges: 100, lingerMs: 10 }, (m) => out.push(m));
    const t1 = new TxMarker();
    const t2 = new TxMarker();
    b.add(0, change(0), Buffer.byteLength(change(0)), t1, 1n, 0);
    b.add(0, change(1), Buffer.byteLength(change(1)), t1, 1n, 1);
    b.add(0, change(0), Buffer.byteLength(change(0)), t2, 2n, 0);
    b.flushAll();
    expect(out[0]!.markers).toEqual([t1, t2]);
    expect(out[0]!.counts).toEqual([2, 1]);
  });

  it('sends a change above maxBytes alone, and refuses one that no SQS message can hold', () => {
    const out: OutgoingMessage[] = [];
    const b = new Batcher({ partitions: 1, maxBytes: 4096, maxChanges: 100, lingerMs: 10 }, (m) => out.push(m));
    const tx = new TxMarker();
    b.add(0, change(0), Buffer.byteLength(change(0)), tx, 1n, 0);
    b.add(0, change(1, 10_000), Buffer.byteLength(change(1, 10_000)), tx, 1n, 1);
    b.add(0, change(2), Buffer.byteLength(change(2)), tx, 1n, 2);
    b.flushAll();
    expect(out.map((m) => m.changes)).toEqual([1, 1, 1]);
    expect(out[1]!.bytes).toBeGreaterThan(10_000);
    let err: unknown;
    try {
      b.add(0, change(3, 1024 * 1024), Buffer.byteLength(change(3, 1024 * 1024)), tx, 1n, 3);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).code).toBe('PGRELAY_CHANGE_TOO_LARGE');
    expect((err as Error).message).toContain('0000000000000001:00000003');
  });

  it('with a payload store, sends a change too large for SQS alone as an oversized message, after the open batch of its partition', () => {
    const out: OutgoingMessage[] = [];
    const b = new Batcher({ partitions: 2, maxBytes: 256 * 1024, maxChanges: 100, lingerMs: 10, oversized: true }, (m) => out.push(m));
    const tx = new TxMarker();
    const huge = change(1, 1024 * 1024);
    b.add(1, change(0), Buffer.byteLength(change(0)), tx, 1n, 0);
    b.add(0, change(9), Buffer.byteLength(change(9)), tx, 1n, 9);
    b.add(1, huge, Buffer.byteLength(huge), tx, 1n, 1);
    b.add(1, change(2), Buffer.byteLength(change(2)), tx, 1n, 2);
    // The open batch of partition 1 went first, then the oversized change; partition 0 is untouched.
    expect(out.map((m) => [m.partition, m.changes, m.oversized ?? false])).toEqual([[1, 1, false], [1, 1, true]]);
    const big = out[1]!;
    expect(Buffer.byteLength(big.body)).toBe(big.bytes);
    expect(big.bytes).toBeGreaterThan(1024 * 1024);
    expect(changeBatch.parse(JSON.parse(big.body)).changes[0]!.position.seq).toBe(1);
    expect(big.deduplicationId).toBe('1.0000000000000001:00000001.0000000000000001:00000001');
    expect(big.markers).toEqual([tx]);
    expect(big.counts).toEqual([1]);
    expect(b.bufferedBytes).toBe(Buffer.byteLength(change(9)) + Buffer.byteLength(change(2)));
    b.flushAll();
    expect(out.map((m) => m.changes)).toEqual([1, 1, 1, 1]);
    expect(tx.pending).toBe(4);
  });
});
