/** Builds pgoutput protocol 1 messages byte by byte, for decoder unit tests. */
export class PgOutputBuilder {
  private parts: Buffer[] = [];
  byte(v: number): this {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  int16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  int32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  int64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    this.parts.push(b);
    return this;
  }
  cstring(s: string): this {
    this.parts.push(Buffer.from(`${s}\0`, 'utf8'));
    return this;
  }
  /** A tuple: strings are text values, null is SQL NULL, 'u' marks unchanged TOAST. */
  tuple(values: (string | null | { unchanged: true })[]): this {
    this.int16(values.length);
    for (const v of values) {
      if (v === null) this.byte(0x6e);
      else if (typeof v === 'object') this.byte(0x75);
      else {
        const bytes = Buffer.from(v, 'utf8');
        this.byte(0x74).int32(bytes.length);
        this.parts.push(bytes);
      }
    }
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export const pgo = {
  begin: (finalLsn: bigint, xid: number) => new PgOutputBuilder().byte(0x42).int64(finalLsn).int64(0n).int32(xid).build(),
  commit: (commitLsn: bigint, endLsn: bigint) => new PgOutputBuilder().byte(0x43).byte(0).int64(commitLsn).int64(endLsn).int64(0n).build(),
  relation: (id: number, schema: string, table: string, columns: { name: string; typeOid: number; key?: boolean }[]) => {
    const b = new PgOutputBuilder().byte(0x52).int32(id).cstring(schema).cstring(table).byte(0x64).int16(columns.length);
    for (const c of columns) b.byte(c.key ? 1 : 0).cstring(c.name).int32(c.typeOid).int32(-1);
    return b.build();
  },
  insert: (id: number, values: (string | null)[]) => new PgOutputBuilder().byte(0x49).int32(id).byte(0x4e).tuple(values).build(),
  /** A logical decoding message (pg_logical_emit_message). */
  message: (lsn: bigint, prefix: string, content: string | Buffer, transactional: boolean) => {
    const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    const b = new PgOutputBuilder().byte(0x4d).byte(transactional ? 1 : 0).int64(lsn).cstring(prefix).int32(bytes.length);
    return Buffer.concat([b.build(), bytes]);
  },
  update: (id: number, values: (string | null | { unchanged: true })[], old?: { kind: 'K' | 'O'; values: (string | null)[] }) => {
    const b = new PgOutputBuilder().byte(0x55).int32(id);
    if (old) b.byte(old.kind.charCodeAt(0)).tuple(old.values);
    return b.byte(0x4e).tuple(values).build();
  },
};
