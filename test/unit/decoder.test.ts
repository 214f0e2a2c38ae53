import { describe, expect, it } from 'vitest';
import { changeEvent, type MessageChangeEvent, type RowChangeEvent } from '#core/change-event.ts';
import { messagePartition, partitionOf } from '#core/partition.ts';
import { PG_OID } from '#core/values/catalog.ts';
import { TypeRegistry } from '#core/values/registry.ts';
import { Decoder, type ChangeSink } from '#streamer/decoder.ts';
import { parsePgOutput } from '#streamer/pgoutput.ts';
import { pgo } from '#test/helpers/pgoutput-builder.ts';

function decoderWith(tables: Record<string, string[]>, slotName?: string, messagePrefixes: string[] = []) {
  const out: { partition: number; json: string; bytes: number; seq: number }[] = [];
  const broadcasts: { json: string; seq: number }[] = [];
  /** Changes outside transactions (non-transactional messages delivered). */
  const standalone: { partition: number; json: string; bytes: number; lsn: bigint }[] = [];
  /** Positions of non-transactional messages passed over. */
  const passed: bigint[] = [];
  const errors: unknown[] = [];
  const sink: ChangeSink = {
    begin: () => {},
    change: (partition, json, bytes, seq) => out.push({ partition, json, bytes, seq }),
    broadcast: (json, _bytes, seq) => broadcasts.push({ json, seq }),
    commit: () => {},
    keepalive: () => {},
    standalone: (partition, json, bytes, lsn) => standalone.push({ partition, json, bytes, lsn }),
    passed: (lsn) => passed.push(lsn),
  };
  const decoder = new Decoder({
    ...(slotName !== undefined ? { slotName } : {}),
    messagePrefixes: new Set(messagePrefixes),
    types: new TypeRegistry(),
    tables: new Map(Object.entries(tables).map(([ref, keyColumns]) => [ref, { schema: ref.split('.')[0]!, table: ref.split('.')[1]!, keyColumns }])),
    partitions: 8,
    sink,
    loadTypes: async () => {},
    pause: () => {},
    resume: () => {},
    onError: (err) => errors.push(err),
  });
  return { decoder, out, broadcasts, standalone, passed, errors };
}

describe('decoder', () => {
  it('reports each change’s exact UTF-8 size, ASCII or not', () => {
    const { decoder, out, errors } = decoderWith({ 'public.café': ['id'] });
    decoder.handle(pgo.begin(0x100n, 7));
    decoder.handle(pgo.relation(1, 'public', 'café', [{ name: 'id', typeOid: PG_OID.int4, key: true }, { name: 'name', typeOid: PG_OID.text }]));
    decoder.handle(pgo.insert(1, ['1', 'plain']));
    decoder.handle(pgo.insert(1, ['2', 'crème brûlée 東京 😀']));
    decoder.handle(pgo.commit(0x100n, 0x180n));
    expect(errors).toEqual([]);
    expect(out).toHaveLength(2);
    for (const c of out) {
      expect(c.bytes).toBe(Buffer.byteLength(c.json));
      expect((changeEvent.parse(JSON.parse(c.json)) as RowChangeEvent).table).toBe('café');
    }
    expect(JSON.parse(out[1]!.json).after.name).toBe('crème brûlée 東京 😀');
  });

  it('fills unchanged TOAST from a FULL old row, lists it otherwise, and never writes a placeholder', () => {
    const { decoder, out } = decoderWith({ 'public.doc': ['id'] });
    decoder.handle(pgo.begin(0x200n, 8));
    decoder.handle(pgo.relation(2, 'public', 'doc', [{ name: 'id', typeOid: PG_OID.int4, key: true }, { name: 'body', typeOid: PG_OID.text }, { name: 'n', typeOid: PG_OID.int4 }]));
    decoder.handle(pgo.update(2, ['1', { unchanged: true }, '5']));
    decoder.handle(pgo.update(2, ['1', { unchanged: true }, '6'], { kind: 'O', values: ['1', 'long text', '5'] }));
    decoder.handle(pgo.update(2, ['3', { unchanged: true }, '6'], { kind: 'K', values: ['1', null, null] }));
    const [listed, filled, removed, rekeyed] = out.map((c) => JSON.parse(c.json));
    expect(listed).toMatchObject({ after: { id: 1, n: 5 }, unchanged: ['body'], before: null });
    expect(listed.after).not.toHaveProperty('body');
    expect(filled).toMatchObject({ after: { id: 1, body: 'long text', n: 6 }, before: { id: 1, body: 'long text', n: 5 } });
    expect(filled).not.toHaveProperty('unchanged');
    // The key change: a delete of the old key, then an insert of the new one carrying what did not change.
    expect(removed).toMatchObject({ op: 'delete', key: { id: 1 }, newKey: { id: 3 }, after: null });
    expect(rekeyed).toMatchObject({ op: 'insert', key: { id: 3 }, oldKey: { id: 1 }, unchanged: ['body'] });
    expect(out.map((c) => c.seq)).toEqual([0, 1, 2, 3]);
  });

  it('stops on a value it cannot read, naming table and column, instead of skipping it', () => {
    const { decoder, out, errors } = decoderWith({ 'public.t': ['id'] });
    decoder.handle(pgo.begin(0x300n, 9));
    decoder.handle(pgo.relation(3, 'public', 't', [{ name: 'id', typeOid: PG_OID.int4, key: true }, { name: 'at', typeOid: PG_OID.timestamptz }]));
    decoder.handle(pgo.insert(3, ['1', 'Tue Jan 02 2024']));
    decoder.handle(pgo.insert(3, ['2', '2024-01-02 00:00:00+00']));
    expect(out).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'PGRELAY_BAD_VALUE' });
    expect(String((errors[0] as Error).message)).toContain('public.t.at');
  });

  it('rejects a message it does not know rather than guessing', () => {
    expect(() => parsePgOutput(Buffer.from([0x5a, 0, 0]))).toThrow(/unknown pgoutput message type 0x5a/);
    expect(() => parsePgOutput(pgo.insert(1, ['1']).subarray(0, 8))).toThrow(/ended early/);
  });
});

describe('decoder: gap notices', () => {
  const notice = (over: Record<string, unknown> = {}) =>
    JSON.stringify({ v: 1, slot: 's1', reason: 'slot-invalidated', afterLsn: '0/100', untilLsn: '0/500', repair: 'bootstrap-requested', tables: ['public.a', 'public.b', 'public.other'], ...over });

  it('turns a notice for this slot into one gap change per configured table, broadcast, in the transaction\'s order', () => {
    const { decoder, broadcasts, out, errors } = decoderWith({ 'public.a': ['id'], 'public.b': ['id'] }, 's1', ['outbox']);
    decoder.handle(pgo.begin(0x600n, 9));
    decoder.handle(pgo.message(0x580n, 'pgrelay.gap', notice(), true));
    decoder.handle(pgo.commit(0x600n, 0x680n));
    expect(errors).toEqual([]);
    expect(out).toEqual([]);
    const events = broadcasts.map((b) => changeEvent.parse(JSON.parse(b.json)) as RowChangeEvent);
    // public.other is not streamed here: no change for it.
    expect(events.map((e) => [e.op, e.table, e.position])).toEqual([
      ['gap', 'a', { commitLsn: '0/600', seq: 0 }],
      ['gap', 'b', { commitLsn: '0/600', seq: 1 }],
    ]);
    expect(events[0]).toMatchObject({ key: null, after: null, before: null, gap: { reason: 'slot-invalidated', afterLsn: '0/100', untilLsn: '0/500', repair: 'bootstrap-requested' } });
  });

  it('ignores a notice for another slot, passes other messages on, and stops on a malformed notice', () => {
    const other = decoderWith({ 'public.a': ['id'] }, 's1');
    other.decoder.handle(pgo.begin(0x600n, 9));
    other.decoder.handle(pgo.message(0x580n, 'pgrelay.gap', notice({ slot: 's2' }), true));
    other.decoder.handle(pgo.message(0x590n, 'pgrelay.heartbeat', '{}', false));
    other.decoder.handle(pgo.commit(0x600n, 0x680n));
    expect(other.broadcasts).toEqual([]);
    expect(other.out).toEqual([]);
    expect(other.passed).toEqual([0x590n]);

    const bad = decoderWith({ 'public.a': ['id'] }, 's1');
    bad.decoder.handle(pgo.begin(0x600n, 9));
    bad.decoder.handle(pgo.message(0x580n, 'pgrelay.gap', notice({ reason: 'oops' }), true));
    expect(bad.broadcasts).toEqual([]);
    expect(bad.errors).toHaveLength(1);
    expect(bad.errors[0]).toMatchObject({ code: 'PGRELAY_BAD_VALUE', message: expect.stringContaining('unknown reason oops') });
  });
});

describe('decoder: a key change', () => {
  it('is a delete in the old key\'s partition and an insert in the new key\'s, at consecutive positions (regression: both halves went to the new key\'s group)', () => {
    const { decoder, out, errors } = decoderWith({ 'public.t': ['id'] });
    decoder.handle(pgo.begin(0x700n, 11));
    decoder.handle(pgo.relation(7, 'public', 't', [{ name: 'id', typeOid: PG_OID.int4, key: true }, { name: 'v', typeOid: PG_OID.text }]));
    // Keys 1 and 2 fall into different partitions of 8 (asserted below, so the test means something).
    decoder.handle(pgo.update(7, ['2', 'x'], { kind: 'O', values: ['1', 'x'] }));
    decoder.handle(pgo.commit(0x700n, 0x780n));
    expect(errors).toEqual([]);
    const [removal, arrival] = out;
    expect(partitionOf('public.t', '{"id":1}', 8)).not.toBe(partitionOf('public.t', '{"id":2}', 8));
    expect(removal?.partition).toBe(partitionOf('public.t', '{"id":1}', 8));
    expect(arrival?.partition).toBe(partitionOf('public.t', '{"id":2}', 8));
    expect(JSON.parse(removal?.json ?? '')).toMatchObject({ op: 'delete', key: { id: 1 }, newKey: { id: 2 }, after: null, before: { id: 1, v: 'x' }, position: { commitLsn: '0/700', seq: 0 } });
    expect(JSON.parse(arrival?.json ?? '')).toMatchObject({ op: 'insert', key: { id: 2 }, oldKey: { id: 1 }, after: { id: 2, v: 'x' }, before: null, position: { commitLsn: '0/700', seq: 1 } });
    for (const c of out) {
      expect(c.bytes).toBe(Buffer.byteLength(c.json));
      changeEvent.parse(JSON.parse(c.json));
    }
  });
});

describe('decoder: logical messages', () => {
  it('delivers a configured prefix: transactional ones inside their transaction, others on their own', () => {
    const { decoder, out, standalone, passed, errors } = decoderWith({ 'public.t': ['id'] }, undefined, ['outbox']);
    decoder.handle(pgo.begin(0x800n, 12));
    decoder.handle(pgo.relation(8, 'public', 't', [{ name: 'id', typeOid: PG_OID.int4, key: true }]));
    decoder.handle(pgo.insert(8, ['1']));
    decoder.handle(pgo.message(0x7f0n, 'outbox', '{"order":1}', true));
    decoder.handle(pgo.message(0x7f8n, 'other', 'not delivered', true));
    decoder.handle(pgo.commit(0x800n, 0x880n));
    decoder.handle(pgo.message(0x900n, 'outbox', Buffer.from([0xde, 0xad, 0xbe, 0xef]), false));
    decoder.handle(pgo.message(0x980n, 'pgrelay.heartbeat', '{}', false));
    expect(errors).toEqual([]);
    const inTx = out.map((c) => JSON.parse(c.json) as Record<string, unknown>).filter((c) => c.op === 'message');
    expect(inTx).toEqual([
      {
        v: 1,
        op: 'message',
        message: { prefix: 'outbox', content: '{"order":1}', encoding: 'utf8', transactional: true },
        position: { commitLsn: '0/800', seq: 1 },
        tx: expect.objectContaining({ xid: 12, commitLsn: '0/800' }),
      },
    ]);
    expect(out.find((c) => c.json.includes('"op":"message"'))?.partition).toBe(messagePartition('outbox', 8));
    expect(standalone).toHaveLength(1);
    const alone = changeEvent.parse(JSON.parse(standalone[0]?.json ?? '')) as MessageChangeEvent;
    expect(alone).toEqual({ v: 1, op: 'message', message: { prefix: 'outbox', content: '3q2+7w==', encoding: 'base64', transactional: false }, position: { commitLsn: '0/900', seq: 0 }, tx: null });
    expect(standalone[0]).toMatchObject({ partition: messagePartition('outbox', 8), lsn: 0x900n, bytes: Buffer.byteLength(standalone[0]?.json ?? '') });
    // Undelivered non-transactional messages are positions the slot may confirm.
    expect(passed).toEqual([0x980n]);
  });
});
