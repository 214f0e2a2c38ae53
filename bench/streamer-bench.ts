/**
 * `npm run bench [-- --changes N --runs N --no-big --big-rows N --no-transform --no-bootstrap --bootstrap-rows N --only S --profile]`
 *
 * Starts its own PostgreSQL (embedded, wal_level=logical) and SQS emulator (a child process),
 * builds a backlog of row changes behind one pgoutput slot per measured reader — every slot is
 * created before the backlog, so each reader drains the identical WAL — and measures:
 *  - the ceiling: pg_recvlogical into /dev/null, and a Node reader that only counts;
 *  - the real streamer into a sink that accepts every SendMessageBatch at once;
 *  - the real streamer into the SQS emulator;
 *  - the streamer (and the Node ceiling) on one transaction of a million inserts;
 *  - the transform Lambda's handler on a realistic SQS event, and its Lambda cost
 *    (transform-bench.ts);
 *  - the bootstrap: the initial load of a million-row table by the streamer, beside COPY of the
 *    same table, and under a live load on another table (bootstrap-bench.ts).
 * Each reader runs in its own process (peak RSS is its own). Prints Markdown tables with the
 * targets and writes the same as JSON to bench/results/latest.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { parseLsn } from '#core/position.ts';
import { STREAMER_NODE_OPTIONS } from '#streamer/node-options.ts';
import { createTestDatabase, startTestPostgres, type TestPostgres } from '#test/helpers/postgres.ts';
import { approximateMessageCount, createFifoQueue, sqsClient } from '#test/helpers/sqs.ts';
import {
  BIG_PUBLICATION,
  BOOT_TABLE,
  LIVE_CLOCK_COLUMN,
  LIVE_TABLE,
  ORDERS_PUBLICATION,
  ROWS_PER_TX,
  createSchema,
  createSlots,
  currentWalLsn,
  generateBacklog,
  generateBigTransaction,
  planBacklog,
} from './backlog.ts';
import { BENCH_ROOT, bundleChildren, liveChildren, runNodeChild, runProcess } from './child.ts';
import {
  bootstrapMarkdown,
  evaluateBootstrapTargets,
  LIVE_RATE,
  runBootstrapScenarios,
  summarizeBootstrap,
  type BootstrapBenchContext,
  type BootstrapInfo,
  type BootstrapMeasurement,
} from './bootstrap-bench.ts';
import { LAMBDA_ARM64_US_EAST_1 } from './lambda-cost.ts';
import type { RawReaderJob, RawReaderResult, ReaderVariant } from './raw-reader.ts';
import { printProfile } from './profile.ts';
import { evaluateTargets, markdown, summarize, type Measurement, type ScenarioGroup } from './report.ts';
import type { SinkKind, StreamerJob, StreamerResult } from './run-streamer.ts';
import { LAMBDA_1024_NODE_FLAGS, prepareTransformEvent, runTransformScenarios, type TransformBenchContext } from './transform-bench.ts';
import { summarizeTransform, transformMarkdown, type TransformEventInfo, type TransformMeasurement } from './transform-report.ts';

const USAGE = `usage: npm run bench -- [--changes N] [--runs N] [--no-big] [--big-rows N] [--no-transform] [--no-bootstrap] [--bootstrap-rows N] [--only S] [--profile]
  --changes N    row changes in the backlog, in 100-row transactions (default 200000)
  --runs N       measure every scenario N times and report medians (default 1)
  --no-big       skip the one-big-transaction scenario
  --big-rows N   rows of the big transaction (default 1000000)
  --no-transform skip the transform scenarios (handler throughput and Lambda cost)
  --transform-iterations N  timed invocations per transform run, after 10 untimed (default 50)
  --no-bootstrap skip the bootstrap scenarios
  --bootstrap-rows N  rows of the table the bootstrap scenarios load (default 1000000)
  --only S       run only these scenario groups, comma-separated: backlog, big, transform, bootstrap
                 (the results file then holds only their figures)
  --out PATH     where the results go (default bench/results/latest.json)
  --profile      CPU-profile the streamer and transform children (slower); profiles in bench/results/profiles/
  --node-flags=S extra Node flags for the streamer children, after its production ones (streamer/node-options.ts)
  --streamer-config=JSON  settings merged into the streamer's config, e.g. '{"maxConcurrentSends":4}'`;

interface Options {
  changes: number;
  runs: number;
  big: boolean;
  bigRows: number;
  transform: boolean;
  transformIterations: number;
  bootstrap: boolean;
  bootstrapRows: number;
  backlog: boolean;
  profile: boolean;
  out: string;
  nodeFlags: string[];
  streamerConfig: Record<string, unknown>;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      changes: { type: 'string', default: '200000' },
      runs: { type: 'string', default: '1' },
      'no-big': { type: 'boolean', default: false },
      'big-rows': { type: 'string', default: '1000000' },
      'no-transform': { type: 'boolean', default: false },
      'transform-iterations': { type: 'string', default: '50' },
      'no-bootstrap': { type: 'boolean', default: false },
      'bootstrap-rows': { type: 'string', default: '1000000' },
      only: { type: 'string' },
      out: { type: 'string', default: path.join('bench', 'results', 'latest.json') },
      profile: { type: 'boolean', default: false },
      'node-flags': { type: 'string', default: '' },
      'streamer-config': { type: 'string', default: '{}' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, text: string, min: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got '${text}'\n${USAGE}`);
    return n;
  };
  const groups = ['backlog', 'big', 'transform', 'bootstrap'];
  const only = values.only === undefined ? undefined : values.only.split(',').map((g) => g.trim()).filter(Boolean);
  for (const g of only ?? []) if (!groups.includes(g)) throw new Error(`--only takes ${groups.join(', ')}; got '${g}'\n${USAGE}`);
  const selected = (group: string) => only === undefined || only.includes(group);
  return {
    changes: int('changes', values.changes, 100),
    runs: int('runs', values.runs, 1),
    backlog: selected('backlog'),
    big: !values['no-big'] && selected('big'),
    bigRows: int('big-rows', values['big-rows'], 1),
    transform: !values['no-transform'] && selected('transform'),
    transformIterations: int('transform-iterations', values['transform-iterations'], 1),
    bootstrap: !values['no-bootstrap'] && selected('bootstrap'),
    bootstrapRows: int('bootstrap-rows', values['bootstrap-rows'], 1),
    profile: values.profile,
    out: path.resolve(BENCH_ROOT, values.out),
    nodeFlags: values['node-flags'].split(/\s+/).filter(Boolean),
    streamerConfig: jsonObject('streamer-config', values['streamer-config']),
  };
}

function jsonObject(name: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`--${name} is not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`--${name} must be a JSON object`);
  return value as Record<string, unknown>;
}

const RESULTS_DIR = path.join(BENCH_ROOT, 'bench', 'results');
const SERVER_FLAGS = [
  // Nothing but the bench writes WAL or competes for the two cores while it measures.
  'autovacuum=off',
  'max_wal_size=8GB',
  'checkpoint_timeout=1h',
];

// --- lifecycle ------------------------------------------------------------------------------

let postgres: TestPostgres | undefined;
let fauxqs: ChildProcess | undefined;
let cleaning: Promise<void> | undefined;
/** Set by SIGINT/SIGTERM: stop measuring, write no results, leave once cleaned up. */
let interrupted = false;

class Interrupted extends Error {}

function checkInterrupted(): void {
  if (interrupted) throw new Interrupted('interrupted');
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const child of liveChildren) child.kill('SIGKILL');
    fauxqs?.kill('SIGTERM');
    await postgres?.stop().catch((err: unknown) => console.error('stopping PostgreSQL failed:', err));
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    interrupted = true;
    console.error(`\n${signal}: stopping the bench`);
    void cleanup().finally(() => process.exit(130));
  });
}

/** The SQS emulator's and the EventBridge stand-in's endpoints (both in one child process). */
async function startFauxqs(): Promise<{ endpoint: string; eventBridgeEndpoint: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/fauxqs-server.ts'], {
    cwd: BENCH_ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  fauxqs = child;
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the SQS emulator did not start within 30 s')), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the SQS emulator exited early (${code})`));
    });
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0] ?? '';
      if (!out.includes('\n')) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line) as { endpoint: string; eventBridgeEndpoint: string });
      } catch {
        reject(new Error(`unexpected output from the SQS emulator: ${line}`));
      }
    });
  });
}

// --- pg_recvlogical -------------------------------------------------------------------------

/** The newest pg_recvlogical under /usr/lib/postgresql/<v>/bin, else the one on PATH. */
function findPgRecvlogical(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(path.join(root, v, 'bin', 'pg_recvlogical')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return path.join(root, versions[0], 'bin', 'pg_recvlogical');
  }
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const candidate = path.join(dir, 'pg_recvlogical');
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

async function runPgRecvlogical(
  binary: string,
  dbUrl: string,
  slot: string,
  endLsn: string,
): Promise<{ seconds: number; peakRssMb?: number; cpuSeconds?: number }> {
  const url = new URL(dbUrl);
  const conninfo = `host=${url.hostname} port=${url.port} dbname=${decodeURIComponent(url.pathname.slice(1))} user=${decodeURIComponent(url.username)}`;
  const args = [
    '--start', '-d', conninfo, '-S', slot, '-f', '/dev/null', '-F', '0', '--no-loop', '--endpos', endLsn,
    '-o', 'proto_version=1', '-o', `publication_names=${ORDERS_PUBLICATION}`,
  ];
  // GNU time reports the child's peak RSS and CPU time; without it the bench still measures the time.
  const time = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
  const started = performance.now();
  const result = await runProcess(time ?? binary, time ? ['-f', 'BENCH_MAXRSS_KB=%M BENCH_CPU=%U+%S', binary, ...args] : args, {
    timeoutMs: 300_000,
    env: { PGPASSWORD: decodeURIComponent(url.password) },
  });
  const seconds = (performance.now() - started) / 1000;
  if (result.code !== 0) throw new Error(`pg_recvlogical exited with ${result.signal ?? result.code}: ${result.stderr.trim()}`);
  const rss = /BENCH_MAXRSS_KB=(\d+)/.exec(result.stderr);
  const cpu = /BENCH_CPU=([\d.]+)\+([\d.]+)/.exec(result.stderr);
  return {
    seconds,
    ...(rss ? { peakRssMb: Number(rss[1]) / 1024 } : {}),
    ...(cpu ? { cpuSeconds: Number(cpu[1]) + Number(cpu[2]) } : {}),
  };
}

// --- scenarios ------------------------------------------------------------------------------

interface Context {
  opts: Options;
  /** Bundled child scripts by name. */
  scripts: Record<string, string>;
  dbUrl: string;
  sqsEndpoint: string;
  recvlogical: string | undefined;
  measurements: Measurement[];
}

function timeoutFor(changes: number): number {
  return 120_000 + changes; // a millisecond per change on top: 1k changes/s would be a failure anyway
}

async function measure(
  ctx: Context,
  base: Omit<Measurement, 'changes' | 'seconds' | 'run'>,
  run: number,
  fn: () => Promise<Omit<Measurement, 'scenario' | 'label' | 'group' | 'kind' | 'run'>>,
): Promise<Measurement> {
  checkInterrupted();
  process.stderr.write(`  run ${run}: ${base.label} … `);
  let m: Measurement;
  try {
    m = { ...base, run, ...(await fn()) };
    checkInterrupted();
    process.stderr.write(`${Math.round(m.changes / m.seconds).toLocaleString('en-US')} changes/s in ${m.seconds.toFixed(2)} s${m.peakRssMb ? `, ${m.peakRssMb.toFixed(0)} MB` : ''}\n`);
  } catch (err) {
    checkInterrupted(); // a child killed by the cleanup is no measurement
    const error = err instanceof Error ? err.message : String(err);
    m = { ...base, run, changes: 0, seconds: NaN, error };
    process.stderr.write(`FAILED\n${error}\n`);
  }
  ctx.measurements.push(m);
  return m;
}

async function rawReader(ctx: Context, slot: string, publication: string, expectedChanges: number, variant: ReaderVariant): Promise<RawReaderResult> {
  const job: RawReaderJob = { url: ctx.dbUrl, slot, publication, expectedChanges, variant };
  return runNodeChild<RawReaderResult>(ctx.scripts['raw-reader'] as string, job, { timeoutMs: timeoutFor(expectedChanges) });
}

async function streamerRun(
  ctx: Context,
  opts: { slot: string; publication: string; table: string; sink: SinkKind; expectedChanges: number; endLsn: string; queueUrl: string; profileName: string },
): Promise<StreamerResult> {
  const job: StreamerJob = {
    config: {
      sourceId: 'bench',
      database: { url: ctx.dbUrl },
      tables: [opts.table],
      slotName: opts.slot,
      publicationName: opts.publication,
      managePublication: false,
      queueUrl: opts.queueUrl,
      ...(opts.sink === 'sqs' ? { sqsEndpoint: ctx.sqsEndpoint } : {}),
      ...ctx.opts.streamerConfig,
    },
    sink: opts.sink,
    expectedChanges: opts.expectedChanges,
    endLsn: opts.endLsn,
    ...(ctx.opts.profile ? { profilePath: path.join(RESULTS_DIR, 'profiles', `${opts.profileName}.cpuprofile`) } : {}),
  };
  return runNodeChild<StreamerResult>(ctx.scripts['run-streamer'] as string, job, {
    timeoutMs: timeoutFor(opts.expectedChanges),
    // The streamer's production flags first (later ones win), then the caller's; source maps
    // let the profiler name .ts files and lines.
    nodeFlags: [...STREAMER_NODE_OPTIONS, ...ctx.opts.nodeFlags, ...(ctx.opts.profile ? ['--enable-source-maps'] : [])],
  });
}

const DISCARD_QUEUE_URL = 'http://127.0.0.1:9/000000000000/bench-discard.fifo';

function readerMeasurement(r: RawReaderResult): Omit<Measurement, 'scenario' | 'label' | 'group' | 'kind' | 'run'> {
  return {
    changes: r.changes,
    seconds: r.seconds,
    peakRssMb: r.peakRssMb,
    cpuSeconds: r.cpuSeconds,
    details: { endLsn: r.endLsn, xlogMessages: r.xlogMessages, payloadMb: r.payloadBytes / 2 ** 20, socketReads: r.socketReads, avgReadKb: r.payloadBytes / 1024 / r.socketReads },
  };
}

function streamerMeasurement(r: StreamerResult, expectedChanges: number): Omit<Measurement, 'scenario' | 'label' | 'group' | 'kind' | 'run'> {
  if (r.changes !== expectedChanges) throw new Error(`streamer decoded ${r.changes} changes, expected ${expectedChanges}`);
  const { changes, seconds, peakRssMb, cpuSeconds, profile, ...details } = r;
  if (profile) printProfile(profile);
  return { changes, seconds, peakRssMb, cpuSeconds, details: profile ? { ...details, profile } : details };
}

const SLOT_KINDS = ['node_coalescing', 'node_eager', 'recvlogical', 'discard', 'sqs'] as const;
const BIG_SLOT_KINDS = ['node_coalescing', 'discard'] as const;

function slotName(kind: string, run: number, big = false): string {
  return `bench_${big ? 'big_' : ''}${kind}_${run}`;
}

async function backlogRun(ctx: Context, run: number, expectedChanges: number, known: { endLsn?: string }): Promise<void> {
  const group: ScenarioGroup = 'backlog';
  for (const variant of ['coalescing', 'eager'] as const) {
    const m = await measure(ctx, { scenario: `ceiling-node-${variant}`, label: `ceiling: Node reader, ${variant}`, group, kind: 'ceiling' }, run, async () => {
      const r = await rawReader(ctx, slotName(`node_${variant}`, run), ORDERS_PUBLICATION, expectedChanges, variant);
      if (known.endLsn !== undefined && r.endLsn !== known.endLsn) throw new Error(`the backlog ended at ${r.endLsn}, another reader saw ${known.endLsn}`);
      return readerMeasurement(r);
    });
    if (m.error === undefined) known.endLsn ??= m.details?.endLsn as string;
  }
  const endLsn = known.endLsn;
  if (endLsn === undefined) throw new Error('no Node reader reached the end of the backlog, so its end LSN is unknown');

  const recvlogical = ctx.recvlogical;
  await measure(ctx, { scenario: 'ceiling-pg_recvlogical', label: 'ceiling: pg_recvlogical → /dev/null', group, kind: 'ceiling' }, run, async () => {
    if (!recvlogical) throw new Error('pg_recvlogical not found on PATH or under /usr/lib/postgresql/*/bin');
    const r = await runPgRecvlogical(recvlogical, ctx.dbUrl, slotName('recvlogical', run), endLsn);
    return { changes: expectedChanges, ...r };
  });

  await measure(ctx, { scenario: 'streamer-discard', label: 'streamer → discard sink', group, kind: 'streamer' }, run, async () => {
    const r = await streamerRun(ctx, {
      slot: slotName('discard', run), publication: ORDERS_PUBLICATION, table: 'public.orders', sink: 'discard',
      expectedChanges, endLsn, queueUrl: DISCARD_QUEUE_URL, profileName: `discard-run${run}`,
    });
    return streamerMeasurement(r, expectedChanges);
  });

  await measure(ctx, { scenario: 'streamer-sqs', label: 'streamer → SQS emulator (fauxqs)', group, kind: 'streamer' }, run, async () => {
    // A fresh queue per run: the same positions give the same deduplication ids.
    const queueUrl = await createFifoQueue(ctx.sqsEndpoint, `bench-run${run}`);
    const r = await streamerRun(ctx, {
      slot: slotName('sqs', run), publication: ORDERS_PUBLICATION, table: 'public.orders', sink: 'sqs',
      expectedChanges, endLsn, queueUrl, profileName: `sqs-run${run}`,
    });
    const client = sqsClient(ctx.sqsEndpoint);
    try {
      const queued = await approximateMessageCount(client, queueUrl);
      if (queued !== r.messages) throw new Error(`the queue holds ${queued} messages, the streamer sent ${r.messages}`);
    } finally {
      client.destroy();
    }
    return streamerMeasurement(r, expectedChanges);
  });
}

async function bigRun(ctx: Context, run: number, rows: number, known: { endLsn?: string }): Promise<void> {
  const group: ScenarioGroup = 'big';
  const label = `${(rows / 1e6).toLocaleString('en-US')}M-row transaction`;
  const m = await measure(ctx, { scenario: 'big-ceiling-node-coalescing', label: `ceiling: Node reader, coalescing (${label})`, group, kind: 'ceiling' }, run, async () =>
    readerMeasurement(await rawReader(ctx, slotName('node_coalescing', run, true), BIG_PUBLICATION, rows, 'coalescing')),
  );
  if (m.error === undefined) known.endLsn ??= m.details?.endLsn as string;
  const endLsn = known.endLsn;
  if (endLsn === undefined) throw new Error('the Node reader did not reach the end of the big transaction');
  await measure(ctx, { scenario: 'big-streamer-discard', label: `streamer → discard sink (${label})`, group, kind: 'streamer' }, run, async () => {
    const r = await streamerRun(ctx, {
      slot: slotName('discard', run, true), publication: BIG_PUBLICATION, table: 'public.big_items', sink: 'discard',
      expectedChanges: rows, endLsn, queueUrl: DISCARD_QUEUE_URL, profileName: `big-discard-run${run}`,
    });
    return streamerMeasurement(r, rows);
  });
}

/** Which code was measured: the commit, and files of the measured code changed since. */
async function gitState(): Promise<{ commit: string; uncommitted: string[] } | null> {
  try {
    const head = await runProcess('git', ['rev-parse', 'HEAD'], { timeoutMs: 10_000 });
    const status = await runProcess('git', ['status', '--porcelain', '--', 'streamer', 'functions', 'bench'], { timeoutMs: 10_000 });
    if (head.code !== 0) return null;
    return { commit: head.stdout.trim(), uncommitted: status.stdout.split('\n').filter(Boolean).map((l) => l.trim()) };
  } catch {
    return null;
  }
}

// --- main -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const benchStarted = performance.now();
  const loadAtStart = os.loadavg();
  if ((loadAtStart[0] as number) > 0.5) {
    console.error(`warning: load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} — other work on this machine will skew the figures`);
  }
  const plan = planBacklog(opts.changes);
  console.error(
    `pgrelay bench: ${opts.runs} run(s)${opts.backlog ? `, ${plan.changes.toLocaleString('en-US')} changes in ${plan.changes / ROWS_PER_TX} transactions` : ''}` +
      `${opts.big ? `, big transaction of ${opts.bigRows.toLocaleString('en-US')} rows` : ''}${opts.transform ? ', transform' : ''}` +
      `${opts.bootstrap ? `, bootstrap of ${opts.bootstrapRows.toLocaleString('en-US')} rows` : ''}`,
  );

  // Known (the AWS SDK warns on Node 20), and it would land in the middle of the progress lines; children inherit it.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // The bench's own server: embedded unless the caller forces a backend; extra flags also keep
  // startTestPostgres from using PGRELAY_TEST_DATABASE_URL.
  process.env.PGRELAY_TEST_POSTGRES ??= 'embedded';
  // allSettled: when one fails, what the other started must still be stopped by cleanup().
  const [pgStarted, sqsStarted] = await Promise.allSettled([
    startTestPostgres({ flags: SERVER_FLAGS }).then((server) => (postgres = server)),
    startFauxqs(),
  ]);
  if (pgStarted.status === 'rejected') throw pgStarted.reason;
  if (sqsStarted.status === 'rejected') throw sqsStarted.reason;
  const pgServer = pgStarted.value;
  const { endpoint: sqsEndpoint, eventBridgeEndpoint } = sqsStarted.value;
  const db = await createTestDatabase(pgServer.url, 'bench');
  const recvlogical = findPgRecvlogical();
  const scripts = await bundleChildren({
    'raw-reader': 'bench/raw-reader.ts',
    'run-streamer': 'bench/run-streamer.ts',
    'run-transform': 'bench/run-transform.ts',
    'run-bootstrap': 'bench/run-bootstrap.ts',
  });
  const ctx: Context = { opts, scripts, dbUrl: db.url, sqsEndpoint, recvlogical, measurements: [] };

  const admin = new pg.Client({ connectionString: db.url });
  admin.on('error', () => undefined);
  await admin.connect();
  const serverVersion = ((await admin.query<{ v: string }>('SELECT version() AS v')).rows[0] as { v: string }).v;
  const recvlogicalVersion = recvlogical
    ? (await runProcess(recvlogical, ['--version'], { timeoutMs: 10_000 })).stdout.trim()
    : undefined;
  console.error(`server: ${serverVersion}\npg_recvlogical: ${recvlogicalVersion ?? 'not found'}\nSQS emulator: ${sqsEndpoint}`);

  await createSchema(admin);
  const runs = Array.from({ length: opts.runs }, (_, i) => i + 1);
  let backlog: Record<string, unknown> | undefined;
  let t: number;
  if (opts.backlog) {
    await createSlots(admin, runs.flatMap((r) => SLOT_KINDS.map((k) => slotName(k, r))));
    const backlogStartLsn = await currentWalLsn(admin);
    t = performance.now();
    await generateBacklog(admin, plan);
    const backlogSeconds = (performance.now() - t) / 1000;
    const backlogEndLsn = await currentWalLsn(admin);
    const backlogWalMb = Number(parseLsn(backlogEndLsn) - parseLsn(backlogStartLsn)) / 2 ** 20;
    console.error(`backlog: ${plan.changes.toLocaleString('en-US')} changes, ${backlogWalMb.toFixed(1)} MB of WAL, generated in ${backlogSeconds.toFixed(1)} s`);

    const backlogKnown: { endLsn?: string } = {};
    for (const run of runs) await backlogRun(ctx, run, plan.changes, backlogKnown);
    backlog = { ...plan, generationSeconds: backlogSeconds, walMb: backlogWalMb, endLsn: backlogKnown.endLsn, walEndAfterGeneration: backlogEndLsn };
  }

  let big: Record<string, unknown> | undefined;
  if (opts.big) {
    await createSlots(admin, runs.flatMap((r) => BIG_SLOT_KINDS.map((k) => slotName(k, r, true))));
    const bigStartLsn = await currentWalLsn(admin);
    t = performance.now();
    await generateBigTransaction(admin, opts.bigRows);
    const bigSeconds = (performance.now() - t) / 1000;
    const bigWalMb = Number(parseLsn(await currentWalLsn(admin)) - parseLsn(bigStartLsn)) / 2 ** 20;
    console.error(`big transaction: ${opts.bigRows.toLocaleString('en-US')} inserts, ${bigWalMb.toFixed(1)} MB of WAL, generated in ${bigSeconds.toFixed(1)} s`);
    const bigKnown: { endLsn?: string } = {};
    for (const run of runs) await bigRun(ctx, run, opts.bigRows, bigKnown);
    big = { rows: opts.bigRows, generationSeconds: bigSeconds, walMb: bigWalMb, endLsn: bigKnown.endLsn };
  }

  let transform: { event: TransformEventInfo; measurements: TransformMeasurement[] } | undefined;
  let transformError: string | undefined;
  if (opts.transform) {
    const tctx: TransformBenchContext = {
      scripts, dbUrl: db.url, sqsEndpoint, eventBridgeEndpoint, runs: opts.runs, iterations: opts.transformIterations, checkInterrupted,
      ...(opts.profile ? { profilePath: (name: string) => path.join(RESULTS_DIR, 'profiles', `${name}.cpuprofile`) } : {}),
    };
    try {
      const event = await prepareTransformEvent(tctx, admin);
      console.error(
        `transform event: ${event.records} records of ${event.groups.length} groups, ${event.changes.toLocaleString('en-US')} changes, ${(event.bodyKib / 1024).toFixed(2)} MiB, ` +
          `from ${event.capturedMessages} messages the streamer sent for ${event.workloadChanges.toLocaleString('en-US')} mixed changes (${event.prepareSeconds.toFixed(1)} s)`,
      );
      transform = { event, measurements: await runTransformScenarios(tctx, event) };
      for (const m of transform.measurements) if (m.result?.profile) printProfile(m.result.profile);
    } catch (err) {
      checkInterrupted();
      // The streamer figures still stand; the report says why the transform's are missing.
      transformError = err instanceof Error ? err.message : String(err);
      console.error(`transform scenarios FAILED: ${transformError}`);
    }
  }

  let bootstrap: { info: BootstrapInfo; measurements: BootstrapMeasurement[] } | undefined;
  let bootstrapError: string | undefined;
  if (opts.bootstrap) {
    const bctx: BootstrapBenchContext = {
      scripts, dbUrl: db.url, sqsEndpoint, rows: opts.bootstrapRows, runs: opts.runs, nodeFlags: opts.nodeFlags,
      streamerConfig: opts.streamerConfig, checkInterrupted,
      ...(opts.profile ? { profilePath: (name: string) => path.join(RESULTS_DIR, 'profiles', `${name}.cpuprofile`) } : {}),
    };
    try {
      bootstrap = await runBootstrapScenarios(bctx, admin);
    } catch (err) {
      checkInterrupted();
      bootstrapError = err instanceof Error ? err.message : String(err);
      console.error(`bootstrap scenarios FAILED: ${bootstrapError}`);
    }
  }
  await admin.end();
  checkInterrupted();

  const rows = summarize(ctx.measurements);
  const targets = evaluateTargets(rows);
  const table = rows.length > 0 ? markdown(rows, targets) : undefined;
  if (table) {
    console.log(`\n${table}\n`);
    console.log(
      `Medians of ${opts.runs} run(s); peak RSS is the highest over runs, of the reader's own process. ` +
        `Ratio: changes/s over the best ceiling on the same WAL.${opts.profile ? ' PROFILED RUN: the streamer rows carry profiler overhead.' : ''}`,
    );
  }
  const transformRows = transform ? summarizeTransform(transform.measurements) : undefined;
  const transformTable = transform && transformRows ? transformMarkdown(transformRows, transform.event) : undefined;
  if (transformTable) {
    console.log(`\n${transformTable}\n`);
    console.log(
      `Per invocation: median of ${opts.transformIterations} warm invocations (JSON.parse of the event + Transform.handle), median over runs; ` +
        `CPU counts every thread of the child; Node runs with Lambda's heap flags for 1024 MB (${LAMBDA_1024_NODE_FLAGS.join(' ')}).${opts.profile ? ' PROFILED RUN: the transform rows carry profiler overhead.' : ''}`,
    );
  }

  const bootstrapRows = bootstrap ? summarizeBootstrap(bootstrap.measurements) : undefined;
  const bootstrapTargets = bootstrapRows ? evaluateBootstrapTargets(bootstrapRows) : undefined;
  const bootstrapTable = bootstrapRows && bootstrapTargets ? bootstrapMarkdown(bootstrapRows, bootstrapTargets) : undefined;
  if (bootstrapTable && bootstrap) {
    console.log(`\n${bootstrapTable}\n`);
    console.log(
      `${bootstrap.info.rows.toLocaleString('en-US')} rows (${bootstrap.info.tableMb.toFixed(0)} MB). Streamer rows: from the request row to state done (the state row's timestamps), ` +
        `which the streamer writes after SQS accepted every row and the completed mark in every partition; medians of ${opts.runs} run(s), ` +
        `peak RSS and retained WAL the highest. COPY by ${bootstrap.info.copyReader}. Live delay: written (clock_timestamp()) → accepted by the sink, ` +
        `rows written during the load.${opts.profile ? ' PROFILED RUN: the streamer rows carry profiler overhead.' : ''}`,
    );
  }

  const report = {
    generatedAt: new Date().toISOString(),
    git: await gitState(),
    method: {
      slots: 'one pgoutput slot per reader and run, all created before the WAL they drain',
      ceilingNode: 'pg Client (replication=database) counting Insert/Update/Delete payloads until the Commit that completes the expected changes; coalescing pauses reading 1 ms after a read under 32 KiB',
      ceilingPgRecvlogical: 'pg_recvlogical -o proto_version=1 --endpos <end LSN of the last commit> -f /dev/null',
      streamerDone: 'changes decoded >= expected AND stats().confirmedLsn >= end LSN of the last commit (only reached once SQS accepted everything before it); clock from run(), setup and the last batches linger included',
      processes: 'every reader in its own process (streamer children bundled with esbuild, no tsx loader); fauxqs in its own process',
      aggregation: 'median seconds over runs; peak RSS = highest over runs (getrusage maxRSS of the reader process)',
    },
    options: { ...opts, out: path.relative(BENCH_ROOT, opts.out) },
    machine: {
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      platform: `${os.platform()} ${os.release()}`,
      loadAverageAtStart: loadAtStart,
      loadAverageAtEnd: os.loadavg(),
    },
    postgres: { version: serverVersion, backend: pgServer.backend, flags: SERVER_FLAGS },
    pgRecvlogical: recvlogicalVersion ?? null,
    backlog: backlog ?? null,
    big: big ?? null,
    transform: transform
      ? {
          method: {
            event: 'the real streamer (4 partitions, 256 KiB messages) on an interleaved workload of the orders table; the first 10 full messages in send order, as the SQS event the FIFO event source builds',
            invocation: 'JSON.parse of the event document, then Transform.handle(Records), on one warm Transform; 10 untimed invocations first',
            nodeFlags: LAMBDA_1024_NODE_FLAGS,
            instant: 'nodes-queue SQS client whose SendMessageBatch succeeds at once; the real EventBridgeOutput over a client whose PutEvents succeeds at once',
            sdk: 'createTransform with AWS SDK v3 clients to fauxqs (nodes queue) and the EventBridge stand-in (test/helpers/fake-eventbridge.ts), both in another process on loopback',
            latencyProbe: 'stand-ins answering every call after a fixed delay: (median with delay − median without) / delay = calls waited for in sequence',
            cost: 'duration = CPU × 1769 / memory MB (at most 1769); $ = invocations × (duration × memory GB × GB-s price + request price); see bench/lambda-cost.ts',
          },
          price: LAMBDA_ARM64_US_EAST_1,
          event: transform.event,
          summary: transformRows,
          measurements: transform.measurements,
          markdown: transformTable,
        }
      : transformError !== undefined
        ? { error: transformError }
        : null,
    bootstrap: bootstrap && bootstrapRows
      ? {
          method: {
            table: `${BOOT_TABLE}: the backlog's orders row shape, ids 1..N, VACUUM (FREEZE, ANALYZE) after loading; one untimed COPY first, so every reader finds it in the page cache`,
            request: 'requestBootstrap (reason operator) into the state schema while the streamer streams (its slot created just before, bootstrap.pollIntervalMs 100, every other setting default)',
            done: "state 'done' in the state row: the streamer writes it after SQS accepted every chunk and the bootstrap.completed mark in every partition; seconds = finished_at − requested_at (the row's timestamps), so the ≤ 0.1 s wait for the poll is included",
            ceiling: `${bootstrap.info.copyReader}: COPY (SELECT * FROM ${BOOT_TABLE} ORDER BY id) TO STDOUT`,
            retainedWal: `pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) of the slot, sampled every 50 ms from the request to done; max`,
            live: `${LIVE_TABLE}: ${LIVE_RATE} rows/s in a transaction every 5 ms, each row's ${LIVE_CLOCK_COLUMN} = clock_timestamp() (its insert, just before its commit); the measuring discard sink finds the column in each body it accepts and takes accepted − written; rows written from the request to done count; those written in the 2 s before the request (no load) are the baseline`,
            sinks: 'discard: an SQS client whose SendMessageBatch succeeds at once (bench/accepting-sqs.ts); sqs: fauxqs in its own process',
            processes: 'the streamer in its own process (bundled, production Node flags, then --node-flags: info.streamerNodeFlags); the bench process writes the request, polls the state row every 20 ms, samples the slot and runs the live writer',
          },
          info: bootstrap.info,
          summary: bootstrapRows,
          targets: bootstrapTargets,
          measurements: bootstrap.measurements,
          markdown: bootstrapTable,
        }
      : bootstrapError !== undefined
        ? { error: bootstrapError }
        : null,
    summary: rows,
    targets: [...targets, ...(bootstrapTargets ?? [])],
    measurements: ctx.measurements,
    markdown: table ?? null,
    benchSeconds: (performance.now() - benchStarted) / 1000,
  };
  await mkdir(path.dirname(opts.out), { recursive: true });
  await writeFile(opts.out, `${JSON.stringify(report, null, 2)}\n`);
  console.error(`results: ${path.relative(BENCH_ROOT, opts.out)} (bench took ${report.benchSeconds.toFixed(0)} s)`);
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  if (interrupted) exitCode = 130;
  else {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    exitCode = 1;
  }
} finally {
  await cleanup();
}
process.exit(exitCode);
