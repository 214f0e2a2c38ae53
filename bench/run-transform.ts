/**
 * Child process: the transform Lambda's work on one realistic SQS event, invoked again and
 * again the way a warm container is: one Transform, built once, handles the same event each
 * time. Each timed invocation is what Lambda bills for the handler: `JSON.parse` of the event
 * document (the runtime hands the handler a parsed event), then `Transform.handle(Records)`.
 *
 * Outputs:
 *  - `instant`: both outputs accept everything at once — a nodes-queue SQS client whose
 *    SendMessageBatch succeeds for every entry, and the real EventBridgeOutput over a client
 *    whose PutEvents does. What remains is the handler's own work: parse, convert, serialize,
 *    pack. A second, shorter pass answers every call after `latencyProbeMs`, which shows how
 *    many calls an invocation waits for one after another (Lambda bills that waiting too).
 *  - `sdk`: the production factory (createTransform) with real AWS SDK clients, to the SQS
 *    emulator and the EventBridge stand-in on loopback (both in another process): adds the
 *    SDK's request serialization, MD5, SigV4 signing and HTTP.
 */
import { acceptingSqsClient } from './accepting-sqs.ts';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { parseTransformConfig, type TransformConfig } from '#core/config.ts';
import { EventBridgeOutput } from '#transform/eventbridge-output.ts';
import { createTransform } from '#transform/handler.ts';
import type { SqsEvent, SqsRecord } from '#shared/lambda-types.ts';
import { Transform, type Log } from '#transform/transform.ts';
import { exitWithParent, finish, jobOf, peakRssMb } from './child.ts';
import { startProfiler, type ProfileSummary } from './profile.ts';
import type { CapturedMessage } from './run-streamer.ts';

export type TransformOutputs = 'instant' | 'sdk';

export interface TransformJob {
  /** The event's records: changes-queue messages as the streamer sent them (CapturedMessage[]). */
  recordsPath: string;
  outputs: TransformOutputs;
  /** Untimed invocations first (JIT, SDK clients' connections). */
  warmup: number;
  iterations: number;
  busName: string;
  /** `sdk`: where the SQS emulator and the EventBridge stand-in listen, and the nodes queue. */
  sqsEndpoint?: string;
  eventBridgeEndpoint?: string;
  nodesQueueUrl?: string;
  /** `instant`: also time `latencyProbeInvocations` invocations with every call answered after this long. */
  latencyProbeMs?: number;
  latencyProbeInvocations?: number;
  /** Write a CPU profile of the timed invocations here. */
  profilePath?: string;
}

export interface TransformResult {
  outputs: TransformOutputs;
  records: number;
  groups: number;
  /** UTF-8 bytes of the SQS event document and of the record bodies in it. */
  eventBytes: number;
  bodyBytes: number;
  changesPerInvocation: number;
  eventsPerInvocation: number;
  iterations: number;
  /** Wall time of the timed invocations (their sum, without the turns between them), and per invocation. */
  seconds: number;
  meanMs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** Of each invocation, the JSON.parse of the event (median). */
  eventParseMs: number;
  /** CPU time (user + system, every thread: GC helpers included) per invocation. */
  cpuMsPerInvocation: number;
  /** Garbage collection pauses per invocation (PerformanceObserver 'gc'). */
  gcMsPerInvocation: number;
  peakRssMb: number;
  /** RSS once the modules and the event are loaded, before the first invocation. */
  startRssMb: number;
  maxHeapUsedMb: number;
  /** What the outputs were asked to do per invocation (`instant` only: the stand-ins count). */
  calls?: { sendMessageBatch: number; nodesMessages: number; nodesMb: number; putEvents: number; putEventsEntries: number };
  latencyProbe?: {
    delayMs: number;
    invocations: number;
    medianMs: number;
    /** (median with delay − median without) / delay: calls the invocation waits for in sequence. */
    sequentialCalls: number;
  };
  profile?: ProfileSummary;
}

const MIB = 2 ** 20;
/** The instant outputs' nodes queue: never contacted, but the config wants a FIFO queue URL. */
const STAND_IN_QUEUE_URL = 'http://127.0.0.1:9/000000000000/bench-nodes.fifo';

/** Warnings and errors to stderr, so a failed record is explained; info is dropped. */
const log: Log = {
  info: () => undefined,
  warn: (msg, fields) => process.stderr.write(`${JSON.stringify({ level: 'warn', msg, ...fields })}\n`),
  error: (msg, fields) => process.stderr.write(`${JSON.stringify({ level: 'error', msg, ...fields })}\n`),
};

interface CallCounts {
  sendMessageBatch: number;
  nodesMessages: number;
  nodesBytes: number;
  putEvents: number;
  putEventsEntries: number;
}

/** An SQS client whose SendMessageBatch succeeds for every entry (after `delayMs`, if set). */
function instantSqs(counts: CallCounts, delayMs = 0): SQSClient {
  return acceptingSqsClient((entries) => {
    counts.sendMessageBatch++;
    counts.nodesMessages += entries.length;
    for (const e of entries) counts.nodesBytes += Buffer.byteLength(e.MessageBody ?? '');
  }, delayMs);
}

/** An EventBridge client whose PutEvents accepts every entry (after `delayMs`, if set). */
function instantEventBridge(counts: CallCounts, delayMs = 0): EventBridgeClient {
  let eventIds = 0;
  const client = {
    send: async (command: PutEventsCommand) => {
      if (delayMs > 0) await delay(delayMs);
      const entries = command.input.Entries ?? [];
      counts.putEvents++;
      counts.putEventsEntries += entries.length;
      return { $metadata: {}, FailedEntryCount: 0, Entries: entries.map(() => ({ EventId: String(++eventIds) })) };
    },
    destroy: () => undefined,
  };
  return client as unknown as EventBridgeClient;
}

/** Wired as createTransform wires it, minus the clients (and the claim check: no event here is too large). */
function standInTransform(config: TransformConfig, counts: CallCounts, delayMs = 0): Transform {
  const eventBus = new EventBridgeOutput(instantEventBridge(counts, delayMs), { busName: config.outputs.eventBridge?.busName ?? '', sourceId: config.sourceId });
  return new Transform({
    config,
    log,
    eventBus: { publish: (items) => eventBus.publish(items) },
    nodesQueue: { client: instantSqs(counts, delayMs), queueUrl: config.outputs.nodesQueue?.queueUrl ?? '' },
  });
}

/** The SQS event Lambda's FIFO event source would hand the handler for these messages. */
function sqsEventText(messages: CapturedMessage[]): string {
  const sent = 1_767_225_600_000; // 2026-01-01: a fixed time, the figures must not depend on it
  const records: SqsRecord[] = messages.map((m, i) => ({
    messageId: `00000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}`,
    receiptHandle: `bench-receipt-${i + 1}`,
    body: m.body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(sent + i),
      SenderId: 'AROAEXAMPLE:pgrelay-streamer',
      ApproximateFirstReceiveTimestamp: String(sent + 1_000),
      MessageGroupId: m.group,
      MessageDeduplicationId: m.deduplicationId,
      SequenceNumber: String(18_880_000_000_000_000_000n + BigInt(i)),
    },
    messageAttributes: {},
    md5OfBody: createHash('md5').update(m.body).digest('hex'),
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:bench-changes.fifo',
    awsRegion: 'us-east-1',
  }));
  return JSON.stringify({ Records: records } satisfies SqsEvent);
}

interface Timing {
  ms: number[];
  parseMs: number[];
}

async function invoke(transform: Transform, eventText: string, timing?: Timing): Promise<void> {
  const started = performance.now();
  const event = JSON.parse(eventText) as SqsEvent;
  const parsed = performance.now();
  const response = await transform.handle(event.Records);
  if (timing) {
    timing.ms.push(performance.now() - started);
    timing.parseMs.push(parsed - started);
  }
  if (response.batchItemFailures.length > 0) {
    throw new Error(`${response.batchItemFailures.length} record(s) failed (see the log above): the figures would not be the transform's`);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function main(): Promise<void> {
  exitWithParent();
  const job = jobOf<TransformJob>();
  const messages = JSON.parse(await readFile(job.recordsPath, 'utf8')) as CapturedMessage[];
  const eventText = sqsEventText(messages);
  const sdk = job.outputs === 'sdk';
  const config = parseTransformConfig({
    sourceId: 'bench',
    tables: ['public.orders'],
    outputs: {
      eventBridge: { busName: job.busName },
      nodesQueue: { queueUrl: sdk ? job.nodesQueueUrl : STAND_IN_QUEUE_URL },
    },
    region: 'us-east-1',
    ...(sdk ? { sqsEndpoint: job.sqsEndpoint, eventBridgeEndpoint: job.eventBridgeEndpoint } : {}),
  });
  const counts: CallCounts = { sendMessageBatch: 0, nodesMessages: 0, nodesBytes: 0, putEvents: 0, putEventsEntries: 0 };
  const transform = sdk
    ? createTransform(config, { credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, log })
    : standInTransform(config, counts);

  const startRssMb = process.memoryUsage.rss() / MIB;
  for (let i = 0; i < job.warmup; i++) await invoke(transform, eventText);

  let gcMs = 0;
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  let maxHeapUsed = 0;
  const heapSampler = setInterval(() => {
    maxHeapUsed = Math.max(maxHeapUsed, process.memoryUsage().heapUsed);
  }, 5);
  const profiler = job.profilePath ? await startProfiler() : undefined;
  const before = { ...transform.stats };
  Object.assign(counts, { sendMessageBatch: 0, nodesMessages: 0, nodesBytes: 0, putEvents: 0, putEventsEntries: 0 });
  const timing: Timing = { ms: [], parseMs: [] };
  const cpuAtStart = process.cpuUsage();
  for (let i = 0; i < job.iterations; i++) {
    await invoke(transform, eventText, timing);
    // Between invocations the event loop turns, as it does in Lambda (the runtime fetches the
    // next event over HTTP): the heap sampler and the GC observer, both timers, get to run.
    await delay(0);
  }
  const cpu = process.cpuUsage(cpuAtStart);
  const seconds = timing.ms.reduce((sum, ms) => sum + ms, 0) / 1000;
  const profile = profiler ? await profiler.stop(job.profilePath as string) : undefined;
  clearInterval(heapSampler);
  await delay(10); // the last GC entries reach the observer on a later turn
  gcObserver.disconnect();
  const n = job.iterations;
  const changes = (transform.stats.changes - before.changes) / n;
  const events = (transform.stats.events - before.events) / n;

  const result: TransformResult = {
    outputs: job.outputs,
    records: messages.length,
    groups: new Set(messages.map((m) => m.group)).size,
    eventBytes: Buffer.byteLength(eventText),
    bodyBytes: messages.reduce((sum, m) => sum + Buffer.byteLength(m.body), 0),
    changesPerInvocation: changes,
    eventsPerInvocation: events,
    iterations: n,
    seconds,
    meanMs: (seconds * 1000) / n,
    medianMs: median(timing.ms),
    minMs: Math.min(...timing.ms),
    maxMs: Math.max(...timing.ms),
    eventParseMs: median(timing.parseMs),
    cpuMsPerInvocation: (cpu.user + cpu.system) / 1000 / n,
    gcMsPerInvocation: gcMs / n,
    peakRssMb: peakRssMb(),
    startRssMb,
    maxHeapUsedMb: maxHeapUsed / MIB,
    ...(sdk
      ? {}
      : {
          calls: {
            sendMessageBatch: counts.sendMessageBatch / n,
            nodesMessages: counts.nodesMessages / n,
            nodesMb: counts.nodesBytes / MIB / n,
            putEvents: counts.putEvents / n,
            putEventsEntries: counts.putEventsEntries / n,
          },
        }),
    ...(profile ? { profile } : {}),
  };

  if (!sdk && job.latencyProbeMs && job.latencyProbeInvocations) {
    const slow = standInTransform(config, { sendMessageBatch: 0, nodesMessages: 0, nodesBytes: 0, putEvents: 0, putEventsEntries: 0 }, job.latencyProbeMs);
    await invoke(slow, eventText);
    const probe: Timing = { ms: [], parseMs: [] };
    for (let i = 0; i < job.latencyProbeInvocations; i++) await invoke(slow, eventText, probe);
    const probeMedian = median(probe.ms);
    result.latencyProbe = {
      delayMs: job.latencyProbeMs,
      invocations: job.latencyProbeInvocations,
      medianMs: probeMedian,
      sequentialCalls: (probeMedian - result.medianMs) / job.latencyProbeMs,
    };
  }
  finish(result);
}

main().catch((err: unknown) => {
  process.stderr.write(`run-transform: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
