import { describe, expect, it } from 'vitest';
import { changeEvent } from '#core/change-event.ts';
import { PG_OID, TypeRegistry } from '#core/values.ts';
import { Decoder, type ChangeSink } from '#streamer/decoder.ts';
import { parsePgOutput } from '#streamer/pgoutput.ts';
import { pgo } from '#test/helpers/pgoutput-builder.ts';

function decoderWith(tables: Record<string, string[]>) {
  const out: { partition: number; json: string; bytes: number; seq: number }[] = [];
  const errors: unknown[] = [];
  const sink: ChangeSink = {
    begin: () => {},
    change: (partition, json, bytes, seq) => out.push({ partition, json, bytes, seq }),
    broadcast: () => {},
    commit: () => {},
    keepalive: () => {},
    message: () => {},
  };
  const decoder = new Decoder({
    types: new TypeRegistry(),
    tables: new Map(Object.entries(tables).map(([ref, keyColumns]) => [ref, { schema: ref.split('.')[0]!, table: ref.split('.')[1]!, keyColumns }])),
    partitions: 8,
    sink,
    loadTypes: async () => {},
    pause: () => {},
    resume: () => {},
    onError: (err) => errors.push(err),
  });
  return { decoder, out, errors };
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
      expect(changeEvent.parse(JSON.parse(c.json)).table).toBe('café');
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
    const [listed, filled, rekeyed] = out.map((c) => JSON.parse(c.json));
    expect(listed).toMatchObject({ after: { id: 1, n: 5 }, unchanged: ['body'], before: null });
    expect(listed.after).not.toHaveProperty('body');
    expect(filled).toMatchObject({ after: { id: 1, body: 'long text', n: 6 }, before: { id: 1, body: 'long text', n: 5 } });
    expect(filled).not.toHaveProperty('unchanged');
    expect(rekeyed).toMatchObject({ key: { id: 3 }, oldKey: { id: 1 }, unchanged: ['body'] });
    expect(out.map((c) => c.seq)).toEqual([0, 1, 2]);
  });

  it('stops on a value it cannot read, naming table and column, instead of skipping it', () => {
    const { decoder, out, errors } = decoderWith({ 'public.t': ['id'] });
    decoder.handle(pgo.begin(0x300n, 9));
    decoder.handle(pgo.relation(3, 'public', 't', [{ name: 'id', typeOid: PG_OID.int4, key: true }, { name: 'at', typeOid: PG_OID.timestamptz }]));
    decoder.handle(pgo.insert(3, ['1', 'Tue Jan 02 2024']));
    decoder.handle(pgo.insert(3, ['2', '2024-01-02 00:00:00+00']));
    expect(out).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'BAD_VALUE' });
    expect(String((errors[0] as Error).message)).toContain('public.t.at');
  });

  it('rejects a message it does not know rather than guessing', () => {
    expect(() => parsePgOutput(Buffer.from([0x5a, 0, 0]))).toThrow(/unknown pgoutput message type 0x5a/);
    expect(() => parsePgOutput(pgo.insert(1, ['1']).subarray(0, 8))).toThrow(/ended early/);
  });
});
