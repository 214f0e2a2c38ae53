/**
 * The streamer process, as `pgrelay run` starts it (cli/run.ts; in ECS, the container image).
 * Config is parsed once here; nothing below reads process.env.
 */
import { parseStreamerEnv, type StreamerConfig } from '#core/config.ts';
import { ConfigError, describeError } from '#core/errors.ts';
import { payloadStoreFor, sqsClientFor } from './aws-clients.ts';
import { keepHealthFile } from './health-file.ts';
import { ConnectionProvider, secretsManagerSource } from '#shared/connection.ts';
import { createLogger, type Logger } from './log.ts';
import { Streamer } from './streamer.ts';

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
