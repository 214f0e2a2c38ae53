/**
 * What a replication session offers the bootstrap: its view of the stream, the decoder's load
 * stamp, a way to emit changes at a position outside any transaction (their checkpoint marker
 * closes at that position; `onAccepted` runs once SQS took them all), and the backlog the load
 * yields to. `ended` resolves when the session is gone: what waited for one of its marks is
 * done again in the next session.
 */
import type { StreamView } from './stream-view.ts';

/** Hands one change (its JSON and UTF-8 length) to the batches, at the emitted position's next seq. */
export type EmitChange = (partition: number, json: string, bytes: number) => void;

export interface BootstrapHost {
  view: StreamView;
  stampLoad(ref: string, loadId: string | undefined): void;
  /**
   * Changes at `lsn`, outside any transaction, seq 0, 1, …: `produce` writes each into the
   * batches as it makes it (none is held for the rest) and returns how many it emitted.
   */
  emitAt(lsn: bigint, produce: (emit: EmitChange) => number, onAccepted: () => void): void;
  /** One change sent to every partition at `lsn` (seq 0): the load's started and completed marks. */
  broadcastAt(lsn: bigint, json: string, onAccepted: () => void): void;
  backlog(): { inFlightBytes: number; maxInFlightBytes: number; lagBytes: number };
  ended: Promise<void>;
}
