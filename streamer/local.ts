/**
 * `npm start`: the whole pipeline on one machine. An embedded PostgreSQL (or the user's own
 * with --database-url), the SQS emulator on loopback, and the real streamer with the same
 * config schema as production; a reader prints every change that reaches the queue.
 * The local servers come from the project's npm dependencies, nothing installed by hand.
 */
import { CreateQueueCommand, DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import pg from 'pg';
import { changeBatch } from '#core/change-event.ts';
import { parseStreamerConfig } from '#core/config.ts';
import { ConfigError, describeError } from '#core/errors.ts';
import { ConnectionProvider } from './connection.ts';
import { createLogger } from './log.ts';
import { sqsClientFor } from './main.ts';
import { Streamer } from './streamer.ts';

interface LocalOptions {
  databaseUrl?: string;
  tables?: string[];
}

function parseArgs(argv: string[]): LocalOptions {
  const opts: LocalOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--database-url') opts.databaseUrl = argv[++i];
    else if (a?.startsWith('--database-url=')) opts.databaseUrl = a.slice('--database-url='.length);
    else if (a === '--tables') opts.tables = (argv[++i] ?? '').split(',').filter(Boolean);
    else throw new ConfigError([`unknown option ${a}; use --database-url URL [--tables a,b]`]);
  }
  if (opts.databaseUrl && !opts.tables) throw new ConfigError(['--tables is required with --database-url (e.g. --tables public.orders,public.customers)']);
  return opts;
}

const DEMO_SCHEMA = `
CREATE TABLE IF NOT EXISTS orders (
  id bigserial PRIMARY KEY,
  customer text NOT NULL,
  status text NOT NULL DEFAULT 'new',
  total numeric(12,2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)`;

export async function runLocal(argv: string[]): Promise<number> {
  const opts = parseArgs(argv);
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const stops: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
  };
  try {
    // The test harness already knows how to run both servers safely (root, free ports, cleanup).
    const { startTestPostgres } = await import('#test/helpers/postgres.ts');
    const { startTestSqs } = await import('#test/helpers/sqs.ts');
    let databaseUrl = opts.databaseUrl;
    if (!databaseUrl) {
      say('starting an embedded PostgreSQL (wal_level=logical) ...');
      const server = await startTestPostgres();
      stops.push(() => server.stop());
      databaseUrl = server.url;
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      await client.query(DEMO_SCHEMA);
      await client.end();
    }
    const sqsServer = await startTestSqs();
    stops.push(() => sqsServer.stop());
    const sqs = new SQSClient({ region: 'us-east-1', endpoint: sqsServer.endpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    const { QueueUrl } = await sqs.send(
      new CreateQueueCommand({ QueueName: 'pgrelay-changes.fifo', Attributes: { FifoQueue: 'true' } }),
    );
    const config = parseStreamerConfig({
      sourceId: 'local',
      database: { url: databaseUrl },
      tables: opts.tables ?? ['public.orders'],
      queueUrl: QueueUrl,
      sqsEndpoint: sqsServer.endpoint,
      partitions: 4,
      metricsIntervalMs: 3_600_000,
    });
    const log = createLogger({ level: 'warn' });
    const streamer = new Streamer({ config, log, sqs: sqsClientFor(config, {}), connections: new ConnectionProvider(config.database) });
    const done = streamer.run();
    stops.push(async () => {
      await streamer.stop('local run ended');
      await done.catch(() => {});
    });
    say(`streaming ${config.tables.map((t) => `${t.schema}.${t.table}`).join(', ')} into ${QueueUrl}`);

    let running = true;
    const reader = (async () => {
      while (running) {
        const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
        for (const m of Messages) {
          const batch = changeBatch.parse(JSON.parse(m.Body ?? '{}'));
          for (const c of batch.changes) {
            say(`${c.op.padEnd(8)} ${c.schema}.${c.table} ${JSON.stringify(c.key)} ${c.after ? JSON.stringify(c.after) : ''}`);
          }
        }
        if (Messages.length > 0) {
          await sqs.send(new DeleteMessageBatchCommand({ QueueUrl, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })) }));
        }
      }
    })();
    stops.push(async () => {
      running = false;
      await reader.catch(() => {});
    });

    let workload: NodeJS.Timeout | undefined;
    if (!opts.databaseUrl) {
      const client = new pg.Client({ connectionString: databaseUrl });
      client.on('error', () => {}); // the workload is a demo: a lost connection just ends it
      await client.connect();
      let n = 0;
      workload = setInterval(() => {
        n++;
        void client
          .query(`INSERT INTO orders (customer, total) VALUES ($1, $2)`, [`customer-${n % 7}`, (n * 13.37).toFixed(2)])
          .then(() => (n % 3 === 0 ? client.query(`UPDATE orders SET status = 'paid' WHERE id = $1`, [n - 1]) : undefined))
          .then(() => (n % 5 === 0 ? client.query(`DELETE FROM orders WHERE id = $1`, [n - 4]) : undefined))
          .catch(() => {});
      }, 1000);
      stops.push(async () => {
        clearInterval(workload);
        await client.end();
      });
      say('demo workload: an order a second (Ctrl-C to stop)');
    }

    await new Promise<void>((resolve, reject) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
      done.then(() => resolve(), reject);
    });
    say('stopping ...');
    await stopAll();
    say('stopped cleanly');
    return 0;
  } catch (err) {
    await stopAll();
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    process.stderr.write(`pgrelay: ${describeError(err).message}\n`);
    return 1;
  }
}
