/**
 * The transform: one SQS batch from the changes queue → graph node events on the configured
 * outputs, with partial batch failures that keep FIFO order.
 *
 * Records of one message group (a changes partition) are handled strictly in order, each one
 * only after the previous one's events were accepted by every output; groups run side by
 * side. Once a record of a group fails, it and every later record of that group in the batch
 * are reported failed, so SQS redelivers them in order (ReportBatchItemFailures). A record
 * that cannot be read at all is logged with the reason and failed like any other: after the
 * queue's maxReceiveCount SQS moves it to the dead-letter queue. Other groups never wait.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { changeBatchRef, changeOp, labelOf, type ChangeBatch, type GraphNodeEvent } from '#core/change-event.ts';
import { payloadKey, type PayloadStore } from '#core/payload-store.ts';
import type { TransformConfig } from '#core/config.ts';
import { DecodeError, describeError } from '#core/errors.ts';
import { labelsFor } from '#core/node-id.ts';
import { parseLsn, positionKey } from '#core/position.ts';
import { toGraphEvent } from '#core/row-to-node.ts';
import { parseLossless, stringifyLossless } from '#core/values/lossless-json.ts';
import { byMessageGroup, type SqsBatchResponse, type SqsRecord } from '#shared/lambda-types.ts';
import { packNodesMessages, sendNodesMessages, type NodeEventOut } from './nodes-queue-output.ts';

/** The EventBridge output (eventbridge-output.ts): reports what it could not deliver. */
export interface EventBusOutput {
  publish(items: { event: GraphNodeEvent; detail: string }[]): Promise<{ failed: { index: number; code: string; message: string }[] }>;
}

export interface Log {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A log whose every line carries `keys` (the record being handled: groups run at once, so not the shared log's keys). */
  child?(keys: Record<string, unknown>): Log;
}

export interface TransformDeps {
  config: TransformConfig;
  log: Log;
  eventBus?: EventBusOutput;
  nodesQueue?: { client: SQSClient; queueUrl: string };
  payloads?: PayloadStore;
}

export interface TransformStats {
  records: number;
  changes: number;
  events: number;
  failedRecords: number;
}

/** SQS's message limit less room for the nodes-queue envelope. */
const NODES_EVENT_MAX_BYTES = 1024 * 1024 - 64;

const OPS: ReadonlySet<string> = new Set(changeOp.options);

export class Transform {
  private readonly labels: Map<string, string>;
  private readonly ebLabels: Set<string> | undefined;
  private readonly nodesLabels: Set<string> | undefined;
  readonly stats: TransformStats = { records: 0, changes: 0, events: 0, failedRecords: 0 };

  constructor(private readonly deps: TransformDeps) {
    this.labels = labelsFor(deps.config.tables);
    const { eventBridge, nodesQueue } = deps.config.outputs;
    this.ebLabels = eventBridge?.labels ? new Set(eventBridge.labels) : undefined;
    this.nodesLabels = nodesQueue?.labels ? new Set(nodesQueue.labels) : undefined;
  }

  async handle(records: SqsRecord[]): Promise<SqsBatchResponse> {
    const failed: string[] = [];
    await Promise.all(
      byMessageGroup(records).map(async (list) => {
        for (let i = 0; i < list.length; i++) {
          const record = list[i] as SqsRecord;
          const ok = await this.handleRecord(record);
          if (!ok) {
            // FIFO: nothing after a failed record of its group may be applied before it.
            for (const r of list.slice(i)) failed.push(r.messageId);
            return;
          }
        }
      }),
    );
    this.stats.records += records.length;
    this.stats.failedRecords += failed.length;
    return { batchItemFailures: failed.map((itemIdentifier) => ({ itemIdentifier })) };
  }

  /** Each record's log while it is handled: its message id, group and the positions it carries. */
  private readonly recordLogs = new WeakMap<SqsRecord, Log>();

  private logOf(record: SqsRecord | undefined): Log {
    return (record !== undefined ? this.recordLogs.get(record) : undefined) ?? this.deps.log;
  }

  /** True when every event of the record reached every output. */
  private async handleRecord(record: SqsRecord): Promise<boolean> {
    const recordKeys = { messageId: record.messageId, group: record.attributes.MessageGroupId };
    let batch: ChangeBatch;
    try {
      batch = await this.readBatch(record.body);
    } catch (err) {
      this.logOf(record).error('record cannot be read; it goes to the dead-letter queue after the redrive count', {
        messageId: record.messageId,
        group: record.attributes.MessageGroupId,
        receiveCount: Number(record.attributes.ApproximateReceiveCount),
        error: describeError(err),
      });
      return false;
    }
    const first = batch.changes[0]?.position;
    const last = batch.changes[batch.changes.length - 1]?.position;
    if (first !== undefined && last !== undefined) {
      // The change positions the record carries, first to last, on every line logged for it.
      this.recordLogs.set(record, this.deps.log.child?.({ ...recordKeys, position: `${first.commitLsn}:${first.seq}`, lastPosition: `${last.commitLsn}:${last.seq}` }) ?? this.deps.log);
    }
    const out: NodeEventOut[] = [];
    try {
      const ctx = { source: this.deps.config.sourceId, labels: this.labels };
      for (const change of batch.changes) {
        const event = toGraphEvent(change, ctx);
        const json = stringifyLossless(event);
        out.push({ event, json, bytes: Buffer.byteLength(json) });
      }
    } catch (err) {
      this.logOf(record).error('record holds a change that cannot be turned into node events', {
        messageId: record.messageId,
        group: record.attributes.MessageGroupId,
        error: describeError(err),
      });
      return false;
    }
    this.stats.changes += batch.changes.length;
    this.stats.events += out.length;
    // Label-wide events come in every partition's record: each copy keeps its order on the nodes
    // queue (in its partition's group); EventBridge, which does not order, gets one, partition 0's.
    const bus = batch.partition === 0 ? out : out.filter((e) => e.event.type === 'message.emitted' || e.event.node.id !== null);
    const results = await Promise.all([this.toNodesQueue(out, record, batch.partition), this.toEventBus(bus, record)]);
    return results.every(Boolean);
  }

  private async readBatch(body: string): Promise<ChangeBatch> {
    let doc = parseLossless(body) as Record<string, unknown>;
    if (doc && typeof doc === 'object' && 'payloadRef' in doc) {
      const ref = changeBatchRef.parse(doc);
      if (!this.deps.payloads) throw new DecodeError('PROTOCOL', 'record is a claim check, but no largePayloads store is configured');
      doc = parseLossless(await this.deps.payloads.get(ref.payloadRef)) as Record<string, unknown>;
      if (doc.partition !== ref.partition) throw new DecodeError('PROTOCOL', `claim-checked batch is of partition ${String(doc.partition)}, its reference says ${ref.partition}`);
    }
    return checkBatch(doc);
  }

  private async toNodesQueue(events: NodeEventOut[], record: SqsRecord, partition: number): Promise<boolean> {
    const target = this.deps.nodesQueue;
    if (!target) return true;
    const selected = this.nodesLabels ? events.filter((e) => passes(this.nodesLabels, e.event)) : events;
    if (selected.length === 0) return true;
    const sized: NodeEventOut[] = [];
    for (const e of selected) {
      if (e.bytes <= NODES_EVENT_MAX_BYTES) sized.push(e);
      else {
        const ref = await this.offload(e.event, e.json, record);
        if (ref === undefined) return false;
        sized.push({ ...e, json: ref, bytes: Buffer.byteLength(ref) });
      }
    }
    const result = await sendNodesMessages(target.client, target.queueUrl, packNodesMessages(sized, partition));
    if (result.failed.length > 0) {
      this.logOf(record).warn('nodes queue did not accept every message; the record will be retried', {
        messageId: record.messageId,
        failedMessages: result.failed.length,
      });
      return false;
    }
    return true;
  }

  private async toEventBus(events: NodeEventOut[], record: SqsRecord): Promise<boolean> {
    const bus = this.deps.eventBus;
    if (!bus) return true;
    const selected = this.ebLabels ? events.filter((e) => passes(this.ebLabels, e.event)) : events;
    if (selected.length === 0) return true;
    const { failed } = await bus.publish(selected.map((e) => ({ event: e.event, detail: e.json })));
    if (failed.length > 0) {
      this.logOf(record).warn('EventBridge did not accept every event; the record will be retried', {
        messageId: record.messageId,
        failedEvents: failed.length,
        reasons: [...new Set(failed.map((f) => `${f.code}: ${f.message}`))].slice(0, 5),
      });
      return false;
    }
    return true;
  }

  /** Store an event too large for its channel; returns the reference event's JSON. */
  async offload(event: GraphNodeEvent, json: string, record?: SqsRecord): Promise<string | undefined> {
    if (!this.deps.payloads) {
      this.logOf(record).error('an event is too large for its channel and no largePayloads store is configured', {
        messageId: record?.messageId,
        ...(event.type === 'message.emitted' ? { messagePrefix: event.message.prefix } : { nodeId: event.node.id }),
        bytes: Buffer.byteLength(json),
      });
      return undefined;
    }
    // Named by position (unique per event) and type: a retried record overwrites the same object.
    const name = `${event.source}/${positionKey(parseLsn(event.position.commitLsn), event.position.seq).replace(':', '-')}.${event.type}`;
    const payloadRef = await this.deps.payloads.put(payloadKey('events', name), json);
    const routing =
      event.type === 'message.emitted'
        ? { message: { prefix: event.message.prefix, transactional: event.message.transactional } }
        : { node: { id: event.node.id, label: event.node.label } };
    return stringifyLossless({ v: 1, type: event.type, source: event.source, ...routing, position: event.position, tx: event.tx, payloadRef });
  }
}

/** An output's label filter: a logical message has no label and always passes. */
function passes(labels: ReadonlySet<string> | undefined, event: GraphNodeEvent): boolean {
  const label = labelOf(event);
  return labels === undefined || label === null || labels.has(label);
}

/** Structural check of a change batch (the transform does not trust its input). */
function checkBatch(doc: unknown): ChangeBatch {
  const fail = (why: string): never => {
    throw new DecodeError('PROTOCOL', `not a pgrelay change batch: ${why}`);
  };
  if (typeof doc !== 'object' || doc === null) fail('not an object');
  const b = doc as Record<string, unknown>;
  if (b.v !== 1) fail(`unsupported version ${JSON.stringify(b.v)}`);
  if (typeof b.partition !== 'number') fail('no partition');
  if (!Array.isArray(b.changes)) fail('no changes array');
  for (const [i, c] of (b.changes as Record<string, unknown>[]).entries()) {
    if (typeof c !== 'object' || c === null) fail(`change ${i} is not an object`);
    if (!OPS.has(c.op as string)) fail(`change ${i} has op ${JSON.stringify(c.op)}`);
    const pos = c.position as Record<string, unknown> | undefined;
    if (!pos || typeof pos.commitLsn !== 'string' || typeof pos.seq !== 'number') fail(`change ${i} lacks a position`);
    if (c.op === 'message') {
      const m = c.message as Record<string, unknown> | undefined;
      if (!m || typeof m.prefix !== 'string' || typeof m.content !== 'string' || (m.encoding !== 'utf8' && m.encoding !== 'base64')) fail(`change ${i} is a message without prefix, content and encoding`);
      if (typeof c.tx !== 'object') fail(`change ${i} lacks tx`);
      continue;
    }
    if (typeof c.schema !== 'string' || typeof c.table !== 'string') fail(`change ${i} lacks schema/table`);
    // Bootstrap reads and markers have no transaction (tx null); stream changes always do.
    const readByBootstrap = c.op === 'snapshot' || c.op === 'bootstrap.started' || c.op === 'bootstrap.completed';
    if (typeof c.tx !== 'object' || (c.tx === null && !readByBootstrap)) fail(`change ${i} lacks tx`);
    if (readByBootstrap && c.op !== 'snapshot' && (typeof c.bootstrap !== 'object' || c.bootstrap === null)) fail(`change ${i} is a bootstrap marker without its load`);
    if (c.op === 'snapshot' && (typeof c.key !== 'object' || c.key === null || typeof c.after !== 'object' || c.after === null)) fail(`change ${i} is a snapshot row without key and after`);
  }
  return doc as ChangeBatch;
}

