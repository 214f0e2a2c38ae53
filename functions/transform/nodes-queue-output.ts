/**
 * Node events onto the SQS FIFO nodes queue. A node always maps to the same message group
 * (`n{partition}`, by the hash of its id), so consumers see each node's events in order.
 * Events of one group are packed into messages of up to 256 KiB (`{"v":1,"events":[…]}`);
 * each message's deduplication id comes from the positions it carries, so re-sending the same
 * record after a failure is dropped by SQS within its five-minute window.
 *
 * An event with no node (label.truncated, label.gap, label.snapshot.*) is copied to every
 * group, each copy stamped `group: {index, count}` (EventBridge gets the event without it).
 *
 * Within a call at most one message per group is in flight, and a group stops at its first
 * failed message (later ones are not sent): the caller reports the source records failed
 * and the retry resends them in order.
 */
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { GraphNodeEvent, NodeEvent } from '#core/change-event.ts';
import { SQS_MAX_MESSAGE_BYTES } from '#core/config.ts';
import { backoffDelay } from '#core/backoff.ts';
import { packInOrder } from '#core/pack.ts';
import { nodesPartition } from '#core/partition.ts';
import { parseLsn, positionKey } from '#core/position.ts';

export const NODES_MESSAGE_MAX_BYTES = 256 * 1024;
const ENVELOPE = '{"v":1,"events":[]}'.length;

export interface NodeEventOut {
  event: GraphNodeEvent;
  /** The event's JSON (or, for one too large for a message, its claim-check ref's JSON). */
  json: string;
  /** UTF-8 bytes of `json`, measured once. */
  bytes: number;
}

export interface NodesMessage {
  group: string;
  body: string;
  bytes: number;
  deduplicationId: string;
  /** The events it carries, for reporting which failed. */
  events: NodeEventOut[];
}

function eventKey(e: NodeEventOut): string {
  return positionKey(parseLsn(e.event.position.commitLsn), e.event.position.seq);
}

/**
 * The copy of a label-wide event for group `index` of `count`: `group` added to the event and
 * to its JSON (inserted before the closing brace: no re-serialization; these events are rare).
 * A claim-check ref's JSON gets it too, and nodeHandler carries it onto the fetched event.
 */
function groupCopy(e: NodeEventOut, event: NodeEvent, index: number, count: number): NodeEventOut {
  const stamp = `,"group":{"index":${index},"count":${count}}`;
  return { event: { ...event, group: { index, count } }, json: `${e.json.slice(0, e.json.lastIndexOf('}'))}${stamp}}`, bytes: e.bytes + stamp.length };
}

/** Pack events (in order) into per-group messages, order kept within each group. */
export function packNodesMessages(events: NodeEventOut[], partitions: number): NodesMessage[] {
  const byGroup = new Map<number, NodeEventOut[]>();
  const add = (p: number, e: NodeEventOut) => {
    let list = byGroup.get(p);
    if (!list) byGroup.set(p, (list = []));
    list.push(e);
  };
  for (const e of events) {
    const event = e.event;
    // A logical message keeps the order of its prefix: one group per prefix.
    if (event.type === 'message.emitted') add(nodesPartition(`message:${event.message.prefix}`, partitions), e);
    // A truncate (gap, snapshot start or end) concerns every node of its label, in every
    // group: each group gets a copy, so it is ordered against every node's events
    // (subscribers see one per group), stamped with the group it speaks for.
    else if (event.node.id === null) for (let p = 0; p < partitions; p++) add(p, groupCopy(e, event, p, partitions));
    else add(nodesPartition(event.node.id, partitions), e);
  }
  const messages: NodesMessage[] = [];
  for (const [p, list] of byGroup) {
    for (const events of packInOrder(list, { maxBytes: NODES_MESSAGE_MAX_BYTES, baseBytes: ENVELOPE }, (e) => e.bytes + 1)) {
      const body = `{"v":1,"events":[${events.map((e) => e.json).join(',')}]}`;
      messages.push({
        group: `n${p}`,
        body,
        bytes: Buffer.byteLength(body),
        deduplicationId: `n${p}.${eventKey(events[0] as NodeEventOut)}.${eventKey(events[events.length - 1] as NodeEventOut)}`,
        events,
      });
    }
  }
  return messages;
}

export interface SendResult {
  /** Messages SQS did not accept (and, after the first failure of a group, the rest of it). */
  failed: NodesMessage[];
  calls: number;
}

/**
 * Send messages keeping per-group order: rounds of SendMessageBatch, each with at most one
 * message per group (up to 10 messages, within 1 MiB); a failed entry is retried up to
 * `attempts` times, then its group stops.
 */
export async function sendNodesMessages(
  client: SQSClient,
  queueUrl: string,
  messages: NodesMessage[],
  opts: { attempts?: number; backoffMs?: number } = {},
): Promise<SendResult> {
  const attempts = opts.attempts ?? 4;
  const backoffMs = opts.backoffMs ?? 100;
  const queues = new Map<string, NodesMessage[]>();
  for (const m of messages) {
    let q = queues.get(m.group);
    if (!q) queues.set(m.group, (q = []));
    q.push(m);
  }
  const failed: NodesMessage[] = [];
  const tries = new Map<NodesMessage, number>();
  let calls = 0;
  const groups = [...queues.keys()];
  while (groups.length > 0) {
    // One round: the head message of up to 10 groups per call, several calls at once.
    const heads = groups.map((g) => (queues.get(g) as NodesMessage[])[0] as NodesMessage);
    const batches = packInOrder(heads, { maxItems: 10, maxBytes: SQS_MAX_MESSAGE_BYTES }, (m) => m.bytes);
    const results = await Promise.all(
      batches.map(async (b) => {
        calls++;
        try {
          const out = await client.send(
            new SendMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: b.map((m, i) => ({ Id: String(i), MessageBody: m.body, MessageGroupId: m.group, MessageDeduplicationId: m.deduplicationId })),
            }),
          );
          const bad = new Set((out.Failed ?? []).map((f) => Number(f.Id)));
          const good = new Set((out.Successful ?? []).map((s) => Number(s.Id)));
          return b.map((m, i) => ({ m, ok: good.has(i) && !bad.has(i) }));
        } catch {
          return b.map((m) => ({ m, ok: false }));
        }
      }),
    );
    let retry = false;
    for (const { m, ok } of results.flat()) {
      const q = queues.get(m.group) as NodesMessage[];
      if (ok) {
        q.shift();
      } else {
        const n = (tries.get(m) ?? 0) + 1;
        tries.set(m, n);
        if (n >= attempts) {
          failed.push(...q.splice(0)); // the group stops here, in order
        } else retry = true;
      }
      if (q.length === 0) groups.splice(groups.indexOf(m.group), 1);
    }
    if (retry) await new Promise((r) => setTimeout(r, backoffDelay(Math.max(...tries.values()), { initialMs: backoffMs, maxMs: backoffMs * 16, jitter: true })));
  }
  return { failed, calls };
}
