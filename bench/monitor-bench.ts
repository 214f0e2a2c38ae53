/**
 * `npm run bench:monitor [-- --runs N --tables N]`
 *
 * How long one run of the slot guardian takes (functions/monitor: connect, state schema,
 * status reads, observations, heartbeat, one EMF document), against its own embedded
 * PostgreSQL with a slot that holds WAL and a publication of N tables. The first run also
 * creates the state schema and requests every table's initial load; later runs are the
 * steady state of a deployment. The Lambda's timeout is 30 s and each statement is capped
 * at 5 s; the issue asks for runs that finish in seconds.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { ConnectionProvider } from '#shared/connection.ts';
import { parseMonitorConfig } from '#monitor/config.ts';
import { runMonitor } from '#monitor/handler.ts';
import { createTestDatabase, startTestPostgres } from '#test/helpers/postgres.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '50' }, tables: { type: 'string', default: '20' } } });
const runs = Number(values.runs);
const tableCount = Number(values.tables);

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

const server = await startTestPostgres();
try {
  const db = await createTestDatabase(server.url, 'bench_monitor');
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const tables = Array.from({ length: tableCount }, (_, i) => `public.t${i}`);
  for (const t of tables) await client.query(`CREATE TABLE ${t} (id bigint PRIMARY KEY, body text)`);
  await client.query(`CREATE PUBLICATION bench_pub FOR TABLE ${tables.join(', ')}`);
  await client.query(`SELECT pg_create_logical_replication_slot('bench_slot', 'pgoutput')`);
  // WAL the slot holds: 50 MB nobody consumes.
  await client.query(`INSERT INTO t0 SELECT g, repeat('x', 500) FROM generate_series(1, 100000) AS g`);
  await client.end();

  const config = parseMonitorConfig({ sourceId: 'bench', database: { url: db.url }, tables, slotName: 'bench_slot', publicationName: 'bench_pub' });
  const connections = new ConnectionProvider(config.database);
  const times: number[] = [];
  let first = 0;
  let lastDoc = '';
  for (let i = 0; i <= runs; i++) {
    const start = performance.now();
    await runMonitor(config, { connections, write: (line) => void (lastDoc = line) });
    const ms = performance.now() - start;
    if (i === 0) first = ms;
    else times.push(ms);
  }
  times.sort((a, b) => a - b);
  const doc = JSON.parse(lastDoc) as Record<string, unknown>;
  const result = {
    tables: tableCount,
    runs,
    firstRunMs: Number(first.toFixed(1)),
    medianMs: Number(quantile(times, 0.5).toFixed(1)),
    p95Ms: Number(quantile(times, 0.95).toFixed(1)),
    maxMs: Number((times[times.length - 1] as number).toFixed(1)),
    slotLagBytes: doc.SlotLagBytes,
    documentBytes: Buffer.byteLength(lastDoc),
  };
  process.stdout.write(`| tables | first run (creates the state schema) | median | p95 | max | EMF document |\n|---:|---:|---:|---:|---:|---:|\n`);
  process.stdout.write(`| ${result.tables} | ${result.firstRunMs} ms | ${result.medianMs} ms | ${result.p95Ms} ms | ${result.maxMs} ms | ${result.documentBytes} bytes |\n`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await server.stop();
}
