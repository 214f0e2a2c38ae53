/**
 * WAL positions. PostgreSQL prints an LSN as two hex halves ("16/B374D848"); the
 * replication protocol carries it as an unsigned 64-bit integer. We keep bigint inside
 * and the canonical text form (upper-case hex, no padding) on the wire.
 */
export type Lsn = bigint;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): Lsn {
  const m = LSN_TEXT.exec(text);
  if (!m) throw new RangeError(`not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Read a 64-bit LSN from a protocol buffer without allocating a bigint twice. */
export function readLsn(buf: Buffer, offset: number): Lsn {
  return buf.readBigUInt64BE(offset);
}

/**
 * A change's place in the stream: the LSN of its transaction's commit record and its
 * index within that transaction. Unique and monotonic across the slot's life.
 */
export interface Position {
  commitLsn: string;
  seq: number;
}

/** Fixed-width text that sorts like the position: 16 hex digits, ':', 8 hex digits. */
export function positionKey(commitLsn: Lsn, seq: number): string {
  return `${commitLsn.toString(16).toUpperCase().padStart(16, '0')}:${seq.toString(16).toUpperCase().padStart(8, '0')}`;
}

export function comparePositions(a: Position, b: Position): number {
  const la = parseLsn(a.commitLsn);
  const lb = parseLsn(b.commitLsn);
  if (la !== lb) return la < lb ? -1 : 1;
  return a.seq - b.seq;
}

/** PostgreSQL's epoch (2000-01-01) in microseconds since the Unix epoch. */
export const PG_EPOCH_MICROS = 946_684_800_000_000n;

/** A protocol timestamp (µs since 2000-01-01) as ISO-8601 with six fractional digits. */
export function pgMicrosToIso(micros: bigint): string {
  const unixMicros = micros + PG_EPOCH_MICROS;
  const ms = unixMicros / 1000n;
  let rest = unixMicros % 1000n;
  let millis = ms;
  if (rest < 0n) {
    rest += 1000n;
    millis -= 1n;
  }
  const iso = new Date(Number(millis)).toISOString(); // 2024-01-01T00:00:00.123Z
  return `${iso.slice(0, 23)}${rest.toString().padStart(3, '0')}Z`;
}
