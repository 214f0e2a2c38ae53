import { describe, expect, it } from 'vitest';
import { CopyRows, quoteLiteral, unescapeCopy } from '#streamer/bootstrap/copy-rows.ts';

/** COPY text of rows, as PostgreSQL writes it. */
const COPY_TEXT = [
  '1\tplain\t\\N\t',
  '2\ttab\\there\\nnewline\\\\slash\t\\\\N\tüñï€😀',
  '3\t\\N\t\\b\\f\\r\\v\t\\N',
].map((l) => `${l}\n`).join('');

describe('CopyRows', () => {
  it('splits rows into column texts, NULL apart from the text \\N, escapes undone, whatever the pieces the bytes arrive in', () => {
    const bytes = Buffer.from(COPY_TEXT, 'utf8');
    for (const piece of [1, 2, 3, 7, bytes.length]) {
      const rows = new CopyRows();
      for (let at = 0; at < bytes.length; at += piece) rows.push(bytes.subarray(at, at + piece));
      expect(rows.count).toBe(3);
      expect(rows.bytes).toBe(bytes.length);
      expect(rows.values(0, 4)).toEqual(['1', 'plain', null, '']);
      expect(rows.values(1, 4)).toEqual(['2', 'tab\there\nnewline\\slash', '\\N', 'üñï€😀']);
      expect(rows.values(2, 4)).toEqual(['3', null, '\b\f\r\v', null]);
      expect(rows.pick(1, 4, [3, 0])).toEqual(['üñï€😀', '2']);
    }
  });

  it('holds many rows in one growing buffer', () => {
    const rows = new CopyRows();
    for (let i = 0; i < 50_000; i++) rows.push(Buffer.from(`${i}\tvalue ${i}\n`));
    expect(rows.count).toBe(50_000);
    expect(rows.values(0, 2)).toEqual(['0', 'value 0']);
    expect(rows.values(49_999, 2)).toEqual(['49999', 'value 49999']);
  });

  it('after a release, the rows are gone and the next chunks read right in the reused buffers', () => {
    // Long rows first, so that a reused buffer holds their bytes past where shorter rows end.
    const long = new CopyRows();
    for (let i = 0; i < 20_000; i++) long.push(Buffer.from(`${i}\t${'x'.repeat(100)}\t\\N\n`));
    expect(long.count).toBe(20_000);
    long.release();
    expect(long.count).toBe(0);
    expect(long.bytes).toBe(0);
    for (let round = 0; round < 3; round++) {
      const rows = new CopyRows();
      for (let i = 0; i < 1_000; i++) rows.push(Buffer.from(`${round}-${i}\tshort\t\\N\n`));
      expect(rows.count).toBe(1_000);
      expect(rows.values(0, 3)).toEqual([`${round}-0`, 'short', null]);
      expect(rows.values(999, 3)).toEqual([`${round}-999`, 'short', null]);
      rows.release();
    }
  });

  it('unescapes and quotes literals', () => {
    expect(unescapeCopy('a\\tb\\\\c\\x')).toBe('a\tb\\cx');
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(quoteLiteral('a\\b')).toBe("E'a\\\\b'");
  });
});
