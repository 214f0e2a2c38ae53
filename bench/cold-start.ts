/**
 * Cold start of the two Lambda bundles the construct deploys (dist/bundles, as built by
 * scripts/bundles.ts), the way Lambda starts them: a fresh Node process imports `index.mjs`
 * with only environment variables for configuration, then handles one event.
 *
 *   npm run bench:cold-start [-- --runs N --bundles DIR --out FILE]
 *
 * For each run and each function, in alternation: a new `node --enable-source-maps` process
 * reports `performance.now()` (milliseconds since the process started) when the bundle's
 * module is loaded (init) and when the first invocation has returned (init + first event).
 * The transform handles one SQS record holding a one-change batch, publishing to a local
 * EventBridge stand-in and the SQS emulator; the monitor checks a real slot on a local
 * PostgreSQL. Medians and p90 are printed; with --out, all samples are written as JSON.
 * `--bundles DIR` measures another build (e.g. a worktree of an earlier commit).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { stringifyLossless } from '#core/values/lossless-json.ts';
import { startSqsEmulator } from '#dev/sqs-emulator.ts';
import { startFakeEventBridge } from '#test/helpers/fake-eventbridge.ts';
import { createTestDatabase, startTestPostgres, withClient } from '#test/helpers/postgres.ts';
import { createFifoQueue } from '#test/helpers/sqs.ts';
import { BENCH_ROOT } from './child.ts';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '15' }, bundles: { type: 'string', default: path.join(BENCH_ROOT, 'dist', 'bundles') }, out: { type: 'string' } },
});
const RUNS = Number(values.runs);
const BUNDLES = path.resolve(values.bundles as string);

interface Sample {
  initMs: number;
  firstMs: number;
}

const RUNNER = `
const t0 = performance.now();
const { handler } = await import(process.env.BUNDLE);
const init = performance.now();
const event = JSON.parse(process.env.EVENT);
const context = { awsRequestId: 'cold-start-1', functionName: 'bench', functionVersion: '$LATEST', invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:bench', memoryLimitInMB: '1024', logGroupName: '/aws/lambda/bench', logStreamName: 'x', callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => 30000, done() {}, fail() {}, succeed() {} };
const result = await handler(event, context);
const first = performance.now();
process.stderr.write('COLDSTART ' + JSON.stringify({ initMs: init, firstMs: first, importMs: init - t0, result }) + '\\n');
process.exit(0);
`;

function runOnce(runner: string, bundle: string, env: Record<string, string>): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--enable-source-maps', runner], {
      env: { PATH: process.env.PATH ?? '', ...env, BUNDLE: bundle, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      const line = err.split('\n').find((l) => l.startsWith('COLDSTART '));
      if (code !== 0 || line === undefined) return reject(new Error(`cold start run failed (exit ${code}):\n${err}`));
      const r = JSON.parse(line.slice('COLDSTART '.length)) as Sample & { result: unknown };
      const failures = (r.result as { batchItemFailures?: unknown[] } | undefined)?.batchItemFailures;
      if (failures !== undefined && failures.length > 0) return reject(new Error(`the transform reported failures: ${JSON.stringify(r.result)}`));
      resolve({ initMs: r.initMs, firstMs: r.firstMs });
    });
  });
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] as number;
};

async function main(): Promise<void> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'pgrelay-cold-'));
  const runner = path.join(scratch, 'runner.mjs');
  writeFileSync(runner, RUNNER);
  const postgres = await startTestPostgres();
  const sqs = await startSqsEmulator();
  const eventBridge = await startFakeEventBridge({ buses: ['bench-bus'] });
  try {
    const nodesUrl = await createFifoQueue(sqs.endpoint, 'cold-nodes');
    const transformEnv = {
      PGRELAY_TRANSFORM_CONFIG: JSON.stringify({
        sourceId: 'bench', tables: ['public.orders'], region: 'us-east-1', sqsEndpoint: sqs.endpoint, eventBridgeEndpoint: eventBridge.endpoint,
        outputs: { eventBridge: { busName: 'bench-bus' }, nodesQueue: { queueUrl: nodesUrl } },
      }),
    };
    const change = { v: 1, op: 'insert', schema: 'public', table: 'orders', key: { id: '42' }, after: { id: '42', total: '12.50' }, before: null, position: { commitLsn: '0/1000', seq: 0 }, tx: { xid: 7, commitLsn: '0/1000', commitTime: '2026-11-21T10:00:00.000000Z' } };
    const record = (i: number) => ({
      messageId: `m${i}`, receiptHandle: 'r', body: stringifyLossless({ v: 1, partition: 0, changes: [{ ...change, position: { commitLsn: '0/1000', seq: i } }] }),
      attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0', SenderId: 'bench', ApproximateFirstReceiveTimestamp: '0', MessageGroupId: 'p0', MessageDeduplicationId: `d${i}`, SequenceNumber: String(i) },
      messageAttributes: {}, md5OfBody: '', eventSource: 'aws:sqs', eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:changes.fifo', awsRegion: 'us-east-1',
    });
    const db = await createTestDatabase(postgres.url, 'cold_monitor');
    await withClient(db.url, (c) => c.query('CREATE TABLE orders (id int PRIMARY KEY, total numeric)'));
    await withClient(db.url, (c) => c.query("SELECT pg_create_logical_replication_slot('pgrelay_bench', 'pgoutput')"));
    const monitorEnv = {
      PGRELAY_MONITOR_CONFIG: JSON.stringify({ sourceId: 'bench', database: { url: db.url }, tables: ['public.orders'], slotName: 'pgrelay_bench', publicationName: 'pgrelay_bench', region: 'us-east-1' }),
    };
    const samples: Record<'transform' | 'monitor', Sample[]> = { transform: [], monitor: [] };
    for (let i = 0; i < RUNS; i++) {
      samples.transform.push(await runOnce(runner, path.join(BUNDLES, 'transform', 'index.mjs'), { ...transformEnv, EVENT: JSON.stringify({ Records: [record(i)] }) }));
      samples.monitor.push(await runOnce(runner, path.join(BUNDLES, 'monitor', 'index.mjs'), { ...monitorEnv, EVENT: JSON.stringify({ 'detail-type': 'Scheduled Event', source: 'aws.events', detail: {} }) }));
    }
    process.stdout.write(`cold start of ${BUNDLES}, ${RUNS} runs each (ms since process start)\n`);
    process.stdout.write('| function | init median | init p90 | init + first event median | init + first event p90 |\n|---|---:|---:|---:|---:|\n');
    for (const [name, xs] of Object.entries(samples)) {
      const init = xs.map((x) => x.initMs);
      const first = xs.map((x) => x.firstMs);
      process.stdout.write(`| ${name} | ${quantile(init, 0.5).toFixed(0)} | ${quantile(init, 0.9).toFixed(0)} | ${quantile(first, 0.5).toFixed(0)} | ${quantile(first, 0.9).toFixed(0)} |\n`);
    }
    if (values.out) writeFileSync(values.out, JSON.stringify({ bundles: BUNDLES, runs: RUNS, samples }, null, 2));
  } finally {
    await eventBridge.close();
    await sqs.stop();
    await postgres.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
