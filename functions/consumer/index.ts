/** What pgrelay users import: `import { nodeHandler, type GraphNodeEvent } from 'pgrelay'`. */
export { nodeHandler, type NodeHandlers, type NodeHandlerOptions, type NodeEventCallback } from './node-handler.ts';
export { snapshotSweep, sweepMark, type SnapshotSweep, type SweepCandidate, type SweepMark } from './snapshot-sweep.ts';
export type { GraphNodeEvent, NodeEvent, MessageEvent, GraphNodeEventRef, ChangeEvent, ChangeBatch, PayloadRef } from '#core/change-event.ts';
