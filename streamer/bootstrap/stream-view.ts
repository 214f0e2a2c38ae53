/**
 * The bootstrap's view of one replication session's stream (the decoder's StreamWatcher): the
 * chunk windows open on a table, the transactions the stream carried lately, and the marks
 * the loaders wait for.
 *
 * A window records, from the moment it opens until its chunk's mark arrives, the key of every
 * change of its table and the transaction that made it. Closing it against the chunk's snapshot
 * says which of the chunk's rows are stale (a change the snapshot did not see touched them).
 * The commits ring answers the question a window cannot: was a transaction the snapshot did
 * not see already streamed *before* the window opened (a commit decoded before it is visible,
 * as with a synchronous standby that has not answered)? Then the chunk cannot be trusted.
 */
import { DecodeError } from '#core/errors.ts';
import type { StreamWatcher } from '../decoder.ts';
import { parseMark, type BootstrapMark } from './marker.ts';
import { visibleTo, type ChunkSnapshot } from './snapshot.ts';

/** Commits remembered for the before-the-window check: a commit invisible for longer than this many later commits goes unnoticed. */
export const COMMITS_REMEMBERED = 65_536;

export class ChunkWindow {
  /** Key JSON → whether a recorded change left a TOASTed column out; with the xids that made them. */
  private readonly keys = new Map<string, { xids: number[]; unchanged: boolean }>();
  private readonly truncatedBy: number[] = [];
  closed = false;

  constructor(
    readonly ref: string,
    /** Commits the stream had carried when the window opened. */
    readonly openedAt: number,
  ) {}

  record(xid: number, keyJson: string, unchanged: boolean): void {
    const seen = this.keys.get(keyJson);
    if (seen === undefined) this.keys.set(keyJson, { xids: [xid], unchanged });
    else {
      if (!seen.xids.includes(xid)) seen.xids.push(xid);
      seen.unchanged ||= unchanged;
    }
  }

  truncated(xid: number): void {
    this.truncatedBy.push(xid);
  }

  /**
   * What the snapshot makes of the recorded changes: `stale` keys (a change it did not see touched
   * them: the stream carries a newer version), of which `reread` are those where such a change left
   * a TOASTed column out (the consumer would lack its value), and `truncated` when a TRUNCATE it
   * did not see came through (every row of the chunk is gone).
   */
  verdict(s: ChunkSnapshot): { stale: Set<string>; reread: Set<string>; truncated: boolean } {
    const stale = new Set<string>();
    const reread = new Set<string>();
    for (const [key, seen] of this.keys) {
      let newer = false;
      let toast = false;
      for (const xid of seen.xids) if (!visibleTo(s, xid)) newer = true;
      if (newer) {
        stale.add(key);
        toast = seen.unchanged;
        if (toast) reread.add(key);
      }
    }
    return { stale, reread, truncated: this.truncatedBy.some((xid) => !visibleTo(s, xid)) };
  }
}

export class StreamView implements StreamWatcher {
  private commits = 0;
  private readonly commitAt = new Map<number, number>();
  private readonly ring = new Uint32Array(COMMITS_REMEMBERED);
  private readonly windows = new Map<string, Set<ChunkWindow>>();
  private readonly awaiting = new Map<string, (lsn: bigint, mark: BootstrapMark) => void>();
  private readonly truncateListeners = new Set<(ref: string) => void>();

  constructor(
    private readonly slotName: string,
    private readonly decoder: { watch(ref: string, on: boolean): void },
  ) {}

  /** Starts recording `ref`'s changes, now, in stream order. */
  open(ref: string): ChunkWindow {
    const w = new ChunkWindow(ref, this.commits);
    let set = this.windows.get(ref);
    if (set === undefined) this.windows.set(ref, (set = new Set()));
    set.add(w);
    this.decoder.watch(ref, true);
    return w;
  }

  close(w: ChunkWindow): void {
    if (w.closed) return;
    w.closed = true;
    const set = this.windows.get(w.ref);
    set?.delete(w);
    if (set?.size === 0) this.windows.delete(w.ref);
    this.decoder.watch(w.ref, false);
  }

  /** Whether a transaction of `xids32` was carried by the stream before `w` opened. */
  streamedBefore(xids32: readonly number[], w: ChunkWindow): boolean {
    for (const xid of xids32) {
      const at = this.commitAt.get(xid);
      if (at !== undefined && at <= w.openedAt) return true;
    }
    return false;
  }

  /** Calls `handler` when the mark `key` (markKey) reaches the stream, once. */
  expect(key: string, handler: (lsn: bigint, mark: BootstrapMark) => void): void {
    this.awaiting.set(key, handler);
  }

  forget(key: string): void {
    this.awaiting.delete(key);
  }

  onTruncate(listener: (ref: string) => void): () => void {
    this.truncateListeners.add(listener);
    return () => this.truncateListeners.delete(listener);
  }

  // --- StreamWatcher (called by the decoder, in stream order) ---

  change(ref: string, xid: number, keyJson: string, unchanged: boolean): void {
    const set = this.windows.get(ref);
    if (set !== undefined) for (const w of set) w.record(xid, keyJson, unchanged);
  }

  truncate(ref: string, xid: number): void {
    const set = this.windows.get(ref);
    if (set !== undefined) for (const w of set) w.truncated(xid);
    for (const l of this.truncateListeners) l(ref);
  }

  committed(xid: number): void {
    const n = ++this.commits;
    const slot = n % COMMITS_REMEMBERED;
    if (n > COMMITS_REMEMBERED) {
      const evicted = this.ring[slot] as number;
      if (this.commitAt.get(evicted) === n - COMMITS_REMEMBERED) this.commitAt.delete(evicted);
    }
    this.ring[slot] = xid;
    this.commitAt.set(xid, n);
  }

  marker(content: Buffer, lsn: bigint): boolean {
    let mark: BootstrapMark;
    try {
      mark = parseMark(content);
    } catch (err) {
      // pgrelay's own prefix with another shape: skipping it could lose a chunk, so stop as for any undecodable message.
      throw new DecodeError('PROTOCOL', (err as Error).message, { cause: err });
    }
    if (mark.slot !== this.slotName) return false;
    const key = markKey(mark);
    const handler = this.awaiting.get(key);
    if (handler === undefined) return false; // a mark of an earlier session, met again after a restart
    this.awaiting.delete(key);
    handler(lsn, mark);
    return true;
  }
}

export function markKey(mark: Pick<BootstrapMark, 'load' | 'kind'> & { chunk?: number }): string {
  return mark.kind === 'chunk' ? `${mark.load}#${mark.chunk ?? -1}` : `${mark.load}:${mark.kind}`;
}
