/**
 * The transform scenarios of `npm run bench`: node events per second through the transform
 * Lambda's handler for a realistic SQS event, and what that work costs on Lambda.
 *
 * The event is made by the real pipeline, not by hand: an interleaved workload on the orders
 * table (inserts, updates with and without the old row, deletes) is streamed once by the real
 * streamer, with 4 partitions, into a sink that keeps what it is given; the first ten full
 * messages (the FIFO event source's largest batch), in send order, become the event's records.
 * Then a child process invokes the handler on that event, warm, again and again.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { STREAMER_NODE_OPTIONS } from '#streamer/node-options.ts';
import { createFifoQueue } from '#test/helpers/sqs.ts';
import { createSlots, generateMixedWorkload, ORDERS_PUBLICATION } from './backlog.ts';
import { BENCH_ROOT, runNodeChild } from './child.ts';
import type { RawReaderJob, RawReaderResult } from './raw-reader.ts';
import type { CapturedMessage, StreamerJob, StreamerResult } from './run-streamer.ts';
import type { TransformJob, TransformOutputs, TransformResult } from './run-transform.ts';
import type { TransformEventInfo, TransformMeasurement } from './transform-report.ts';

/** Lambda's SQS event source hands a FIFO queue's function at most 10 records at a time. */
export const EVENT_RECORDS = 10;
/** Message groups (changes-queue partitions) the event's records come from. */
export const EVENT_PARTITIONS = 4;
/** 16 × 1,000 changes: enough for several full 256 KiB messages in each of the 4 partitions. */
const WORKLOAD_CYCLES = 16;
/** The streamer's default message size; a message this much smaller was closed by its linger. */
const FULL_MESSAGE_BYTES = 0.9 * 256 * 1024;
const WARMUP_INVOCATIONS = 10;
const LATENCY_PROBE_MS = 10;
const LATENCY_PROBE_INVOCATIONS = 3;
const BUS_NAME = 'bench';

/**
 * The heap limits Lambda's Node.js runtime starts a 1024 MB function with: its bootstrap
 * (/var/runtime/bootstrap of the nodejs18.x image, as transcribed in 2023) sets new space =
 * memory / 10, semi-space = half of it, old space = the rest. The larger semi-space cuts the
 * handler's GC pauses about fourfold (docs/benchmarks.md), so it is measured as it runs.
 */
export const LAMBDA_1024_NODE_FLAGS = ['--max-semi-space-size=51', '--max-old-space-size=922'];

const CACHE_DIR = path.join(BENCH_ROOT, 'node_modules', '.cache', 'pgrelay-bench');
const SLOT_READER = 'bench_transform_reader';
const SLOT_CAPTURE = 'bench_transform_capture';

export interface TransformBenchContext {
  scripts: Record<string, string>;
  dbUrl: string;
  sqsEndpoint: string;
  eventBridgeEndpoint: string;
  runs: number;
  iterations: number;
  profilePath?: (name: string) => string;
  checkInterrupted(): void;
}

/** Streams the mixed workload through the real streamer and keeps the event's records. */
export async function prepareTransformEvent(ctx: TransformBenchContext, admin: pg.Client): Promise<TransformEventInfo> {
  const started = performance.now();
  await createSlots(admin, [SLOT_READER, SLOT_CAPTURE]);
  const changes = await generateMixedWorkload(admin, WORKLOAD_CYCLES);
  ctx.checkInterrupted();
  // The end LSN of the commit that completes the workload, as the streamer scenarios find it.
  const reader = await runNodeChild<RawReaderResult>(
    ctx.scripts['raw-reader'] as string,
    { url: ctx.dbUrl, slot: SLOT_READER, publication: ORDERS_PUBLICATION, expectedChanges: changes, variant: 'coalescing' } satisfies RawReaderJob,
    { timeoutMs: 60_000 },
  );
  ctx.checkInterrupted();
  const capturePath = path.join(CACHE_DIR, 'transform-capture.json');
  const job: StreamerJob = {
    config: {
      sourceId: 'bench',
      database: { url: ctx.dbUrl },
      tables: ['public.orders'],
      slotName: SLOT_CAPTURE,
      publicationName: ORDERS_PUBLICATION,
      managePublication: false,
      queueUrl: 'http://127.0.0.1:9/000000000000/bench-changes.fifo',
      partitions: EVENT_PARTITIONS,
      // A long linger, so only each partition's last message closes before it is full.
      batch: { lingerMs: 1_000 },
    },
    sink: 'capture',
    expectedChanges: changes,
    endLsn: reader.endLsn,
    capturePath,
  };
  const streamed = await runNodeChild<StreamerResult>(ctx.scripts['run-streamer'] as string, job, { timeoutMs: 120_000, nodeFlags: [...STREAMER_NODE_OPTIONS] });
  if (streamed.changes !== changes) throw new Error(`the streamer decoded ${streamed.changes} changes of the mixed workload, expected ${changes}`);
  const captured = JSON.parse(await readFile(capturePath, 'utf8')) as CapturedMessage[];
  const records = pickRecords(captured);
  const recordsPath = path.join(CACHE_DIR, 'transform-event.json');
  await writeFile(recordsPath, JSON.stringify(records));
  return { recordsPath, workloadChanges: changes, capturedMessages: captured.length, prepareSeconds: (performance.now() - started) / 1000, ...describeRecords(records) };
}

/**
 * The first EVENT_RECORDS full messages in send order, keeping each group's order: a group
 * contributes a prefix of its messages (only its last one can be short, closed by the linger).
 */
export function pickRecords(messages: CapturedMessage[]): CapturedMessage[] {
  const closed = new Set<string>();
  const picked: CapturedMessage[] = [];
  for (const m of messages) {
    if (picked.length === EVENT_RECORDS) break;
    if (closed.has(m.group)) continue;
    if (Buffer.byteLength(m.body) < FULL_MESSAGE_BYTES) {
      closed.add(m.group);
      continue;
    }
    picked.push(m);
  }
  if (picked.length < EVENT_RECORDS) {
    throw new Error(`the streamer sent only ${picked.length} full messages (of ${messages.length}); the event needs ${EVENT_RECORDS}`);
  }
  return picked;
}

/** What the event holds: its size and the mix of changes. */
function describeRecords(records: CapturedMessage[]): Omit<TransformEventInfo, 'recordsPath' | 'workloadChanges' | 'capturedMessages' | 'prepareSeconds'> {
  const ops: Record<string, number> = {};
  let changes = 0;
  for (const r of records) {
    const batch = JSON.parse(r.body) as { changes: { op: string; before: unknown }[] };
    for (const c of batch.changes) {
      changes++;
      const kind = c.op === 'update' || c.op === 'delete' ? `${c.op}${c.before === null ? '' : ' with before'}` : c.op;
      ops[kind] = (ops[kind] ?? 0) + 1;
    }
  }
  const bytes = records.map((r) => Buffer.byteLength(r.body));
  return {
    records: records.length,
    groups: [...new Set(records.map((r) => r.group))],
    changes,
    ops,
    bodyKib: bytes.reduce((a, b) => a + b, 0) / 1024,
    minBodyKib: Math.min(...bytes) / 1024,
    maxBodyKib: Math.max(...bytes) / 1024,
  };
}

const LABELS: Record<TransformOutputs, string> = {
  instant: 'transform → outputs that accept at once (stand-ins)',
  sdk: 'transform → AWS SDK clients: SQS emulator + EventBridge stand-in',
};

/** Every run: the stand-in outputs (with the latency probe), then the SDK clients. */
export async function runTransformScenarios(ctx: TransformBenchContext, event: TransformEventInfo): Promise<TransformMeasurement[]> {
  const measurements: TransformMeasurement[] = [];
  for (let run = 1; run <= ctx.runs; run++) {
    for (const outputs of ['instant', 'sdk'] as const) {
      ctx.checkInterrupted();
      process.stderr.write(`  run ${run}: ${LABELS[outputs]} … `);
      try {
        const job: TransformJob = {
          recordsPath: event.recordsPath,
          outputs,
          warmup: WARMUP_INVOCATIONS,
          iterations: ctx.iterations,
          busName: BUS_NAME,
          ...(outputs === 'instant'
            ? { latencyProbeMs: LATENCY_PROBE_MS, latencyProbeInvocations: LATENCY_PROBE_INVOCATIONS }
            : {
                sqsEndpoint: ctx.sqsEndpoint,
                eventBridgeEndpoint: ctx.eventBridgeEndpoint,
                // A fresh queue per run: the same records give the same deduplication ids.
                nodesQueueUrl: await createFifoQueue(ctx.sqsEndpoint, `bench-nodes-run${run}`),
              }),
          ...(ctx.profilePath ? { profilePath: ctx.profilePath(`transform-${outputs}-run${run}`) } : {}),
        };
        const r = await runNodeChild<TransformResult>(ctx.scripts['run-transform'] as string, job, {
          timeoutMs: 120_000 + ctx.iterations * 5_000,
          nodeFlags: [...LAMBDA_1024_NODE_FLAGS, ...(ctx.profilePath ? ['--enable-source-maps'] : [])],
        });
        ctx.checkInterrupted();
        measurements.push({ scenario: `transform-${outputs}`, label: LABELS[outputs], outputs, run, result: r });
        process.stderr.write(
          `${Math.round(r.changesPerInvocation / (r.medianMs / 1000)).toLocaleString('en-US')} changes/s, ${r.medianMs.toFixed(1)} ms/invocation, ${r.cpuMsPerInvocation.toFixed(1)} CPU ms, ${r.peakRssMb.toFixed(0)} MB\n`,
        );
      } catch (err) {
        ctx.checkInterrupted(); // a child killed by the cleanup is no measurement
        const error = err instanceof Error ? err.message : String(err);
        measurements.push({ scenario: `transform-${outputs}`, label: LABELS[outputs], outputs, run, error });
        process.stderr.write(`FAILED\n${error}\n`);
      }
    }
  }
  return measurements;
}
