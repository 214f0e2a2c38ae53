/**
 * Child process: the real streamer (config → ConnectionProvider → Streamer) draining one slot,
 * either into a sink that accepts every SendMessageBatch at once (`discard`: the pipeline's own
 * cost) or into the SQS emulator (`sqs`). `capture` is the discard sink that also keeps every
 * message it accepted and writes them to `capturePath` at the end: the transform bench's input,
 * byte for byte what the streamer puts on the changes queue.
 *
 * Done means: at least `expectedChanges` decoded AND the confirmed LSN at or past `endLsn`, the
 * end LSN of the backlog's last commit. The checkpoint confirms a commit's end LSN only after
 * SQS accepted every change at or before it, so that moment is exactly "everything delivered and
 * acknowledgeable" — no waiting for keepalives, which the server sends only when idle.
 * The clock runs from `streamer.run()` (connecting and preparing the source included) to then.
 */
import { entryBody } from '#shared/sqs-batch-body.ts';
import { acceptingSqsClient } from './accepting-sqs.ts';
import { writeFile } from 'node:fs/promises';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { parseStreamerConfig, type StreamerConfigInput } from '#core/config.ts';
import { parseLsn } from '#core/position.ts';
import { ConnectionProvider } from '#shared/connection.ts';
import { createLogger } from '#streamer/log.ts';
import { Streamer } from '#streamer/streamer.ts';
import { exitWithParent, finish, jobOf, peakRssMb } from './child.ts';
import { startProfiler, type ProfileSummary } from './profile.ts';

export type SinkKind = 'discard' | 'sqs' | 'capture';

/** A changes-queue message as the streamer sent it (what `capture` writes, in send order). */
export interface CapturedMessage {
  body: string;
  group: string;
  deduplicationId: string;
}

export interface StreamerJob {
  config: StreamerConfigInput;
  sink: SinkKind;
  expectedChanges: number;
  endLsn: string;
  /** Write a CPU profile (source-mapped to the .ts files) here. */
  profilePath?: string;
  /** `capture` sink: write the accepted messages here (JSON array of CapturedMessage). */
  capturePath?: string;
}

export interface StreamerResult {
  sink: SinkKind;
  changes: number;
  seconds: number;
  /** From run() to the 'streaming' log line: connect, source checks, type catalog. */
  setupSeconds: number;
  /** From run() to the first poll that saw every change decoded; the rest is the last batches' linger and delivery. */
  decodedSeconds: number;
  peakRssMb: number;
  /** CPU time (user + system) of this process while measured: steadier than wall time on a busy machine. */
  cpuSeconds: number;
  /** RSS once the modules are loaded, before run(): what the process costs doing nothing. */
  startRssMb: number;
  /** Highest sampled V8 heap in use, and memory outside it (Buffers, strings' backing stores). */
  maxHeapUsedMb: number;
  maxExternalMb: number;
  maxInFlightMb: number;
  pausedSamples: number;
  samples: number;
  messages: number;
  requests: number;
  bodyMb: number;
  confirmedLsn: string;
  profile?: ProfileSummary;
}

const POLL_MS = 5;
const MIB = 2 ** 20;

/** An SQS client whose SendMessageBatch succeeds at once for every entry; `captured` keeps them. */
function discardClient(captured?: CapturedMessage[]): SQSClient {
  return acceptingSqsClient(
    captured ? (entries) => entries.forEach((e) => captured.push({ body: entryBody(e), group: e.MessageGroupId ?? '', deduplicationId: e.MessageDeduplicationId ?? '' })) : undefined,
  );
}

async function main(): Promise<void> {
  exitWithParent();
  const job = jobOf<StreamerJob>();
  const config = parseStreamerConfig(job.config);
  const endLsn = parseLsn(job.endLsn);
  // Imported lazily so the bundler puts main.ts in its own chunk: its "am I the entry script"
  // check compares import.meta.url with argv[1], which inside a one-file bundle would be true.
  const captured: CapturedMessage[] | undefined = job.sink === 'capture' ? [] : undefined;
  const sqs = job.sink === 'sqs' ? (await import('#streamer/aws-clients.ts')).sqsClientFor(config, {}) : discardClient(captured);
  let streamingAt = 0;
  const log = createLogger({
    level: 'info',
    write: (line) => {
      if (streamingAt === 0 && line.includes('"msg":"streaming"')) streamingAt = performance.now();
      if (!line.includes('"level":"info"')) process.stderr.write(`${line}\n`);
    },
  });
  const streamer = new Streamer({ config, log, sqs, connections: new ConnectionProvider(config.database) });
  const profiler = job.profilePath ? await startProfiler() : undefined;

  const startRssMb = process.memoryUsage.rss() / MIB;
  const cpuAtStart = process.cpuUsage();
  const started = performance.now();
  const running = streamer.run();
  let maxHeapUsed = 0;
  let maxExternal = 0;
  let maxInFlight = 0;
  let pausedSamples = 0;
  let samples = 0;
  let decodedAt = 0;
  const finished = await new Promise<number>((resolve, reject) => {
    running.then(() => reject(new Error('streamer stopped before the backlog was delivered')), reject);
    const timer = setInterval(() => {
      const s = streamer.stats();
      samples++;
      const mem = process.memoryUsage();
      if (mem.heapUsed > maxHeapUsed) maxHeapUsed = mem.heapUsed;
      if (mem.external > maxExternal) maxExternal = mem.external;
      if (s.inFlightBytes > maxInFlight) maxInFlight = s.inFlightBytes;
      if (s.paused) pausedSamples++;
      if (decodedAt === 0 && s.changes >= job.expectedChanges) decodedAt = performance.now();
      if (s.changes >= job.expectedChanges && parseLsn(s.confirmedLsn) >= endLsn) {
        clearInterval(timer);
        resolve(performance.now());
      }
    }, POLL_MS);
  });
  const cpu = process.cpuUsage(cpuAtStart);
  const profile = profiler ? await profiler.stop(job.profilePath as string) : undefined;
  const stats = streamer.stats();
  const result: StreamerResult = {
    sink: job.sink,
    changes: stats.changes,
    seconds: (finished - started) / 1000,
    setupSeconds: streamingAt > 0 ? (streamingAt - started) / 1000 : 0,
    decodedSeconds: (decodedAt - started) / 1000,
    peakRssMb: peakRssMb(),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    startRssMb,
    maxHeapUsedMb: maxHeapUsed / MIB,
    maxExternalMb: maxExternal / MIB,
    maxInFlightMb: maxInFlight / MIB,
    pausedSamples,
    samples,
    messages: stats.messages,
    requests: stats.requests,
    bodyMb: stats.bytes / MIB,
    confirmedLsn: stats.confirmedLsn,
    ...(profile ? { profile } : {}),
  };
  await streamer.stop('bench done');
  await running.catch(() => undefined);
  if (captured) {
    if (!job.capturePath) throw new Error('the capture sink needs capturePath');
    await writeFile(job.capturePath, JSON.stringify(captured));
  }
  finish(result);
}

main().catch((err: unknown) => {
  process.stderr.write(`run-streamer: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
