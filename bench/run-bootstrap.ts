/**
 * Child process: the real streamer (config → ConnectionProvider → Streamer) while the bench
 * loads a table through it (bootstrap-bench.ts). The parent writes the load request and watches
 * the state schema; this process only runs the streamer and measures itself, so its peak RSS is
 * the streamer's. Sinks:
 *  - `discard`: an SQS client that accepts every SendMessageBatch at once (the pipeline's own cost);
 *  - `sqs`: the SQS emulator;
 *  - `measure`: the discard sink, which also finds every live row in the bodies it accepts (by its
 *    clock column, LIVE_CLOCK_COLUMN) and records when it was written and when it was accepted.
 *
 * Talks to the parent in JSON lines: says `{"event":"streaming"}` once the session streams;
 * takes `{"cmd":"load-start"}` (CPU time, and the profile, count from here), `{"cmd":"status"}`
 * (answers `{"event":"status",…}`) and `{"cmd":"stop","fromMs":…,"toMs":…}`: the live rows written
 * in that window are the ones measured "during the load"; prints the result and exits.
 */
import type { SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs';
import { parseStreamerConfig, type StreamerConfigInput } from '#core/config.ts';
import { ConnectionProvider } from '#shared/connection.ts';
import { entryBody, entryPieces } from '#shared/sqs-batch-body.ts';
import { createLogger } from '#streamer/log.ts';
import { Streamer } from '#streamer/streamer.ts';
import { acceptingSqsClient } from './accepting-sqs.ts';
import { LIVE_CLOCK_COLUMN } from './backlog.ts';
import { exitWithParent, finish, jobOf, onParentMessage, peakRssMb, say } from './child.ts';
import { startProfiler, type ProfileSummary } from './profile.ts';

export type BootstrapSinkKind = 'discard' | 'sqs' | 'measure';

export interface BootstrapJob {
  config: StreamerConfigInput;
  sink: BootstrapSinkKind;
  /** Write a CPU profile of the load (from load-start to stop) here. */
  profilePath?: string;
}

export interface DelaySummary {
  rows: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export interface BootstrapRunResult {
  sink: BootstrapSinkKind;
  peakRssMb: number;
  /** RSS once the modules are loaded, before run(). */
  startRssMb: number;
  /** CPU time (user + system) of this process from load-start to stop. */
  cpuSeconds: number;
  maxHeapUsedMb: number;
  maxExternalMb: number;
  maxInFlightMb: number;
  pausedSamples: number;
  samples: number;
  /** Changes the streamer handed to the batcher: snapshot rows, the load's marks, live changes. */
  changes: number;
  messages: number;
  requests: number;
  bodyMb: number;
  sessions: number;
  /** `measure`: live rows written in the stop window (during the load), and before it (idle streaming). */
  live?: { seen: number; during: DelaySummary; before: DelaySummary };
  profile?: ProfileSummary;
}

const POLL_MS = 5;
const MIB = 2 ** 20;
const CLOCK_NEEDLE = `"${LIVE_CLOCK_COLUMN}":"`;

/** Written and accepted times (epoch ms) of every live row the measuring sink saw. */
const written: number[] = [];
const accepted: number[] = [];

function measureEntries(entries: SendMessageBatchRequestEntry[]): void {
  const now = performance.timeOrigin + performance.now();
  // Each change is one part of its body: scanned part by part, the body is never joined.
  for (const body of entries.flatMap((e) => entryPieces(e)?.parts ?? [entryBody(e)])) {
    let at = body.indexOf(CLOCK_NEEDLE);
    while (at >= 0) {
      const from = at + CLOCK_NEEDLE.length;
      const to = body.indexOf('"', from);
      const ms = Date.parse(body.slice(from, to));
      if (!Number.isFinite(ms)) throw new Error(`unparsable live clock value ${body.slice(from, to)}`);
      written.push(ms);
      accepted.push(now);
      at = body.indexOf(CLOCK_NEEDLE, to);
    }
  }
}

function summarizeDelays(keep: (writtenMs: number) => boolean): DelaySummary {
  const delays: number[] = [];
  for (let i = 0; i < written.length; i++) if (keep(written[i] as number)) delays.push((accepted[i] as number) - (written[i] as number));
  delays.sort((a, b) => a - b);
  const at = (q: number) => (delays.length === 0 ? NaN : (delays[Math.min(delays.length - 1, Math.ceil(q * delays.length) - 1)] as number));
  return {
    rows: delays.length,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: delays.length === 0 ? NaN : (delays[delays.length - 1] as number),
    meanMs: delays.length === 0 ? NaN : delays.reduce((a, b) => a + b, 0) / delays.length,
  };
}

async function main(): Promise<void> {
  exitWithParent();
  const job = jobOf<BootstrapJob>();
  const config = parseStreamerConfig(job.config);
  const sqs =
    job.sink === 'sqs'
      ? (await import('#streamer/aws-clients.ts')).sqsClientFor(config, {})
      : acceptingSqsClient(job.sink === 'measure' ? measureEntries : undefined);
  let streaming = false;
  const log = createLogger({
    level: 'info',
    write: (line) => {
      if (!streaming && line.includes('"msg":"streaming"')) {
        streaming = true;
        say({ event: 'streaming' });
      }
      // Errors and warnings to stderr (the parent shows its tail on failure); the load's info lines too, they are few.
      if (!line.includes('"level":"info"') || line.includes('bootstrap')) process.stderr.write(`${line}\n`);
    },
  });
  const streamer = new Streamer({ config, log, sqs, connections: new ConnectionProvider(config.database) });
  const startRssMb = process.memoryUsage.rss() / MIB;
  let cpuAtLoad = process.cpuUsage();
  let profiler: Awaited<ReturnType<typeof startProfiler>> | undefined;
  let maxHeapUsed = 0;
  let maxExternal = 0;
  let maxInFlight = 0;
  let pausedSamples = 0;
  let samples = 0;
  const running = streamer.run();
  const timer = setInterval(() => {
    const s = streamer.stats();
    samples++;
    const mem = process.memoryUsage();
    if (mem.heapUsed > maxHeapUsed) maxHeapUsed = mem.heapUsed;
    if (mem.external > maxExternal) maxExternal = mem.external;
    if (s.inFlightBytes > maxInFlight) maxInFlight = s.inFlightBytes;
    if (s.paused) pausedSamples++;
  }, POLL_MS);

  const stopped = new Promise<{ fromMs: number; toMs: number }>((resolve) => {
    onParentMessage((m) => {
      if (m.cmd === 'load-start') {
        cpuAtLoad = process.cpuUsage();
        if (job.profilePath && !profiler) void startProfiler().then((p) => (profiler = p));
      } else if (m.cmd === 'status') {
        const s = streamer.stats();
        say({ event: 'status', id: m.id, liveSeen: written.length, changes: s.changes, confirmedLsn: s.confirmedLsn, sessions: s.sessions });
      } else if (m.cmd === 'stop') {
        resolve({ fromMs: Number(m.fromMs), toMs: Number(m.toMs) });
      }
    });
  });
  const window = await Promise.race([
    stopped,
    running.then(
      () => Promise.reject(new Error('the streamer stopped before the bench was done')),
      (err: unknown) => Promise.reject(err),
    ),
  ]);
  clearInterval(timer);
  const cpu = process.cpuUsage(cpuAtLoad);
  const profile = profiler && job.profilePath ? await profiler.stop(job.profilePath) : undefined;
  const stats = streamer.stats();
  const result: BootstrapRunResult = {
    sink: job.sink,
    peakRssMb: peakRssMb(),
    startRssMb,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    maxHeapUsedMb: maxHeapUsed / MIB,
    maxExternalMb: maxExternal / MIB,
    maxInFlightMb: maxInFlight / MIB,
    pausedSamples,
    samples,
    changes: stats.changes,
    messages: stats.messages,
    requests: stats.requests,
    bodyMb: stats.bytes / MIB,
    sessions: stats.sessions,
    ...(job.sink === 'measure'
      ? {
          live: {
            seen: written.length,
            during: summarizeDelays((w) => w >= window.fromMs && w <= window.toMs),
            before: summarizeDelays((w) => w < window.fromMs),
          },
        }
      : {}),
    ...(profile ? { profile } : {}),
  };
  await streamer.stop('bench done');
  await running.catch(() => undefined);
  finish(result);
}

main().catch((err: unknown) => {
  process.stderr.write(`run-bootstrap: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
