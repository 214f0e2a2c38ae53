/**
 * The sweep: after a complete bootstrap load of a label, remove the nodes the load did not
 * touch, the rows deleted while their changes were lost (a lost slot) or never streamed.
 *
 * Every snapshot row of a load, and every live change of its table while it runs, carries the
 * load's id as `load`. A consumer that stores with each node the `load` (and `position`) of
 * the last event that wrote it (`sweepMark(e)`) can, at `label.snapshot.completed` with
 * outcome `complete`, delete the label's nodes whose stored load is another one: their rows
 * no longer exist.
 *
 * ```ts
 * async onUpdated(e) { await store.put(e.node.id!, { properties: e.node.properties, ...sweepMark(e) }); },
 * async onSnapshotCompleted(e) {
 *   const sweep = snapshotSweep(e);
 *   if (sweep) for (const n of await store.nodesOf(e.node.label)) if (sweep.shouldDelete(n)) await store.delete(n.id);
 * },
 * ```
 *
 * Only from the nodes queue: there the completion arrives once per message group, after every
 * event of that group's nodes that came before it in the stream (each group carries one changes
 * partition, and the completion is in every partition at its place), and each copy sweeps its
 * group's nodes only: store `group` with each node (`sweepMark` does; nodeHandler sets it from
 * the message group). EventBridge does not order events, so an event from it (no `group`)
 * never sweeps. A node written after the completion (its stored `position` is later) is kept.
 */
import type { NodeEvent } from '#core/change-event.ts';
import { parseLsn, type Position } from '#core/position.ts';

/** What a consumer stores with each node for the sweep (spread into its record). */
export interface SweepMark {
  /** The bootstrap load under way when the node was last written (`event.load`), else null. */
  load: string | null;
  /** The nodes-queue group it travels in (`event.group`), else null (from EventBridge: never swept). */
  group: number | null;
  /** The position of the event that last wrote it. */
  position: Position;
}

/** The sweep mark of an event that writes a node (node.inserted, node.updated, snapshot or live). */
export function sweepMark(event: NodeEvent): SweepMark {
  return { load: event.load ?? null, group: event.group ?? null, position: event.position };
}

/** A stored node, as the sweep needs it: its id and its stored mark. */
export interface SweepCandidate {
  id: string;
  /** The stored `load` (absent or null: written by no load). */
  load?: string | null;
  /** The stored `group`; a node whose group is not known is never swept. */
  group?: number | null;
  /** The stored `position`, when kept: a node written after the load completed is never swept. */
  position?: Position | null;
}

export interface SnapshotSweep {
  /** The completed load. */
  load: string;
  /** The label swept. */
  label: string;
  /** The nodes-queue group whose nodes this copy speaks for. */
  group: number;
  /**
   * True when the node must be deleted: it is of this label and this copy's group, the load
   * did not write it, and (when its position is known) no event after the completion did.
   */
  shouldDelete(node: SweepCandidate): boolean;
}

/**
 * The sweep of a `label.snapshot.completed` copy from the nodes queue; undefined when there is
 * nothing to sweep: another event type, an outcome other than `complete` (the load stopped
 * early: untouched nodes may still exist), or no `group` (the event came from EventBridge).
 */
export function snapshotSweep(event: NodeEvent): SnapshotSweep | undefined {
  const load = event.bootstrap;
  const group = event.group;
  if (event.type !== 'label.snapshot.completed' || load?.outcome !== 'complete' || group === undefined) return undefined;
  const label = event.node.label;
  const prefix = `${label}:`;
  const atLsn = parseLsn(event.position.commitLsn);
  const atSeq = event.position.seq;
  // A node last written after the completion (a live change, from a changes partition that ran
  // ahead of the one the completion came through) exists, or its deletion will arrive.
  const writtenAfter = (p: Position): boolean => {
    const lsn = parseLsn(p.commitLsn);
    return lsn > atLsn || (lsn === atLsn && p.seq > atSeq);
  };
  return {
    load: load.id,
    label,
    group,
    shouldDelete(node) {
      if (!node.id.startsWith(prefix) || node.group !== group) return false;
      if ((node.load ?? null) === load.id) return false;
      return node.position == null || !writtenAfter(node.position);
    },
  };
}
