import { describe, expect, it } from 'vitest';
import { RawJson, parseLossless, stringifyLossless } from '#core/values/lossless-json.ts';

describe('parseLossless', () => {
  it('round-trips a change batch byte for byte, json column values and big numbers included', () => {
    const text =
      '{"v":1,"partition":0,"changes":[{"v":1,"op":"update","schema":"public","table":"t","key":{"id":"9223372036854775807"},' +
      '"after":{"id":"9223372036854775807","doc":{"b":1,"1":2,"b":3,"n":12345678901234567890},"arr":[1,{"x":0.10000000000000000001}],"f":1.5,"big":123456789012345678,"s":"a\\"b","nul":null},' +
      '"before":null,"position":{"commitLsn":"0/16B3748","seq":0},"tx":{"xid":7,"commitLsn":"0/16B3748","commitTime":"2024-01-01T00:00:00.000000Z"}}]}';
    const parsed = parseLossless(text) as { changes: { after: Record<string, unknown> }[] };
    expect(stringifyLossless(parsed)).toBe(text);
    const after = parsed.changes[0]!.after;
    expect(after.doc).toBeInstanceOf(RawJson); // duplicate keys and key order kept
    expect(after.big).toEqual(new RawJson('123456789012345678'));
    expect(after.f).toBe(1.5);
    expect(after.s).toBe('a"b');
  });

  it('parses like JSON.parse outside rows', () => {
    const text = '{"a":[1,2,{"b":"c"}],"d":{"e":true,"f":null},"g":-0.5}';
    expect(parseLossless(text)).toEqual(JSON.parse(text));
  });

  it('rejects malformed input with a DecodeError', () => {
    for (const bad of ['{"a":', '{"a" 1}', '[1,2', '{"after":{"x":[1,2}}', 'nope', '{"a":1}x']) {
      expect(() => parseLossless(bad), bad).toThrow(/invalid JSON/);
    }
  });
});
