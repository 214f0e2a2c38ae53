import { describe, expect, it } from 'vitest';
import { changeEvent, graphNodeEvent, type ChangeEvent, type NodeEvent, type RowChangeEvent } from '#core/change-event.ts';
import { PgRelayError } from '#core/errors.ts';
import { labelsFor } from '#core/node-id.ts';
import { changedProperties, toGraphEvent, type GraphEventContext } from '#core/row-to-node.ts';

const TX = { xid: 7311, commitLsn: '0/1B862A0', commitTime: '2026-11-21T10:22:37.671002Z' };

/** A ChangeEvent as the streamer writes it; `over` replaces fields. */
function change(over: Partial<RowChangeEvent> & Pick<RowChangeEvent, 'op'>): RowChangeEvent {
  return {
    v: 1,
    schema: 'public',
    table: 'orders',
    key: { id: '42' },
    after: { id: '42', status: 'paid', total: '1299.90' },
    before: null,
    position: { commitLsn: TX.commitLsn, seq: 3 },
    tx: TX,
    ...over,
  };
}

const ctx: GraphEventContext = {
  source: 'shop',
  labels: labelsFor([
    { schema: 'public', table: 'orders' },
    { schema: 'public', table: 'order_items' },
    { schema: 'public', table: 'tags' },
  ]),
};

/**
 * Map one change, checking what every test relies on: the fixture is a valid ChangeEvent
 * (or the test proves nothing) and every event passes the zod contract as it is. zod strips
 * unknown keys, so equality after parsing proves there were none; a JSON round trip compared
 * strictly proves no field is present-but-undefined.
 */
function run(c: ChangeEvent, context: GraphEventContext = ctx): NodeEvent[] {
  changeEvent.parse(c);
  const event = toGraphEvent(c, context);
  if (event === null) return [];
  expect(graphNodeEvent.parse(event)).toEqual(event);
  expect(JSON.parse(JSON.stringify(event))).toStrictEqual(event);
  return [event as NodeEvent];
}

describe('toGraphEvent: insert', () => {
  it('emits one node.inserted whose properties are the new row', () => {
    const c = change({ op: 'insert' });
    const events = run(c);
    expect(events).toStrictEqual([
      {
        v: 1,
        type: 'node.inserted',
        source: 'shop',
        node: { id: 'orders:42', label: 'orders', properties: { id: '42', status: 'paid', total: '1299.90' } },
        position: { commitLsn: '0/1B862A0', seq: 3 },
        tx: TX,
      },
    ]);
    // Position and tx travel unchanged: the same objects, not re-derived.
    expect(events[0]?.position).toBe(c.position);
    expect(events[0]?.tx).toBe(c.tx);
  });

  it('carries unchanged and the after list of jsonNulls, not the before list', () => {
    const [event] = run(
      change({
        op: 'insert',
        after: { id: '42', doc: null, note: null },
        unchanged: ['body'],
        jsonNulls: { after: ['doc'], before: ['other'] },
      }),
    );
    expect(event?.unchanged).toEqual(['body']);
    expect(event?.jsonNulls).toEqual(['doc']);
  });

  it('joins a composite key in key order', () => {
    const [event] = run(
      change({ op: 'insert', table: 'order_items', key: { order_id: '42', line: 7 }, after: { order_id: '42', line: 7, sku: 'X' } }),
    );
    expect(event?.node.id).toBe('order_items:42:7');
    expect(event?.node.label).toBe('order_items');
  });

  it("escapes ':' and '%' inside key values so ids split back unambiguously", () => {
    const [event] = run(
      change({ op: 'insert', table: 'tags', key: { ns: 'a:b', name: '100%' }, after: { ns: 'a:b', name: '100%' } }),
    );
    expect(event?.node.id).toBe('tags:a%3Ab:100%25');
  });
});

describe('toGraphEvent: labels', () => {
  const twoOrders: GraphEventContext = {
    ...ctx,
    labels: labelsFor([
      { schema: 'public', table: 'orders' },
      { schema: 'sales', table: 'orders' },
      { schema: 'public', table: 'customers' },
    ]),
  };

  it('schema-qualifies the label (and the id) where two tables share a name', () => {
    const [sales] = run(change({ op: 'insert', schema: 'sales' }), twoOrders);
    const [pub] = run(change({ op: 'insert' }), twoOrders);
    expect(sales?.node).toMatchObject({ id: 'sales.orders:42', label: 'sales.orders' });
    expect(pub?.node).toMatchObject({ id: 'public.orders:42', label: 'public.orders' });
  });

  it('keeps the bare table name for a table whose name is unique', () => {
    const [event] = run(change({ op: 'insert', table: 'customers', key: { id: 1 }, after: { id: 1 } }), twoOrders);
    expect(event?.node).toMatchObject({ id: 'customers:1', label: 'customers' });
  });

  it('falls back to the table name for a table missing from the labels map', () => {
    const [event] = run(change({ op: 'insert', schema: 'audit', table: 'log', key: { id: '9' }, after: { id: '9' } }));
    expect(event?.node).toMatchObject({ id: 'log:9', label: 'log' });
  });
});

describe('toGraphEvent: update', () => {
  it('without the old row: node.updated with neither previous nor changed', () => {
    const events = run(change({ op: 'update', unchanged: ['notes'] }));
    expect(events).toHaveLength(1);
    const [event] = events;
    expect(event?.type).toBe('node.updated');
    expect(event?.node.id).toBe('orders:42');
    expect(event?.unchanged).toEqual(['notes']);
    expect(event).not.toHaveProperty('previous');
    expect(event).not.toHaveProperty('changed');
  });

  it('with the old row: previous is the old row and changed lists the differing properties', () => {
    const before = { id: '42', status: 'new', total: '1299.90', meta: { a: 1, b: [1, 2] }, tags: [1, 2] };
    const after = { id: '42', status: 'paid', total: '1299.90', meta: { a: 1, b: [1, 2] }, tags: [1, 2, 3] };
    const [event] = run(change({ op: 'update', before, after }));
    expect(event?.previous).toBe(before);
    expect(event?.node.properties).toBe(after);
    // meta is equal by value though a different object; tags gained an element.
    expect(event?.changed).toEqual(['status', 'tags']);
  });

  it('a property on one side only is changed (a column added or dropped between rows)', () => {
    const [event] = run(change({ op: 'update', before: { id: '42', old_col: 1 }, after: { id: '42', new_col: 2 } }));
    expect(event?.changed).toEqual(['new_col', 'old_col']);
  });

  it('a property named in unchanged is not changed, though absent from after', () => {
    const [event] = run(
      change({
        op: 'update',
        before: { id: '42', status: 'new', body: 'long toasted text' },
        after: { id: '42', status: 'paid' },
        unchanged: ['body'],
      }),
    );
    expect(event?.changed).toEqual(['status']);
    expect(event?.unchanged).toEqual(['body']);
  });

  it('an update that changes nothing has an empty changed list, not a missing one', () => {
    const row = { id: '42', status: 'paid' };
    const [event] = run(change({ op: 'update', before: { ...row }, after: row }));
    expect(event?.changed).toEqual([]);
  });

  it('a json column moving between SQL NULL and JSON null is changed, though both read null', () => {
    const [event] = run(
      change({
        op: 'update',
        before: { id: '42', doc: null, other: null },
        after: { id: '42', doc: null, other: null },
        jsonNulls: { after: ['doc', 'other'], before: ['other'] },
      }),
    );
    expect(event?.changed).toEqual(['doc']);
    expect(event?.jsonNulls).toEqual(['doc', 'other']);
  });

  it('compares json values by their text: key order of a json column counts', () => {
    expect(changedProperties({ j: { a: 1, b: 2 } }, { j: { b: 2, a: 1 } })).toEqual(['j']);
    expect(changedProperties({ j: { a: 1, b: 2 } }, { j: { a: 1, b: 2 } })).toEqual([]);
    expect(changedProperties({ n: '1.0' }, { n: '1.00' })).toEqual(['n']);
    expect(changedProperties({ v: null }, { v: 0 })).toEqual(['v']);
    expect(changedProperties({ v: [] }, { v: {} })).toEqual(['v']);
  });

  it('unchanged wins over a differing value: the rule names it unchanged on both sides', () => {
    expect(changedProperties({ a: 1, b: 1 }, { a: 2, b: 2 }, ['a'])).toEqual(['b']);
    expect(changedProperties({ a: 1, b: 1 }, { b: 1 }, ['a'])).toEqual([]);
    expect(changedProperties({ a: 1, b: 1 }, { b: 1 })).toEqual(['a']);
  });
});

describe('toGraphEvent: key change', () => {
  // The streamer sends a key change as a delete of the old key (with newKey) and an insert of
  // the new one (with oldKey), each in its own key's partition; both events say so in keyChange.
  it('the delete half: node.deleted of the old id, with the old row when known, and keyChange', () => {
    const before = { id: '41', status: 'paid', doc: null };
    const c = change({ op: 'delete', key: { id: '41' }, newKey: { id: '42' }, before, after: null, jsonNulls: { before: ['doc'] } });
    const [deleted, ...rest] = run(c);
    expect(rest).toEqual([]);
    expect(deleted).toMatchObject({ type: 'node.deleted', node: { id: 'orders:41' }, keyChange: { oldId: 'orders:41', newId: 'orders:42' } });
    expect(deleted?.node.properties).toBe(before);
    expect(deleted?.jsonNulls).toEqual(['doc']);
    expect(deleted?.position).toBe(c.position);
  });

  it('the insert half: node.inserted of the new id with what did not change, and keyChange (composite key, no old row)', () => {
    const [inserted] = run(
      change({
        op: 'insert',
        table: 'order_items',
        key: { order_id: '42', line: 8 },
        oldKey: { order_id: '42', line: 7 },
        after: { order_id: '42', line: 8, sku: 'X' },
        unchanged: ['note'],
      }),
    );
    expect(inserted).toMatchObject({ type: 'node.inserted', node: { id: 'order_items:42:8' }, unchanged: ['note'], keyChange: { oldId: 'order_items:42:7', newId: 'order_items:42:8' } });
    expect(inserted).not.toHaveProperty('previous');
  });

  it('a plain insert or delete has no keyChange', () => {
    for (const c of [change({ op: 'insert' }), change({ op: 'delete', after: null })]) expect(run(c)[0]).not.toHaveProperty('keyChange');
  });
});

describe('toGraphEvent: logical message', () => {
  it('is one message.emitted with the message, position and tx as they came (null tx when non-transactional)', () => {
    const message = { prefix: 'outbox', content: 'hi', encoding: 'utf8' as const, transactional: false };
    const c: ChangeEvent = { v: 1, op: 'message', message, position: { commitLsn: '0/900', seq: 0 }, tx: null };
    changeEvent.parse(c);
    const event = toGraphEvent(c, ctx);
    expect(event).toStrictEqual({ v: 1, type: 'message.emitted', source: 'shop', message, position: c.position, tx: null });
    expect(graphNodeEvent.parse(event)).toEqual(event);
  });
});

describe('toGraphEvent: delete', () => {
  it('with the old row: node.deleted whose properties are the old row', () => {
    const before = { id: '42', status: 'paid', doc: null };
    const [event, ...rest] = run(change({ op: 'delete', after: null, before, jsonNulls: { before: ['doc'] } }));
    expect(rest).toEqual([]);
    expect(event).toMatchObject({ type: 'node.deleted', node: { id: 'orders:42', label: 'orders' } });
    expect(event?.node.properties).toBe(before);
    expect(event?.jsonNulls).toEqual(['doc']);
  });

  it('without the old row: the key columns', () => {
    const [event] = run(change({ op: 'delete', after: null, key: { id: '42' } }));
    expect(event?.node.properties).toEqual({ id: '42' });
    expect(event).not.toHaveProperty('jsonNulls');
  });
});

describe('toGraphEvent: truncate', () => {
  const truncate = change({
    op: 'truncate',
    key: null,
    after: null,
    truncate: { cascade: true, restartIdentity: false },
  });

  it('a truncate (each partition\'s copy alike) is one label.truncated with the flags', () => {
    expect(run(truncate)).toStrictEqual([
      {
        v: 1,
        type: 'label.truncated',
        source: 'shop',
        node: { id: null, label: 'orders', properties: {} },
        truncate: { cascade: true, restartIdentity: false },
        position: truncate.position,
        tx: TX,
      },
    ]);
  });


});

describe('toGraphEvent: gap', () => {
  const gapChange = change({
    op: 'gap',
    key: null,
    after: null,
    gap: { reason: 'slot-dropped', afterLsn: '0/100', untilLsn: '0/200', repair: 'bootstrap-requested' },
  });

  it('a gap is one label.gap saying what was lost', () => {
    expect(run(gapChange)).toStrictEqual([
      {
        v: 1,
        type: 'label.gap',
        source: 'shop',
        node: { id: null, label: 'orders', properties: {} },
        gap: { reason: 'slot-dropped', afterLsn: '0/100', untilLsn: '0/200', repair: 'bootstrap-requested' },
        position: gapChange.position,
        tx: TX,
      },
    ]);
  });
});

const snapshotRow: ChangeEvent = {
  v: 1,
  op: 'snapshot',
  schema: 'public',
  table: 'orders',
  key: { id: '42' },
  after: { id: '42', status: 'paid', doc: null },
  before: null,
  jsonNulls: { after: ['doc'] },
  load: 'L1',
  position: { commitLsn: '0/1B86300', seq: 7 },
  tx: null,
};

describe('toGraphEvent: bootstrap', () => {
  it('a snapshot row is a node.updated marked snapshot, with its load and no transaction: an upsert of an existing row', () => {
    const [event, ...rest] = run(snapshotRow);
    expect(rest).toEqual([]);
    expect(event).toStrictEqual({
      v: 1,
      type: 'node.updated',
      source: 'shop',
      node: { id: 'orders:42', label: 'orders', properties: { id: '42', status: 'paid', doc: null } },
      snapshot: true,
      load: 'L1',
      jsonNulls: ['doc'],
      position: snapshotRow.position,
      tx: null,
    });
  });

  it('started and completed markers are label.snapshot.* with the load', () => {
    const load = { id: 'L1', reason: 'gap' as const, gap: { afterLsn: '0/10', untilLsn: '0/20' } };
    const marker = (op: 'bootstrap.started' | 'bootstrap.completed', bootstrap: object): ChangeEvent =>
      ({ v: 1, op, schema: 'public', table: 'orders', key: null, after: null, before: null, bootstrap, position: { commitLsn: '0/30', seq: 0 }, tx: null }) as ChangeEvent;
    expect(run(marker('bootstrap.started', load))).toStrictEqual([
      { v: 1, type: 'label.snapshot.started', source: 'shop', node: { id: null, label: 'orders', properties: {} }, bootstrap: load, position: { commitLsn: '0/30', seq: 0 }, tx: null },
    ]);
    const [done] = run(marker('bootstrap.completed', { ...load, outcome: 'complete', rows: 12 }));
    expect(done).toMatchObject({ type: 'label.snapshot.completed', bootstrap: { outcome: 'complete', rows: 12 } });
  });

  it('a live change during a load carries the load', () => {
    expect(run(change({ op: 'update', load: 'L1' }))[0]).toMatchObject({ type: 'node.updated', load: 'L1' });
    expect(run(change({ op: 'delete', after: null, load: 'L1' }))[0]).toMatchObject({ type: 'node.deleted', load: 'L1' });
  });
});

describe('toGraphEvent: malformed changes', () => {
  it('a row change without a key throws MALFORMED_CHANGE naming table and position', () => {
    const err = catchError(() => toGraphEvent(change({ op: 'update', key: null }), ctx));
    expect(err).toBeInstanceOf(PgRelayError);
    expect((err as PgRelayError).code).toBe('PGRELAY_MALFORMED_CHANGE');
    expect((err as PgRelayError).message).toContain('public.orders at (0/1B862A0, 3)');
  });

  it('an insert without after throws MALFORMED_CHANGE', () => {
    const err = catchError(() => toGraphEvent(change({ op: 'insert', after: null }), ctx));
    expect((err as PgRelayError).code).toBe('PGRELAY_MALFORMED_CHANGE');
  });
});

describe('toGraphEvent: the contract', () => {
  it('every op yields events that parse with graphNodeEvent', () => {
    const before = { id: '41', status: 'new' };
    const all = [
      change({ op: 'insert', unchanged: ['x'], jsonNulls: { after: ['status'] } }),
      change({ op: 'update', before: { id: '42', status: 'new' } }),
      change({ op: 'delete', key: { id: '41' }, newKey: { id: '42' }, before, after: null }),
      change({ op: 'insert', oldKey: { id: '41' } }),
      change({ op: 'delete', after: null }),
      change({ op: 'truncate', key: null, after: null, truncate: { cascade: false, restartIdentity: true } }),
      snapshotRow,
    ].flatMap((c) => run(c));
    expect(all.map((e) => e.type)).toEqual([
      'node.inserted',
      'node.updated',
      'node.deleted',
      'node.inserted',
      'node.deleted',
      'label.truncated',
      'node.updated',
    ]);
  });

  it('a parse failure would be caught: an event with a bad type does not parse', () => {
    const [event] = run(change({ op: 'insert' }));
    expect(graphNodeEvent.safeParse({ ...event, type: 'node.upserted' }).success).toBe(false);
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}
