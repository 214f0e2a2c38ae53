/**
 * Node events onto the SQS FIFO nodes queue. The events of one changes-queue record go to the
 * message group of the record's changes partition (`n{partition}`): a node's changes all travel
 * in one changes partition (by the hash of its table and key), so its events all land in one
 * group, in order. A label-wide event (label.truncated, label.gap, label.snapshot.*) comes in
 * every changes partition's record at the same position; each copy goes to its own partition's
 * group, stamped `group`, so in each group it is ordered against every node of that group — no
 * copy can overtake, or lag, the node events of another partition. A logical message travels in
 * its prefix's partition, so a prefix's messages keep their order.
 * Events of one group are packed into messages of up to 256 KiB (`{"v":1,"events":[…]}`);
 * each message's deduplication id comes from the positions it carries, so re-sending the same
 * record after a failure is dropped by SQS within its five-minute window.
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

/** A label-wide event's copy for group `group`: `group` added to the event and to its JSON (before the closing brace: no re-serialization). */
function groupCopy(e: NodeEventOut, event: NodeEvent, group: number): NodeEventOut {
  const stamp = `,"group":${group}`;
  return { event: { ...event, group }, json: `${e.json.slice(0, e.json.lastIndexOf('}'))}${stamp}}`, bytes: e.bytes + stamp.length };
}

/** Pack the events of one changes-queue record (in order) into messages of its partition's group. */
export function packNodesMessages(events: NodeEventOut[], partition: number): NodesMessage[] {
  const list = events.map((e) => (e.event.type !== 'message.emitted' && e.event.node.id === null ? groupCopy(e, e.event, partition) : e));
  const group = `n${partition}`;
  return packInOrder(list, { maxBytes: NODES_MESSAGE_MAX_BYTES, baseBytes: ENVELOPE }, (e) => e.bytes + 1).map((events) => {
    const body = `{"v":1,"events":[${events.map((e) => e.json).join(',')}]}`;
    return {
      group,
      body,
      bytes: Buffer.byteLength(body),
      deduplicationId: `${group}.${eventKey(events[0] as NodeEventOut)}.${eventKey(events[events.length - 1] as NodeEventOut)}`,
      events,
    };
  });
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
