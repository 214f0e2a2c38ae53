/** What pgrelay users import: `import { nodeHandler, type GraphNodeEvent } from 'pgrelay'`. */
export { nodeHandler, type NodeHandlers, type NodeHandlerOptions, type NodeEventCallback } from './node-handler.ts';
export type { GraphNodeEvent, NodeEvent, MessageEvent, GraphNodeEventRef, ChangeEvent, ChangeBatch, PayloadRef } from '#core/change-event.ts';
