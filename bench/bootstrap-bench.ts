/**
 * The bootstrap scenarios of `npm run bench`: the initial load of a table of N orders rows
 * (the backlog's row shape) by the real streamer, requested the way `pgrelay bootstrap` does it
 * (a row in the state schema), timed from the request to the state `done`, which the streamer
 * writes only after SQS accepted every row and the `bootstrap.completed` mark in every partition.
 *
 *  - ceiling: `COPY (SELECT * FROM boot_orders ORDER BY id) TO STDOUT` by psql into /dev/null
 *    (or, without psql, the same SELECT through node-postgres in this process);
 *  - the streamer into the discard sink, and into the SQS emulator;
 *  - the streamer into the measuring discard sink while a paced writer inserts 2,000 rows/s into
 *    `live_orders` (10-row transactions every 5 ms): each live row carries the time it was
 *    written, and the sink compares it with the moment it accepted the row.
 * While a load runs, the bench samples the slot every 50 ms: retained WAL is
 * pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), what PostgreSQL must keep for the slot.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { readBootstrapRequests, requestBootstrap } from '#shared/bootstrap-state.ts';
import { ensureStateSchema } from '#shared/source-state.ts';
import { STREAMER_NODE_OPTIONS } from '#streamer/node-options.ts';
import { approximateMessageCount, createFifoQueue, sqsClient } from '#test/helpers/sqs.ts';
import { BOOT_PUBLICATION, BOOT_TABLE, LIVE_TABLE, createBootstrapTables, insertLiveRows } from './backlog.ts';
import { runProcess, startNodeChild } from './child.ts';
import { printProfile } from './profile.ts';
import { median, type TargetResult } from './report.ts';
import type { BootstrapJob, BootstrapRunResult, BootstrapSinkKind, DelaySummary } from './run-bootstrap.ts';

export const STATE_SCHEMA = 'pgrelay';
/** Live rows per second during the live scenario, written in `LIVE_ROWS_PER_TX`-row transactions. */
export const LIVE_RATE = 2_000;
const LIVE_TICK_MS = 5;
/** Idle streaming of the live rows before the request: the delay without a load, for comparison. */
const LIVE_LEAD_MS = 2_000;
const SLOT_SAMPLE_MS = 50;
const STATE_POLL_MS = 20;
const DISCARD_QUEUE_URL = 'http://127.0.0.1:9/000000000000/bench-discard.fifo';

export const BOOTSTRAP_TARGETS = {
  discardRowsPerSecond: 200_000,
  discardRatioToCopy: 0.2,
  sqsRowsPerSecond: 80_000,
  liveP99Ms: 1_000,
  peakRssMb: 200,
  retainedWalMb: 256,
};

export interface BootstrapBenchContext {
  scripts: Record<string, string>;
  dbUrl: string;
  sqsEndpoint: string;
  rows: number;
  runs: number;
  nodeFlags: string[];
  streamerConfig: Record<string, unknown>;
  profilePath?: (name: string) => string;
  checkInterrupted(): void;
}

export type BootstrapScenario = 'boot-copy' | 'boot-discard' | 'boot-sqs' | 'boot-live';

export interface BootstrapMeasurement {
  scenario: BootstrapScenario;
  label: string;
  kind: 'ceiling' | 'streamer';
  run: number;
  rows: number;
  /** Request → done (streamer rows, from the state row's timestamps); the whole COPY (ceiling). */
  seconds: number;
  peakRssMb?: number;
  cpuSeconds?: number;
  /** Highest sampled pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) of the slot during the load. */
  maxRetainedWalMb?: number;
  /** Live rows written during the load, delay from written to accepted by the sink. */
  live?: DelaySummary & { before: DelaySummary; written: number; seen: number; ratePerSecond: number };
  details?: Record<string, unknown>;
  error?: string;
}

export interface BootstrapInfo {
  rows: number;
  generationSeconds: number;
  tableMb: number;
  indexMb: number;
  copyReader: string;
  liveRate: number;
  liveRowsPerTx: number;
  /** What the streamer children ran with: production flags, then --node-flags. */
  streamerNodeFlags: string[];
  streamerConfig: Record<string, unknown>;
}

const LABELS: Record<BootstrapScenario, string> = {
  'boot-copy': 'ceiling: COPY (SELECT * … ORDER BY id) TO STDOUT → /dev/null',
  'boot-discard': 'streamer bootstrap → discard sink',
  'boot-sqs': 'streamer bootstrap → SQS emulator (fauxqs)',
  'boot-live': `streamer bootstrap → discard sink, ${LIVE_RATE.toLocaleString('en-US')} live changes/s on another table`,
};

/** psql next to pg_recvlogical (/usr/lib/postgresql/<v>/bin), else on PATH. */
export function findPsql(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(path.join(root, v, 'bin', 'psql')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return path.join(root, versions[0], 'bin', 'psql');
  }
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const candidate = path.join(dir, 'psql');
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Builds the table, then measures every bootstrap scenario `runs` times. */
export async function runBootstrapScenarios(ctx: BootstrapBenchContext, admin: pg.Client): Promise<{ info: BootstrapInfo; measurements: BootstrapMeasurement[] }> {
  const t = performance.now();
  await createBootstrapTables(admin, ctx.rows);
  await ensureStateSchema(admin, STATE_SCHEMA);
  const generationSeconds = (performance.now() - t) / 1000;
  const size = (
    await admin.query<{ table: string; index: string }>(`SELECT pg_table_size($1)::text AS table, pg_indexes_size($1)::text AS index`, [BOOT_TABLE])
  ).rows[0] as { table: string; index: string };
  const psql = findPsql();
  const info: BootstrapInfo = {
    rows: ctx.rows,
    generationSeconds,
    tableMb: Number(size.table) / 2 ** 20,
    indexMb: Number(size.index) / 2 ** 20,
    copyReader: psql ? `psql (${(await runProcess(psql, ['--version'], { timeoutMs: 10_000 })).stdout.trim()}) -o /dev/null` : 'node-postgres SELECT, rowMode array, raw text (no psql found)',
    liveRate: LIVE_RATE,
    liveRowsPerTx: (LIVE_RATE * LIVE_TICK_MS) / 1000,
    streamerNodeFlags: [...STREAMER_NODE_OPTIONS, ...ctx.nodeFlags],
    streamerConfig: { bootstrap: { pollIntervalMs: 100 }, ...ctx.streamerConfig },
  };
  console.error(`bootstrap table: ${ctx.rows.toLocaleString('en-US')} rows, ${info.tableMb.toFixed(0)} MB + ${info.indexMb.toFixed(0)} MB of index, built in ${generationSeconds.toFixed(1)} s; COPY by ${info.copyReader}`);
  // One untimed COPY: both readers then find the table in the page cache.
  await copyTable(ctx, psql);
  const measurements: BootstrapMeasurement[] = [];
  for (let run = 1; run <= ctx.runs; run++) {
    measurements.push(await measure(ctx, 'boot-copy', run, async () => copyMeasurement(ctx, psql)));
    for (const scenario of ['boot-discard', 'boot-sqs', 'boot-live'] as const) {
      measurements.push(await measure(ctx, scenario, run, () => streamerLoad(ctx, admin, scenario, run)));
    }
  }
  return { info, measurements };
}

type Measured = Omit<BootstrapMeasurement, 'scenario' | 'label' | 'kind' | 'run'>;

async function measure(ctx: BootstrapBenchContext, scenario: BootstrapScenario, run: number, fn: () => Promise<Measured>): Promise<BootstrapMeasurement> {
  ctx.checkInterrupted();
  const base = { scenario, label: LABELS[scenario], kind: scenario === 'boot-copy' ? ('ceiling' as const) : ('streamer' as const), run };
  process.stderr.write(`  run ${run}: ${base.label} … `);
  try {
    const m: BootstrapMeasurement = { ...base, ...(await fn()) };
    ctx.checkInterrupted();
    process.stderr.write(
      `${fmtInt(m.rows / m.seconds)} rows/s in ${m.seconds.toFixed(2)} s` +
        (m.peakRssMb !== undefined ? `, ${m.peakRssMb.toFixed(0)} MB` : '') +
        (m.maxRetainedWalMb !== undefined ? `, retained WAL ≤ ${m.maxRetainedWalMb.toFixed(1)} MiB` : '') +
        (m.live ? `, live delay p50 ${m.live.p50Ms.toFixed(0)} ms p99 ${m.live.p99Ms.toFixed(0)} ms max ${m.live.maxMs.toFixed(0)} ms` : '') +
        '\n',
    );
    return m;
  } catch (err) {
    ctx.checkInterrupted();
    const error = err instanceof Error ? err.message : String(err);
    process.stderr.write(`FAILED\n${error}\n`);
    return { ...base, rows: 0, seconds: NaN, error };
  }
}

// --- the ceiling ----------------------------------------------------------------------------

const COPY_SQL = `COPY (SELECT * FROM ${BOOT_TABLE} ORDER BY id) TO STDOUT`;

async function copyTable(ctx: BootstrapBenchContext, psql: string | undefined): Promise<{ seconds: number; peakRssMb?: number; cpuSeconds?: number; reader: string }> {
  if (!psql) {
    // No psql: the same rows as text through node-postgres, every value left unparsed.
    const client = new pg.Client({ connectionString: ctx.dbUrl, types: { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig });
    await client.connect();
    try {
      const started = performance.now();
      const { rows } = await client.query({ text: `SELECT * FROM ${BOOT_TABLE} ORDER BY id`, rowMode: 'array' });
      if (rows.length !== ctx.rows) throw new Error(`SELECT returned ${rows.length} rows, expected ${ctx.rows}`);
      return { seconds: (performance.now() - started) / 1000, reader: 'node-postgres' };
    } finally {
      await client.end();
    }
  }
  const url = new URL(ctx.dbUrl);
  const conninfo = `host=${url.hostname} port=${url.port} dbname=${decodeURIComponent(url.pathname.slice(1))} user=${decodeURIComponent(url.username)}`;
  const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', conninfo, '-o', '/dev/null', '-c', COPY_SQL];
  const time = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
  const started = performance.now();
  const result = await runProcess(time ?? psql, time ? ['-f', 'BENCH_MAXRSS_KB=%M BENCH_CPU=%U+%S', psql, ...args] : args, {
    timeoutMs: 600_000,
    env: { PGPASSWORD: decodeURIComponent(url.password) },
  });
  const seconds = (performance.now() - started) / 1000;
  if (result.code !== 0) throw new Error(`psql exited with ${result.signal ?? result.code}: ${result.stderr.trim()}`);
  const rss = /BENCH_MAXRSS_KB=(\d+)/.exec(result.stderr);
  const cpu = /BENCH_CPU=([\d.]+)\+([\d.]+)/.exec(result.stderr);
  return {
    seconds,
    reader: 'psql',
    ...(rss ? { peakRssMb: Number(rss[1]) / 1024 } : {}),
    ...(cpu ? { cpuSeconds: Number(cpu[1]) + Number(cpu[2]) } : {}),
  };
}

async function copyMeasurement(ctx: BootstrapBenchContext, psql: string | undefined): Promise<Measured> {
  const r = await copyTable(ctx, psql);
  return {
    rows: ctx.rows,
    seconds: r.seconds,
    ...(r.peakRssMb !== undefined ? { peakRssMb: r.peakRssMb } : {}),
    ...(r.cpuSeconds !== undefined ? { cpuSeconds: r.cpuSeconds } : {}),
    details: { reader: r.reader, sql: COPY_SQL },
  };
}

// --- the streamer ---------------------------------------------------------------------------

const SINKS: Record<Exclude<BootstrapScenario, 'boot-copy'>, BootstrapSinkKind> = { 'boot-discard': 'discard', 'boot-sqs': 'sqs', 'boot-live': 'measure' };

let liveNextId = 1;

async function streamerLoad(ctx: BootstrapBenchContext, admin: pg.Client, scenario: Exclude<BootstrapScenario, 'boot-copy'>, run: number): Promise<Measured> {
  const sink = SINKS[scenario];
  const slot = `bench_${scenario.replace('-', '_')}_${run}`;
  await admin.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  const queueUrl = sink === 'sqs' ? await createFifoQueue(ctx.sqsEndpoint, `bench-boot-run${run}`) : DISCARD_QUEUE_URL;
  const job: BootstrapJob = {
    config: {
      sourceId: 'bench',
      database: { url: ctx.dbUrl },
      tables: [`public.${BOOT_TABLE}`, `public.${LIVE_TABLE}`],
      slotName: slot,
      publicationName: BOOT_PUBLICATION,
      managePublication: false,
      stateSchema: STATE_SCHEMA,
      queueUrl,
      ...(sink === 'sqs' ? { sqsEndpoint: ctx.sqsEndpoint } : {}),
      ...ctx.streamerConfig,
      // The lowest poll interval the config allows, so the wait for the request is ≤ 0.1 s of the time measured.
      bootstrap: { pollIntervalMs: 100, ...(ctx.streamerConfig.bootstrap as Record<string, unknown> | undefined) },
    },
    sink,
    ...(ctx.profilePath ? { profilePath: ctx.profilePath(`${scenario}-run${run}`) } : {}),
  };
  const child = startNodeChild<BootstrapRunResult>(ctx.scripts['run-bootstrap'] as string, job, {
    timeoutMs: 180_000 + ctx.rows / 2, // 2k rows/s would be a failure anyway
    nodeFlags: [...STREAMER_NODE_OPTIONS, ...ctx.nodeFlags, ...(ctx.profilePath ? ['--enable-source-maps'] : [])],
  });
  const watcher = await connect(ctx.dbUrl);
  const progress = { rowsRead: 0 };
  let writer: LiveWriter | undefined;
  let sampler: SlotSampler | undefined;
  try {
    await child.next((m) => m.event === 'streaming');
    if (sink === 'measure') {
      writer = new LiveWriter(await connect(ctx.dbUrl), liveNextId);
      writer.start();
      await sleep(LIVE_LEAD_MS);
    }
    sampler = new SlotSampler(await connect(ctx.dbUrl), slot);
    sampler.start();
    child.send({ cmd: 'load-start' });
    const requestedMs = Date.now();
    await requestBootstrap(watcher, STATE_SCHEMA, slot, [`public.${BOOT_TABLE}`], { reason: 'operator', by: 'bench' });
    const request = await waitForDone(watcher, slot, child.result, 120_000 + ctx.rows / 2, progress);
    const doneMs = Date.now();
    const wal = await sampler.stop();
    sampler = undefined;
    let liveWritten = 0;
    let liveRate = 0;
    if (writer) {
      const w = await writer.stop();
      writer = undefined;
      liveNextId = w.nextId;
      liveWritten = w.rows;
      liveRate = w.rows / w.seconds;
      // Every live row written must have reached the sink before the delays are read.
      const deadline = performance.now() + 10_000;
      for (let asked = 1; ; asked++) {
        child.send({ cmd: 'status', id: asked });
        const status = await child.next((m) => m.event === 'status' && m.id === asked);
        if ((status.liveSeen as number) >= w.rows || performance.now() > deadline) break;
        await sleep(20);
      }
    }
    child.send({ cmd: 'stop', fromMs: requestedMs, toMs: doneMs });
    const r = await child.result;
    if (r.profile) printProfile(r.profile);
    if (request.rowsRead !== ctx.rows) throw new Error(`the load recorded ${request.rowsRead} rows, the table holds ${ctx.rows}`);
    if (sink === 'sqs') {
      const client = sqsClient(ctx.sqsEndpoint);
      try {
        const queued = await approximateMessageCount(client, queueUrl);
        if (queued !== r.messages) throw new Error(`the queue holds ${queued} messages, the streamer sent ${r.messages}`);
      } finally {
        client.destroy();
      }
    }
    if (r.live && r.live.seen < liveWritten) throw new Error(`the sink saw ${r.live.seen} of the ${liveWritten} live rows written`);
    const started = request.startedAt as Date;
    const finished = request.finishedAt as Date;
    const { profile, live, ...rest } = r;
    return {
      rows: request.rowsRead,
      seconds: (finished.getTime() - request.requestedAt.getTime()) / 1000,
      peakRssMb: r.peakRssMb,
      cpuSeconds: r.cpuSeconds,
      maxRetainedWalMb: wal.maxRetained / 2 ** 20,
      ...(live ? { live: { ...live.during, before: live.before, written: liveWritten, seen: live.seen, ratePerSecond: liveRate } } : {}),
      details: {
        ...rest,
        pickupSeconds: (started.getTime() - request.requestedAt.getTime()) / 1000,
        loadSeconds: (finished.getTime() - started.getTime()) / 1000,
        wallSeconds: (doneMs - requestedMs) / 1000,
        bytesRead: request.bytesRead,
        maxUnconfirmedWalMb: wal.maxUnconfirmed / 2 ** 20,
        walWrittenMb: wal.written / 2 ** 20,
        slotSamples: wal.samples,
        ...(profile ? { profile } : {}),
      },
    };
  } catch (err) {
    // A V8 abort prints pages of native stack; the table's line should say what happened and how far the load got.
    const text = err instanceof Error ? err.message : String(err);
    if (/JavaScript heap out of memory/.test(text)) {
      const limit = [...STREAMER_NODE_OPTIONS, ...ctx.nodeFlags].filter((f) => f.startsWith('--max-old-space-size')).pop() ?? 'Node default';
      const gcLines = text.split('\n').filter((l) => !/^\s*\d+: 0x|^\s*$|^-----|^<---|^\(Use `node/.test(l));
      throw new Error(`out of heap (V8: JavaScript heap out of memory, ${limit}) after ${progress.rowsRead.toLocaleString('en-US')} rows recorded as accepted\n${gcLines.join('\n')}`);
    }
    throw err;
  } finally {
    await writer?.stop().catch(() => undefined);
    await sampler?.stop().catch(() => undefined);
    child.send({ cmd: 'stop', fromMs: 0, toMs: 0 }); // a no-op once it stopped
    await child.result.catch(() => undefined);
    await watcher.end().catch(() => undefined);
    await dropSlot(admin, slot);
  }
}

/** Polls the state row until `done`; a failed or cancelled load, or the child's exit, ends it early. */
async function waitForDone(client: pg.Client, slot: string, childResult: Promise<unknown>, timeoutMs: number, progress: { rowsRead: number }) {
  let exited: unknown;
  childResult.then(
    () => (exited = new Error('the streamer exited before the load was done')),
    (err: unknown) => (exited = err),
  );
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const request = (await readBootstrapRequests(client, STATE_SCHEMA, slot)).get(`public.${BOOT_TABLE}`);
    progress.rowsRead = request?.rowsRead ?? 0;
    if (request?.state === 'done') return request;
    if (request?.state === 'failed' || request?.state === 'cancelled') throw new Error(`the load ended ${request.state}: ${request.detail}`);
    if (exited !== undefined) throw exited;
    if (performance.now() > deadline) throw new Error(`the load was not done after ${timeoutMs} ms (state ${request?.state}, ${request?.rowsRead} rows)`);
    await sleep(STATE_POLL_MS);
  }
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function dropSlot(admin: pg.Client, slot: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { rows } = await admin.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    if (rows.length === 0) return;
    if (!rows[0]?.active) {
      await admin.query('SELECT pg_drop_replication_slot($1)', [slot]);
      return;
    }
    await sleep(50);
  }
}

/** The slot's retained WAL (restart_lsn) and unconfirmed WAL (confirmed_flush_lsn), sampled. */
class SlotSampler {
  private maxRetained = 0;
  private maxUnconfirmed = 0;
  private samples = 0;
  private startLsn: string | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly client: pg.Client,
    private readonly slot: string,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopping) {
        await this.sample();
        await sleep(SLOT_SAMPLE_MS);
      }
      await this.sample();
    })();
  }

  private async sample(): Promise<void> {
    const { rows } = await this.client.query<{ now: string; retained: number | null; unconfirmed: number | null }>(
      `SELECT pg_current_wal_lsn()::text AS now, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained,
              pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8 AS unconfirmed
         FROM pg_replication_slots WHERE slot_name = $1`,
      [this.slot],
    );
    const r = rows[0];
    if (!r) return;
    this.startLsn ??= r.now;
    this.samples++;
    if ((r.retained ?? 0) > this.maxRetained) this.maxRetained = r.retained ?? 0;
    if ((r.unconfirmed ?? 0) > this.maxUnconfirmed) this.maxUnconfirmed = r.unconfirmed ?? 0;
  }

  async stop(): Promise<{ maxRetained: number; maxUnconfirmed: number; written: number; samples: number }> {
    this.stopping = true;
    try {
      await this.loop;
      const { rows } = await this.client.query<{ written: number }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8 AS written', [this.startLsn ?? '0/0']);
      return { maxRetained: this.maxRetained, maxUnconfirmed: this.maxUnconfirmed, written: rows[0]?.written ?? 0, samples: this.samples };
    } finally {
      await this.client.end().catch(() => undefined);
    }
  }
}

/**
 * Inserts LIVE_RATE rows a second into live_orders, in a transaction every LIVE_TICK_MS holding
 * the rows due by then (10 at the nominal pace; more after a slow statement, so the rate holds).
 */
class LiveWriter {
  private stopping = false;
  private loop: Promise<void> | undefined;
  private rows = 0;
  private started = 0;
  private ended = 0;
  private txs = 0;
  private maxStatementMs = 0;

  constructor(
    private readonly client: pg.Client,
    private readonly firstId: number,
  ) {}

  start(): void {
    this.started = performance.now();
    this.loop = (async () => {
      for (let tick = 1; !this.stopping; tick++) {
        const due = Math.floor(((performance.now() - this.started) * LIVE_RATE) / 1000);
        if (due > this.rows) {
          const t = performance.now();
          await insertLiveRows(this.client, this.firstId + this.rows, this.firstId + due - 1);
          this.maxStatementMs = Math.max(this.maxStatementMs, performance.now() - t);
          this.rows = due;
          this.txs++;
        }
        const wait = this.started + tick * LIVE_TICK_MS - performance.now();
        if (wait > 0) await sleep(wait);
      }
      this.ended = performance.now();
    })();
  }

  async stop(): Promise<{ rows: number; seconds: number; txs: number; maxStatementMs: number; nextId: number }> {
    this.stopping = true;
    try {
      await this.loop;
    } finally {
      await this.client.end().catch(() => undefined);
    }
    return { rows: this.rows, seconds: (this.ended - this.started) / 1000, txs: this.txs, maxStatementMs: this.maxStatementMs, nextId: this.firstId + this.rows };
  }
}

// --- report ---------------------------------------------------------------------------------

export interface BootstrapSummaryRow {
  scenario: BootstrapScenario;
  label: string;
  kind: 'ceiling' | 'streamer';
  runs: number;
  rows: number;
  /** Median over runs. */
  seconds: number;
  rowsPerSecond: number;
  ratioToCopy?: number;
  /** Highest over runs. */
  peakRssMb?: number;
  /** Median CPU time of the reader's process per row, µs (the streamer's: from the request to done). */
  cpuMicrosPerRow?: number;
  /** Highest over runs. */
  maxRetainedWalMb?: number;
  /** Live rows: medians of p50 and p99 over runs, highest max. */
  live?: { p50Ms: number; p99Ms: number; maxMs: number; rows: number; beforeP50Ms: number; beforeP99Ms: number; ratePerSecond: number };
  error?: string;
}

export function summarizeBootstrap(measurements: BootstrapMeasurement[]): BootstrapSummaryRow[] {
  const rows: BootstrapSummaryRow[] = [];
  for (const scenario of ['boot-copy', 'boot-discard', 'boot-sqs', 'boot-live'] as const) {
    const all = measurements.filter((m) => m.scenario === scenario);
    if (all.length === 0) continue;
    const first = all[0] as BootstrapMeasurement;
    const ok = all.filter((m) => m.error === undefined);
    if (ok.length === 0) {
      rows.push({ scenario, label: first.label, kind: first.kind, runs: 0, rows: 0, seconds: NaN, rowsPerSecond: NaN, error: first.error });
      continue;
    }
    const seconds = median(ok.map((m) => m.seconds));
    const n = median(ok.map((m) => m.rows));
    const rss = ok.flatMap((m) => (m.peakRssMb === undefined ? [] : [m.peakRssMb]));
    const cpu = ok.flatMap((m) => (m.cpuSeconds === undefined ? [] : [m.cpuSeconds]));
    const wal = ok.flatMap((m) => (m.maxRetainedWalMb === undefined ? [] : [m.maxRetainedWalMb]));
    const live = ok.flatMap((m) => (m.live ? [m.live] : []));
    rows.push({
      scenario,
      label: first.label,
      kind: first.kind,
      runs: ok.length,
      rows: n,
      seconds,
      rowsPerSecond: n / seconds,
      ...(rss.length > 0 ? { peakRssMb: Math.max(...rss) } : {}),
      ...(cpu.length > 0 ? { cpuMicrosPerRow: (median(cpu) * 1e6) / n } : {}),
      ...(wal.length > 0 ? { maxRetainedWalMb: Math.max(...wal) } : {}),
      ...(live.length > 0
        ? {
            live: {
              p50Ms: median(live.map((l) => l.p50Ms)),
              p99Ms: median(live.map((l) => l.p99Ms)),
              maxMs: Math.max(...live.map((l) => l.maxMs)),
              rows: median(live.map((l) => l.rows)),
              beforeP50Ms: median(live.map((l) => l.before.p50Ms)),
              beforeP99Ms: median(live.map((l) => l.before.p99Ms)),
              ratePerSecond: median(live.map((l) => l.ratePerSecond)),
            },
          }
        : {}),
      ...(ok.length < all.length ? { error: `${all.length - ok.length} run(s) failed: ${all.find((m) => m.error)?.error}` } : {}),
    });
  }
  const copy = rows.find((r) => r.scenario === 'boot-copy');
  if (copy && Number.isFinite(copy.rowsPerSecond)) for (const r of rows) if (Number.isFinite(r.rowsPerSecond)) r.ratioToCopy = r.rowsPerSecond / copy.rowsPerSecond;
  return rows;
}

export function evaluateBootstrapTargets(rows: BootstrapSummaryRow[]): TargetResult[] {
  const T = BOOTSTRAP_TARGETS;
  const find = (s: BootstrapScenario) => rows.find((r) => r.scenario === s);
  const rate = (r: BootstrapSummaryRow | undefined) => (r && Number.isFinite(r.rowsPerSecond) ? r.rowsPerSecond : NaN);
  const discard = find('boot-discard');
  const sqs = find('boot-sqs');
  const live = find('boot-live');
  const copy = find('boot-copy');
  const results: TargetResult[] = [
    { target: `bootstrap → discard ≥ ${fmtInt(T.discardRowsPerSecond)} rows/s`, measured: `${fmtInt(rate(discard))} rows/s`, pass: rate(discard) >= T.discardRowsPerSecond },
    {
      target: `bootstrap → discard ≥ ${T.discardRatioToCopy} × COPY`,
      measured: `${fmtRatio(discard?.ratioToCopy)} × ${copy ? `${fmtInt(copy.rowsPerSecond)} rows/s` : 'no COPY figure'}`,
      pass: (discard?.ratioToCopy ?? 0) >= T.discardRatioToCopy,
    },
    { target: `bootstrap → SQS emulator ≥ ${fmtInt(T.sqsRowsPerSecond)} rows/s`, measured: `${fmtInt(rate(sqs))} rows/s`, pass: rate(sqs) >= T.sqsRowsPerSecond },
    {
      target: `live changes during the load delayed ≤ ${T.liveP99Ms} ms at p99`,
      measured: live?.live ? `p99 ${live.live.p99Ms.toFixed(0)} ms (p50 ${live.live.p50Ms.toFixed(0)}, max ${live.live.maxMs.toFixed(0)})` : 'n/a',
      pass: live?.live !== undefined && live.live.p99Ms <= T.liveP99Ms,
    },
  ];
  for (const r of [discard, sqs, live]) {
    if (!r) continue;
    results.push({
      target: `peak RSS ≤ ${T.peakRssMb} MB: ${r.label}`,
      measured: r.peakRssMb === undefined ? 'n/a' : `${r.peakRssMb.toFixed(0)} MB`,
      pass: r.peakRssMb !== undefined && r.peakRssMb <= T.peakRssMb,
    });
  }
  for (const r of [discard, sqs, live]) {
    if (!r) continue;
    results.push({
      target: `slot's retained WAL ≤ ${T.retainedWalMb} MiB: ${r.label}`,
      measured: r.maxRetainedWalMb === undefined ? 'n/a' : `max ${r.maxRetainedWalMb.toFixed(1)} MiB`,
      pass: r.maxRetainedWalMb !== undefined && r.maxRetainedWalMb <= T.retainedWalMb,
    });
  }
  return results;
}

export function bootstrapMarkdown(rows: BootstrapSummaryRow[], targets: TargetResult[]): string {
  const lines = [
    '| bootstrap of the orders table | rows | seconds | rows/s | ratio to COPY | peak RSS MB | CPU µs/row | max retained WAL MiB | live delay p50 / p99 / max ms |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    if (r.runs === 0) {
      lines.push(`| ${r.label} | – | – | – | – | – | – | – | failed: ${(r.error ?? '').split('\n')[0]?.slice(0, 160)} |`);
      continue;
    }
    lines.push(
      `| ${r.label} | ${fmtInt(r.rows)} | ${r.seconds.toFixed(2)} | ${fmtInt(r.rowsPerSecond)} | ${fmtRatio(r.ratioToCopy)} | ${r.peakRssMb === undefined ? '–' : r.peakRssMb.toFixed(0)} | ` +
        `${r.cpuMicrosPerRow === undefined ? '–' : r.cpuMicrosPerRow.toFixed(1)} | ${r.maxRetainedWalMb === undefined ? '–' : r.maxRetainedWalMb.toFixed(1)} | ` +
        `${r.live ? `${r.live.p50Ms.toFixed(0)} / ${r.live.p99Ms.toFixed(0)} / ${r.live.maxMs.toFixed(0)}` : '–'} |`,
    );
  }
  lines.push('', '| target | measured | result |', '|---|---|---|');
  for (const t of targets) lines.push(`| ${t.target} | ${t.measured} | ${t.pass ? 'PASS' : 'FAIL'} |`);
  return lines.join('\n');
}

function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
}

function fmtRatio(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(2);
}
