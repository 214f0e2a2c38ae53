import { describe, expect, it } from 'vitest';

describe('package exports', () => {
  it('users import the consumer helper by the package name', async () => {
    const pgrelay = await import('pgrelay');
    expect(typeof pgrelay.nodeHandler).toBe('function');
    const calls: string[] = [];
    const handler = pgrelay.nodeHandler({ onInserted: (e) => void calls.push(e.node.id ?? '') });
    const event = {
      v: 1, type: 'node.inserted', source: 'shop', node: { id: 'orders:1', label: 'orders', properties: { id: '1' } },
      position: { commitLsn: '0/10', seq: 0 }, tx: { xid: 1, commitLsn: '0/10', commitTime: '2026-01-01T00:00:00.000000Z' },
    };
    await handler({ version: '0', id: 'x', 'detail-type': 'node.inserted', source: 'pgrelay.shop', account: '1', time: '', region: 'us-east-1', resources: [], detail: event });
    expect(calls).toEqual(['orders:1']);
  });
});
