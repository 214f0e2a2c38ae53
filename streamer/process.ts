/**
 * The streamer process, as `pgrelay run` starts it (cli/run.ts; in ECS, the container image).
 * Config is parsed once here; nothing below reads process.env.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { SQSClient } from '@aws-sdk/client-sqs';
import { parseStreamerEnv, type StreamerConfig } from '#core/config.ts';
import { ConfigError, describeError } from '#core/errors.ts';
import type { PayloadStore } from '#core/payload-store.ts';
import { s3PayloadStore } from '#shared/s3-payload-store.ts';
import { ConnectionProvider, secretsManagerSource } from '#shared/connection.ts';
import { createLogger, type Logger } from './log.ts';
import { Streamer } from './streamer.ts';

export function sqsClientFor(config: StreamerConfig, env: Record<string, string | undefined>): SQSClient {
  const local = config.sqsEndpoint !== undefined && !env.AWS_ACCESS_KEY_ID;
  return new SQSClient({
    region: config.region,
    ...(config.sqsEndpoint ? { endpoint: config.sqsEndpoint } : {}),
    // An emulator accepts any signature; never pick up a developer's real credentials for it.
    ...(local ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
    // Our sink retries forever with its own backoff and logging; the SDK tries twice.
    maxAttempts: 2,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 30_000 },
  });
}

/** The claim-check store for changes too large for SQS, when `largePayloads` is configured. */
export function payloadStoreFor(config: StreamerConfig, env: Record<string, string | undefined>): PayloadStore | undefined {
  if (!config.largePayloads) return undefined;
  const local = config.s3Endpoint !== undefined && !env.AWS_ACCESS_KEY_ID;
  return s3PayloadStore({
    bucket: config.largePayloads.bucket,
    prefix: config.largePayloads.prefix,
    region: config.region,
    ...(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {}),
    // As for SQS: an emulator accepts any signature; never send it a developer's real credentials.
    ...(local ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
    // The sink retries uploads forever with its own backoff and logging.
    maxAttempts: 2,
  });
}

/** How often the health file is rewritten; the health check's default limit is 60 s. */
export const HEALTH_FILE_INTERVAL_MS = 10_000;

/**
 * The container health check (streamer/health-check.ts) asks whether the event loop still
 * turns: a timer here writes the epoch ms to `path` now and every 10 s. Written aside and
 * renamed, so the check never reads half a write. Returns a function that stops the timer.
 */
export function keepHealthFile(path: string, log: Logger): () => void {
  let failing = false;
  const touch = () => {
    try {
      writeFileSync(`${path}.tmp`, String(Date.now()));
      renameSync(`${path}.tmp`, path);
      failing = false;
    } catch (err) {
      if (!failing) log.error('cannot write the health file; the health check will fail', { path, error: describeError(err) });
      failing = true;
    }
  };
  touch();
  const timer = setInterval(touch, HEALTH_FILE_INTERVAL_MS).unref();
  return () => clearInterval(timer);
}

export async function runStreamerProcess(env: Record<string, string | undefined>): Promise<number> {
  let config: StreamerConfig;
  try {
    config = parseStreamerEnv(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      createLogger().error('invalid configuration', { problems: err.problems });
      return 2;
    }
    throw err;
  }
  const log: Logger = createLogger({ base: { source: config.sourceId } });
  const stopHealthFile = env.PGRELAY_HEALTH_FILE ? keepHealthFile(env.PGRELAY_HEALTH_FILE, log) : () => {};
  const connections = new ConnectionProvider(
    config.database,
    config.database.secretArn ? secretsManagerSource(config.region, config.secretsEndpoint) : undefined,
  );
  const streamer = new Streamer({
    config,
    log,
    sqs: sqsClientFor(config, env),
    payloads: payloadStoreFor(config, env),
    connections,
    writeMetrics: (line) => process.stdout.write(`${line}\n`),
  });

  const onSignal = (signal: NodeJS.Signals) => {
    if (streamer.isStopping) return;
    // Past the flush budget, leave: whatever is unacknowledged is streamed again next start.
    setTimeout(() => {
      log.error('shutdown took too long; exiting without further acknowledgement', { signal });
      process.exit(1);
    }, config.shutdownTimeoutMs + 3_000).unref();
    void streamer.stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const started = performance.now();
  try {
    await streamer.run();
    log.info('stopped', { ...streamer.stats(), uptimeMs: Math.round(performance.now() - started) });
    return 0;
  } catch (err) {
    log.error('stopped on error; nothing after the last acknowledged position was confirmed', {
      error: describeError(err),
      ...streamer.stats(),
    });
    return 1;
  } finally {
    stopHealthFile();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
