/**
 * A chunk's snapshot, as `pg_current_snapshot()` describes it (`xmin:xmax:xip,…`, 64-bit
 * transaction ids with their epoch), and which transactions it could see. The stream reports
 * 32-bit xids (pgoutput's Begin); they are widened against the snapshot, which is recent.
 */
import { PgRelayError } from '#core/errors.ts';

export interface ChunkSnapshot {
  xmin: number;
  xmax: number;
  /** In progress when the snapshot was taken: invisible to it, whenever they commit. */
  xip: ReadonlySet<number>;
  /** The same, as the 32-bit xids the stream reports. */
  xip32: readonly number[];
}

const TWO_32 = 2 ** 32;
const TWO_31 = 2 ** 31;

export function parseSnapshot(text: string): ChunkSnapshot {
  const m = /^(\d+):(\d+):([\d,]*)$/.exec(text.trim());
  if (!m) throw new PgRelayError('BAD_SNAPSHOT', `not a snapshot: ${text}`);
  const xip = (m[3] as string) === '' ? [] : (m[3] as string).split(',').map(Number);
  return { xmin: Number(m[1]), xmax: Number(m[2]), xip: new Set(xip), xip32: xip.map((x) => x % TWO_32) };
}

/** The 64-bit id of a 32-bit xid near `reference` (within 2^31 of it, as every live xid is). */
export function widenXid(xid32: number, reference: number): number {
  let x = Math.floor(reference / TWO_32) * TWO_32 + xid32;
  if (x > reference + TWO_31) x -= TWO_32;
  else if (x < reference - TWO_31) x += TWO_32;
  return x;
}

/** Whether snapshot `s` sees the changes of the transaction with stream xid `xid32`. */
export function visibleTo(s: ChunkSnapshot, xid32: number): boolean {
  const x = widenXid(xid32, s.xmax);
  return x < s.xmax && !s.xip.has(x);
}
