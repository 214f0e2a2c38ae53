/**
 * `nodeHandler`: write a Lambda that reacts to pgrelay's graph node events, from the nodes
 * queue (SQS FIFO event source) or from an EventBridge rule, with one typed callback per
 * event type. Claim-checked events (too large for their channel) are fetched transparently.
 *
 * ```ts
 * import { nodeHandler } from 'pgrelay';
 *
 * export const handler = nodeHandler({
 *   async onInserted(e) { await index.put(e.node.id, e.node.properties); },
 *   async onUpdated(e) { if (e.changed?.includes('status')) await notify(e.node.id, e.node.properties.status); },
 *   async onDeleted(e) { await index.delete(e.node.id); },
 *   async onTruncated(e) { await index.clear(e.node.label); },
 * });
 * ```
 *
 * From SQS it returns `batchItemFailures` (turn on ReportBatchItemFailures): a record whose
 * callback threw is retried, and so is every later record of its message group in the batch,
 * so each node's events are still applied in order. From EventBridge a throw fails the
 * invocation, and Lambda's retry and on-failure destination take over.
 * Events within one SQS message are applied in order; a retried message is applied again
 * from its first event, so callbacks should be idempotent (at-least-once delivery).
 * A truncate reaches the nodes queue once per message group: `onTruncated` runs once per copy
 * (so do onGap, onSnapshotStarted and onSnapshotCompleted), each speaking for its group's nodes.
 * From the nodes queue every event handed over carries `group`, the message group it came in.
 * To remove, after a complete bootstrap, the nodes whose rows are gone: store `sweepMark(e)`
 * with each node you write and call `snapshotSweep(e)` in onSnapshotCompleted (snapshot-sweep.ts).
 * A key change is an `onDeleted` of the old id and an `onInserted` of the new one, each ordered
 * with its own node's events, both with `keyChange: {oldId, newId}`.
 */
import { graphNodeEventRef, type GraphNodeEvent, type MessageEvent, type NodeEvent, type PayloadRef } from '#core/change-event.ts';
import { byMessageGroup, type EventBridgeEvent, type SqsBatchResponse, type SqsEvent, type SqsRecord } from '#shared/lambda-types.ts';
import { PgRelayError } from '#core/errors.ts';

export type NodeEventCallback<E extends GraphNodeEvent = NodeEvent> = (event: E) => void | Promise<void>;

export interface NodeHandlers {
  onInserted?: NodeEventCallback;
  onUpdated?: NodeEventCallback;
  onDeleted?: NodeEventCallback;
  onTruncated?: NodeEventCallback;
  /** Changes of a label were lost (slot lost, or the table left the publication); once per copy, like onTruncated. */
  onGap?: NodeEventCallback;
  /** A bootstrap load of a label began (`bootstrap`: id, reason); once per copy, like onTruncated. */
  onSnapshotStarted?: NodeEventCallback;
  /**
   * A bootstrap load of a label ended (`bootstrap.outcome`, `rows`); once per copy. With outcome
   * `complete`, `snapshotSweep(e)` says which of the copy's group's nodes no longer exist.
   */
  onSnapshotCompleted?: NodeEventCallback;
  /** A logical message of a configured prefix (`pg_logical_emit_message`); in order per prefix on the nodes queue. */
  onMessage?: NodeEventCallback<MessageEvent>;
}

export interface NodeHandlerOptions {
  /**
   * Reads claim-checked payloads. By default an S3 reader built on first use (region from
   * AWS_REGION); pass one to use another client or endpoint.
   */
  payloads?: { get(ref: PayloadRef): Promise<string> };
}

type Handler = {
  (event: SqsEvent): Promise<SqsBatchResponse>;
  (event: EventBridgeEvent): Promise<void>;
};

function isSqsEvent(e: unknown): e is SqsEvent {
  return typeof e === 'object' && e !== null && Array.isArray((e as SqsEvent).Records);
}

export function nodeHandler(handlers: NodeHandlers, options: NodeHandlerOptions = {}): Handler {
  let payloads = options.payloads;
  const resolve = async (raw: unknown): Promise<GraphNodeEvent> => {
    if (typeof raw === 'object' && raw !== null && 'payloadRef' in raw) {
      const ref = graphNodeEventRef.parse(raw);
      payloads ??= await defaultPayloadReader();
      const event = JSON.parse(await payloads.get(ref.payloadRef)) as GraphNodeEvent;
      return event;
    }
    return raw as GraphNodeEvent;
  };
  const dispatch = async (event: GraphNodeEvent): Promise<void> => {
    switch (event.type) {
      case 'node.inserted':
        return handlers.onInserted?.(event);
      case 'node.updated':
        return handlers.onUpdated?.(event);
      case 'node.deleted':
        return handlers.onDeleted?.(event);
      case 'label.truncated':
        return handlers.onTruncated?.(event);
      case 'label.gap':
        return handlers.onGap?.(event);
      case 'label.snapshot.started':
        return handlers.onSnapshotStarted?.(event);
      case 'label.snapshot.completed':
        return handlers.onSnapshotCompleted?.(event);
      case 'message.emitted':
        return handlers.onMessage?.(event);
    }
  };
  const handleRecord = async (record: SqsRecord): Promise<void> => {
    const body = JSON.parse(record.body) as { v?: number; events?: unknown[] };
    if (body.v !== 1 || !Array.isArray(body.events)) throw new PgRelayError('NOT_A_NODES_MESSAGE', `message ${record.messageId} is not a pgrelay nodes message`);
    const group = groupOf(record);
    for (const raw of body.events) {
      const event = await resolve(raw);
      if (group !== undefined && event.type !== 'message.emitted') event.group = group;
      await dispatch(event);
    }
  };
  const handler = async (event: SqsEvent | EventBridgeEvent): Promise<SqsBatchResponse | void> => {
    if (!isSqsEvent(event)) {
      await dispatch(await resolve(event.detail));
      return;
    }
    const failed: string[] = [];
    await Promise.all(
      byMessageGroup(event.Records).map(async (list) => {
        for (let i = 0; i < list.length; i++) {
          try {
            await handleRecord(list[i] as SqsRecord);
          } catch (err) {
            console.error(JSON.stringify({ level: 'error', msg: 'node event handler failed; the record will be retried', messageId: (list[i] as SqsRecord).messageId, error: err instanceof Error ? err.message : String(err) }));
            for (const r of list.slice(i)) failed.push(r.messageId);
            return;
          }
        }
      }),
    );
    return { batchItemFailures: failed.map((itemIdentifier) => ({ itemIdentifier })) };
  };
  return handler as Handler;
}

/** The nodes-queue group index of a record (`n3` → 3); undefined for a group pgrelay did not name. */
function groupOf(record: SqsRecord): number | undefined {
  const m = /^n(\d+)$/.exec(record.attributes.MessageGroupId ?? '');
  return m ? Number(m[1]) : undefined;
}

async function defaultPayloadReader(): Promise<{ get(ref: PayloadRef): Promise<string> }> {
  // Reads go to the bucket the reference names; bucket and prefix here only matter for writes.
  const { s3PayloadStore } = await import('#shared/s3-payload-store.ts');
  return s3PayloadStore({ bucket: '', prefix: '', region: process.env.AWS_REGION ?? 'us-east-1' });
}
