/**
 * EventBridgeOutput against the loopback EventBridge fake, through the real SDK client and HTTP:
 * packing under PutEvents' count and size limits, per-entry failures, claim checks.
 */
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { afterEach, describe, expect, it } from 'vitest';
import type { GraphNodeEvent, GraphNodeEventRef, NodeEvent } from '#core/change-event.ts';
import { parseTransformConfig } from '#core/config.ts';
import { startFakeEventBridge, FAKE_MAX_REQUEST_BYTES, type FakeEventBridge } from '#test/helpers/fake-eventbridge.ts';
import { waitFor } from '#test/helpers/wait.ts';
import { EventBridgeOutput, type EventBridgeOutputOptions, type PublishItem } from '#transform/eventbridge-output.ts';

const BUS = 'pgrelay-test-bus';
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fake(): Promise<FakeEventBridge> {
  const eb = await startFakeEventBridge({ buses: [BUS] });
  cleanups.push(() => eb.close());
  return eb;
}

function output(eb: FakeEventBridge, opts: Omit<EventBridgeOutputOptions, 'busName' | 'sourceId' | 'labels'> = {}, labels?: string[]): EventBridgeOutput {
  const config = parseTransformConfig({
    sourceId: 'orders-db',
    tables: ['public.orders', 'public.customers'],
    outputs: { eventBridge: { busName: BUS, ...(labels ? { labels } : {}) } },
    eventBridgeEndpoint: eb.endpoint,
  });
  // Backoff of a millisecond or two: the retry path runs for real, the test stays fast.
  const out = EventBridgeOutput.fromConfig(config, { credentials: CREDENTIALS, baseDelayMs: 1, maxDelayMs: 4, ...opts });
  cleanups.push(() => out.destroy());
  return out;
}

/** Node `orders:{n}`, with a `note` property of `noteBytes` ASCII characters. */
function nodeEvent(n: number, noteBytes = 10, label = 'orders'): NodeEvent {
  return {
    v: 1,
    type: n % 3 === 0 ? 'node.inserted' : 'node.updated',
    source: 'orders-db',
    node: { id: `${label}:${n}`, label, properties: { id: n, note: 'x'.repeat(noteBytes), total: '12.50' } },
    position: { commitLsn: '0/16B3748', seq: n },
    tx: { xid: 700, commitLsn: '0/16B3748', commitTime: '2026-03-01T10:00:00.000000Z' },
  };
}

const items = (events: NodeEvent[]): PublishItem[] => events.map((event) => ({ event }));
const nodeIdOf = (detail: unknown): string => (detail as NodeEvent).node.id as string;

/** Entries per call, largest first (calls of one round run concurrently, in no fixed order). */
const callSizes = (eb: FakeEventBridge): number[] => eb.calls.map((c) => c.entries.length).sort((a, b) => b - a);

/** Every call was answered 200 and stayed within PutEvents' limits. */
function expectCallsWithinLimits(eb: FakeEventBridge): void {
  for (const call of eb.calls) {
    expect(call.errorType).toBeUndefined();
    expect(call.status).toBe(200);
    expect(call.entries.length).toBeGreaterThanOrEqual(1);
    expect(call.entries.length).toBeLessThanOrEqual(10);
    expect(call.entryBytes).toBeLessThan(FAKE_MAX_REQUEST_BYTES);
  }
}

describe('EventBridgeOutput', () => {
  it('sends 25 events in 3 calls of at most 10, with Source, DetailType, Detail and bus set', async () => {
    const eb = await fake();
    const events = Array.from({ length: 25 }, (_, i) => nodeEvent(i));

    const result = await output(eb).publish(items(events));

    expect(result).toEqual({ delivered: 25, skipped: 0, offloaded: 0, calls: 3, failed: [] });
    expect(callSizes(eb)).toEqual([10, 10, 5]);
    expectCallsWithinLimits(eb);
    expect(eb.lost).toEqual([]);
    expect(eb.events).toHaveLength(25);
    const byId = new Map(eb.events.map((e) => [nodeIdOf(e.detail), e]));
    for (const event of events) {
      const got = byId.get(event.node.id as string);
      expect(got).toMatchObject({ source: 'pgrelay.orders-db', detailType: event.type, bus: BUS });
      expect(got?.detail).toEqual(event);
    }
  });

  it('sends a pre-serialized detail as given', async () => {
    const eb = await fake();
    const event = nodeEvent(1);
    const detail = JSON.stringify({ ...event, marker: 'caller-serialized' });

    const result = await output(eb).publish([{ event, detail }]);

    expect(result.delivered).toBe(1);
    expect(eb.events[0]?.detail).toMatchObject({ marker: 'caller-serialized' });
  });

  it('splits ~100 KB events by size so no call reaches 256 KB', async () => {
    const eb = await fake();
    const events = Array.from({ length: 7 }, (_, i) => nodeEvent(i, 100_000));

    const result = await output(eb).publish(items(events));

    expect(result.failed).toEqual([]);
    expect(result.delivered).toBe(7);
    // Two 100 KB entries fit under the limit, three do not: 2+2+2+1.
    expect(callSizes(eb)).toEqual([2, 2, 2, 1]);
    expectCallsWithinLimits(eb);
    expect(new Set(eb.events.map((e) => nodeIdOf(e.detail))).size).toBe(7);
  });

  it('keeps at most `concurrency` calls in flight', async () => {
    const eb = await fake();
    const release = eb.hold();
    const publishing = output(eb, { concurrency: 2 }).publish(items(Array.from({ length: 50 }, (_, i) => nodeEvent(i))));

    await waitFor(() => eb.inFlight === 2, { message: 'two held PutEvents calls' });
    release();
    const result = await publishing;

    expect(result.delivered).toBe(50);
    expect(eb.calls).toHaveLength(5);
    expect(eb.maxInFlight).toBe(2);
  });

  it('resends only the throttled entries, and every event arrives exactly once', async () => {
    const eb = await fake();
    const throttled = new Set(['orders:1', 'orders:4', 'orders:12', 'orders:13']);
    // Each of the four is throttled twice: three calls carry it, the accepted ones go once.
    eb.failNext((e) => throttled.has(nodeIdOf(e.detail)), { code: 'ThrottlingException', times: 8 });
    const events = Array.from({ length: 15 }, (_, i) => nodeEvent(i));

    // One call at a time, so the calls are recorded round by round in packing order.
    const result = await output(eb, { concurrency: 1 }).publish(items(events));

    expect(result.failed).toEqual([]);
    expect(result.delivered).toBe(15);
    expect(eb.calls.map((c) => c.entries.length)).toEqual([10, 5, 4, 4]);
    expect(eb.calls.map((c) => c.failedEntryCount)).toEqual([2, 2, 4, 0]);
    // The retry calls carry exactly the throttled entries, nothing that was accepted.
    for (const retry of eb.calls.slice(2)) {
      expect(new Set(retry.entries.map((e) => nodeIdOf(e.detail)))).toEqual(throttled);
    }
    const sent = eb.calls.flatMap((c) => c.entries.map((e) => nodeIdOf(e.detail)));
    expect(sent).toHaveLength(15 + 4 * 2);
    const delivered = eb.events.map((e) => nodeIdOf(e.detail)).sort();
    expect(delivered).toEqual(events.map((e) => e.node.id as string).sort());
  });

  it('returns an entry that keeps failing, with its item, code and attempts; the rest are delivered', async () => {
    const eb = await fake();
    eb.failNext((e) => nodeIdOf(e.detail) === 'orders:3', { code: 'InternalFailure', times: Infinity });
    const records = Array.from({ length: 6 }, (_, i) => ({ event: nodeEvent(i), messageId: `sqs-message-${i}` }));

    const result = await output(eb, { maxAttempts: 3 }).publish(records);

    expect(result.delivered).toBe(5);
    expect(result.failed).toEqual([
      { item: records[3], index: 3, code: 'InternalFailure', message: 'Internal Service Error', attempts: 3 },
    ]);
    expect(result.failed[0]?.item.messageId).toBe('sqs-message-3');
    expect(eb.calls.map((c) => c.entries.length)).toEqual([6, 1, 1]);
    expect(eb.events.map((e) => nodeIdOf(e.detail))).not.toContain('orders:3');
  });

  it('does not retry an entry EventBridge calls malformed', async () => {
    const eb = await fake();
    const good = nodeEvent(1);
    const bad = nodeEvent(2);

    const result = await output(eb).publish([{ event: good }, { event: bad, detail: '["not", "an", "object"]' }]);

    expect(result.delivered).toBe(1);
    expect(result.failed).toMatchObject([{ index: 1, code: 'MalformedDetail', message: 'Detail is malformed.', attempts: 1 }]);
    expect(eb.calls).toHaveLength(1);
  });

  it('reports every entry of a call rejected as a whole with a client error, without retrying', async () => {
    const eb = await fake();
    eb.rejectNextCall(400, 'AccessDeniedException', { message: 'User is not authorized to perform: events:PutEvents' });

    const result = await output(eb).publish(items([nodeEvent(1), nodeEvent(2)]));

    expect(result.delivered).toBe(0);
    expect(result.failed.map((f) => [f.index, f.code, f.attempts])).toEqual([
      [0, 'AccessDeniedException', 1],
      [1, 'AccessDeniedException', 1],
    ]);
    expect(result.failed[0]?.message).toContain('not authorized');
    expect(eb.calls).toHaveLength(1);
  });

  it('retries a call that failed with 5xx beyond the SDK retries, and delivers once', async () => {
    const eb = await fake();
    // The SDK tries each call 3 times; 4 failures force a second round of ours.
    eb.rejectNextCall(503, 'ServiceUnavailable', { times: 4 });

    const result = await output(eb).publish(items([nodeEvent(1), nodeEvent(2)]));

    expect(result.failed).toEqual([]);
    expect(result.delivered).toBe(2);
    expect(eb.calls.map((c) => c.status)).toEqual([503, 503, 503, 503, 200]);
    expect(eb.events).toHaveLength(2);
  });

  it('offloads an event over the size limit and delivers its reference', async () => {
    const eb = await fake();
    const big = nodeEvent(7, 300_000);
    const offloaded: { event: GraphNodeEvent; detail: string }[] = [];
    const offload = async (any: GraphNodeEvent, detail: string): Promise<string> => {
      const event = any as NodeEvent;
      offloaded.push({ event, detail });
      const ref: GraphNodeEventRef = {
        v: 1,
        type: event.type,
        source: event.source,
        node: { id: event.node.id, label: event.node.label },
        position: event.position,
        tx: event.tx,
        payloadRef: { bucket: 'pgrelay-payloads', key: 'pgrelay/events/0-16B3748-7.json', bytes: Buffer.byteLength(detail), sha256: 'a'.repeat(64) },
      };
      return JSON.stringify(ref);
    };

    const result = await output(eb, { offload }).publish(items([nodeEvent(1), big, nodeEvent(2)]));

    expect(result).toMatchObject({ delivered: 3, offloaded: 1, failed: [] });
    expect(offloaded).toHaveLength(1);
    expect(offloaded[0]?.event).toBe(big);
    expect(JSON.parse(offloaded[0]?.detail as string)).toEqual(big);
    const ref = eb.events.find((e) => nodeIdOf(e.detail) === 'orders:7');
    expect(ref?.detailType).toBe(big.type);
    expect(ref?.detail).toMatchObject({ node: { id: 'orders:7', label: 'orders' }, payloadRef: { bucket: 'pgrelay-payloads' } });
    expect(ref?.detail).not.toHaveProperty('node.properties');
    expectCallsWithinLimits(eb);
  });

  it('reports an oversized event as failed when no offload is configured, and sends the others', async () => {
    const eb = await fake();

    const result = await output(eb).publish(items([nodeEvent(1), nodeEvent(2, 300_000), nodeEvent(3)]));

    expect(result.delivered).toBe(2);
    expect(result.failed).toMatchObject([{ index: 1, code: 'ENTRY_TOO_LARGE', attempts: 0 }]);
    expect(result.failed[0]?.message).toMatch(/no offload is configured/);
    expect(eb.events.map((e) => nodeIdOf(e.detail)).sort()).toEqual(['orders:1', 'orders:3']);
    expectCallsWithinLimits(eb);
  });

  it('reports a failed offload with its reason', async () => {
    const eb = await fake();
    const offload = async (): Promise<string> => {
      throw Object.assign(new Error('bucket pgrelay-payloads: AccessDenied'), { code: 'S3_WRITE' });
    };

    const result = await output(eb, { offload }).publish(items([nodeEvent(2, 300_000)]));

    expect(result.failed).toMatchObject([{ index: 0, code: 'OFFLOAD_FAILED', message: 'S3_WRITE: bucket pgrelay-payloads: AccessDenied' }]);
    expect(eb.calls).toHaveLength(0);
  });

  it('publishes only the configured labels', async () => {
    const eb = await fake();

    const result = await output(eb, {}, ['customers']).publish(items([nodeEvent(1), nodeEvent(2, 10, 'customers')]));

    expect(result).toMatchObject({ delivered: 1, skipped: 1, failed: [] });
    expect(eb.events.map((e) => nodeIdOf(e.detail))).toEqual(['customers:2']);
  });
});

describe('fake EventBridge enforces the PutEvents limits', () => {
  const client = (eb: FakeEventBridge) => {
    const c = new EventBridgeClient({ region: 'us-east-1', endpoint: eb.endpoint, credentials: CREDENTIALS, maxAttempts: 1 });
    cleanups.push(() => c.destroy());
    return c;
  };
  const entry = (detailBytes: number): PutEventsRequestEntry => ({
    Source: 'pgrelay.test',
    DetailType: 'node.inserted',
    Detail: JSON.stringify({ pad: 'y'.repeat(detailBytes) }),
    EventBusName: BUS,
  });

  it('rejects 11 entries in one call', async () => {
    const eb = await fake();
    const err = await client(eb)
      .send(new PutEventsCommand({ Entries: Array.from({ length: 11 }, () => entry(10)) }))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'ValidationException', $metadata: { httpStatusCode: 400 } });
    expect((err as Error).message).toMatch(/less than or equal to 10/);
    expect(eb.events).toEqual([]);
  });

  it('rejects a 300 KB call as a whole', async () => {
    const eb = await fake();
    const err = await client(eb)
      .send(new PutEventsCommand({ Entries: [entry(150_000), entry(150_000)] }))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'ValidationException', message: 'Total size of the entries in the request is over the limit.' });
    expect(eb.calls[0]?.entryBytes).toBeGreaterThan(300_000);
    expect(eb.events).toEqual([]);
  });

  it('counts the size the documented way: 10 entries just under 256 KiB in total pass', async () => {
    const eb = await fake();
    const overhead = Buffer.byteLength('pgrelay.test') + Buffer.byteLength('node.inserted') + Buffer.byteLength('{"pad":""}');
    const each = Math.floor((FAKE_MAX_REQUEST_BYTES - 1) / 10) - overhead;
    const out = await client(eb).send(new PutEventsCommand({ Entries: Array.from({ length: 10 }, () => entry(each)) }));
    expect(out.FailedEntryCount).toBe(0);
    expect(eb.calls[0]?.entryBytes).toBeLessThan(FAKE_MAX_REQUEST_BYTES);
    expect(eb.calls[0]?.entryBytes).toBeGreaterThan(FAKE_MAX_REQUEST_BYTES - 20);
  });

  it('fails bad entries one by one and accepts (but loses) an unknown bus, as AWS does', async () => {
    const eb = await fake();
    const out = await client(eb).send(
      new PutEventsCommand({
        Entries: [
          entry(1),
          { Source: 'pgrelay.test', DetailType: 'node.inserted', EventBusName: BUS },
          { ...entry(1), Detail: '"a string"' },
          { ...entry(1), EventBusName: 'no-such-bus' },
        ],
      }),
    );
    expect(out.FailedEntryCount).toBe(2);
    expect(out.Entries?.map((e) => e.ErrorCode)).toEqual([undefined, 'InvalidArgument', 'MalformedDetail', undefined]);
    expect(out.Entries?.[3]?.EventId).toEqual(expect.any(String));
    expect(eb.events).toHaveLength(1);
    expect(eb.lost).toMatchObject([{ bus: 'no-such-bus' }]);
  });

  it('rejects an unsigned request', async () => {
    const eb = await fake();
    const res = await fetch(eb.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AWSEvents.PutEvents' },
      body: JSON.stringify({ Entries: [entry(1)] }),
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' });
    expect(eb.events).toEqual([]);
  });
});
