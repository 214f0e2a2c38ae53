import { describe, expect, it } from 'vitest';
import { Checkpoint } from '#streamer/checkpoint.ts';

describe('checkpoint', () => {
  it('confirms a transaction only when it is committed and every change was accepted', () => {
    const cp = new Checkpoint(100n);
    const tx = cp.begin();
    tx.pending += 2;
    cp.commit(tx, 200n);
    expect(cp.safeLsn).toBe(100n);
    cp.accepted(tx, 1);
    expect(cp.safeLsn).toBe(100n);
    cp.accepted(tx, 1);
    expect(cp.safeLsn).toBe(200n);
  });

  it('never passes an earlier transaction that SQS has not accepted, even if later ones are', () => {
    const cp = new Checkpoint(0n);
    const a = cp.begin();
    a.pending = 1;
    cp.commit(a, 10n);
    const b = cp.begin();
    b.pending = 1;
    cp.commit(b, 20n);
    cp.accepted(b, 1);
    expect(cp.safeLsn).toBe(0n);
    cp.accepted(a, 1);
    expect(cp.safeLsn).toBe(20n);
  });

  it('lets keepalives advance an idle slot, but not past an open or unaccepted transaction', () => {
    const cp = new Checkpoint(0n);
    cp.keepalive(50n);
    expect(cp.safeLsn).toBe(50n);
    const open = cp.begin();
    open.pending = 1;
    cp.keepalive(80n);
    cp.keepalive(90n); // coalesced with the previous one
    expect(cp.safeLsn).toBe(50n);
    cp.commit(open, 70n);
    expect(cp.safeLsn).toBe(50n);
    cp.accepted(open, 1);
    expect(cp.safeLsn).toBe(90n);
    expect(cp.outstanding).toBe(0);
  });

  it('ignores keepalives that do not move forward and refuses over-acceptance', () => {
    const cp = new Checkpoint(100n);
    cp.keepalive(90n);
    expect(cp.safeLsn).toBe(100n);
    const tx = cp.begin();
    cp.commit(tx, 150n);
    expect(cp.safeLsn).toBe(150n);
    expect(() => cp.accepted(tx, 1)).toThrow(/more changes accepted/);
  });

  it('stays correct across many transactions (compaction)', () => {
    const cp = new Checkpoint(0n);
    const txs = Array.from({ length: 5000 }, (_, i) => {
      const t = cp.begin();
      t.pending = 1;
      cp.commit(t, BigInt(i + 1));
      return t;
    });
    for (let i = 0; i < 3000; i++) cp.accepted(txs[i]!, 1);
    expect(cp.safeLsn).toBe(3000n);
    for (let i = 3000; i < 5000; i++) cp.accepted(txs[i]!, 1);
    expect(cp.safeLsn).toBe(5000n);
  });
});
