/**
 * Runs the real streamer against the suite's PostgreSQL and SQS emulator: in-process for
 * introspection, or as a child process for crash tests (kill -9) and signal handling.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { changeBatch, type BootstrapMarkerEvent, type ChangeEvent, type MessageChangeEvent, type RowChangeEvent, type SnapshotChangeEvent } from '#core/change-event.ts';
import { parseStreamerConfig, type StreamerConfigInput, type TableEntryInput } from '#core/config.ts';
import type { PayloadStore } from '#core/payload-store.ts';
import { ConnectionProvider, type SecretSource } from '#shared/connection.ts';
import { createLogger } from '#streamer/log.ts';
import { payloadStoreFor, sqsClientFor } from '#streamer/aws-clients.ts';
import { Streamer } from '#streamer/streamer.ts';
import { receiveUntil, type ReceivedMessage } from './sqs.ts';
import { waitFor } from './wait.ts';

export interface RunningStreamer {
  streamer: Streamer;
  /** Settles when run() ends. */
  done: Promise<void>;
  logs: Record<string, unknown>[];
  metrics: Record<string, unknown>[];
  /** Resolves once the replication stream has started (the slot exists from then on). */
  ready: Promise<void>;
  stop(): Promise<void>;
}

/** Slots are per cluster, and test files share one: name each after its (unique) database. */
export function slotNameFor(dbUrl: string): string {
  return `s_${decodeURIComponent(new URL(dbUrl).pathname.slice(1))}`.slice(0, 63);
}

export function streamerConfig(input: Partial<StreamerConfigInput> & { dbUrl: string; queueUrl: string; sqsEndpoint: string; tables: TableEntryInput[] }): StreamerConfigInput {
  const { dbUrl, ...rest } = input;
  return {
    database: { url: dbUrl },
    slotName: slotNameFor(dbUrl),
    batch: { lingerMs: 20 },
    statusIntervalMs: 200,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    ...rest,
  };
}

export function startStreamer(
  input: StreamerConfigInput,
  opts: {
    sqs?: SQSClient;
    sqsRetry?: { initialMs: number; maxMs: number };
    secrets?: SecretSource;
    /** Overrides the store built from the config's `largePayloads` / `s3Endpoint`. */
    payloads?: PayloadStore;
  } = {},
): RunningStreamer {
  const config = parseStreamerConfig(input);
  const logs: Record<string, unknown>[] = [];
  const metrics: Record<string, unknown>[] = [];
  const log = createLogger({ level: 'debug', write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const streamer = new Streamer({
    config,
    log,
    sqs: opts.sqs ?? sqsClientFor(config, {}),
    payloads: opts.payloads ?? payloadStoreFor(config, {}),
    connections: new ConnectionProvider(config.database, opts.secrets),
    writeMetrics: (line) => metrics.push(JSON.parse(line) as Record<string, unknown>),
    sqsRetry: opts.sqsRetry ?? { initialMs: 20, maxMs: 300 },
  });
  const done = streamer.run();
  done.catch(() => {});
  const ready = Promise.race([
    waitFor(() => logs.some((l) => l.msg === 'streaming'), { timeoutMs: 30_000, message: 'streamer did not start streaming' }),
    done.then(() => {
      throw new Error(`streamer ended before streaming: ${JSON.stringify(logs.slice(-3))}`);
    }),
  ]);
  ready.catch(() => {});
  return {
    streamer,
    done,
    ready,
    logs,
    metrics,
    async stop() {
      await streamer.stop('test');
      // A run that already failed was asserted on by the test itself.
      await done.catch(() => {});
    },
  };
}

/** The streamer as a separate process (`pgrelay run`), configured by PGRELAY_CONFIG. */
export function spawnStreamer(
  input: StreamerConfigInput,
  opts: { nodeFlags?: readonly string[] } = {},
): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const child = spawn(process.execPath, [...(opts.nodeFlags ?? []), '--import', 'tsx', 'cli/pgrelay.ts', 'run'], {
    cwd: root,
    env: { ...process.env, PGRELAY_CONFIG: JSON.stringify(input), AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** A change as received, with the partition and message group it came in. */
export type Received<T> = T & { partition: number; groupId: string };
export type ReceivedChange = Received<RowChangeEvent>;

export function receivedOf(messages: ReceivedMessage[]): Received<ChangeEvent>[] {
  const out: Received<ChangeEvent>[] = [];
  for (const m of messages) {
    const batch = changeBatch.parse(JSON.parse(m.body));
    for (const c of batch.changes) out.push({ ...c, partition: batch.partition, groupId: m.groupId ?? '' });
  }
  return out;
}

const STREAM_OPS: ReadonlySet<string> = new Set(['insert', 'update', 'delete', 'truncate', 'gap']);

/** A change a transaction wrote (not a bootstrap read or marker, not a logical message). */
export function isStreamChange<T extends ChangeEvent>(c: T): c is Extract<T, RowChangeEvent> {
  return STREAM_OPS.has(c.op);
}

/** Parse received messages into row changes, checking each body against the ChangeBatch schema (logical messages: `logicalMessagesOf`; bootstrap: `bootstrapOf`). */
export function changesOf(messages: ReceivedMessage[]): ReceivedChange[] {
  return receivedOf(messages).filter((c): c is ReceivedChange => isStreamChange(c));
}

/** The bootstrap reads and markers among received messages. */
export function bootstrapOf(messages: ReceivedMessage[]): Received<SnapshotChangeEvent | BootstrapMarkerEvent>[] {
  return receivedOf(messages).filter((c): c is Received<SnapshotChangeEvent | BootstrapMarkerEvent> => c.op === 'snapshot' || c.op === 'bootstrap.started' || c.op === 'bootstrap.completed');
}

/** The logical messages (op `message`) among received messages. */
export function logicalMessagesOf(messages: ReceivedMessage[]): Received<MessageChangeEvent>[] {
  return receivedOf(messages).filter((c): c is Received<MessageChangeEvent> => c.op === 'message');
}

/** Receive until `predicate` holds on the parsed changes. */
export async function receiveChanges(
  client: SQSClient,
  queueUrl: string,
  predicate: (changes: ReceivedChange[]) => boolean,
  timeoutMs = 20_000,
): Promise<ReceivedChange[]> {
  const messages = await receiveUntil(client, queueUrl, (ms) => predicate(changesOf(ms)), timeoutMs);
  return changesOf(messages);
}
