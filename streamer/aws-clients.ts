/**
 * The streamer's AWS clients, built from its config: SQS for the changes queue and S3 for
 * claim-checked payloads. The SDK tries each request twice; the sink above retries forever
 * with its own backoff and logging, so a long outage never gives up on a change.
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import type { StreamerConfig } from '#core/config.ts';
import type { PayloadStore } from '#core/payload-store.ts';
import { s3PayloadStore } from '#shared/s3-payload-store.ts';
import { useFastBatchBody } from '#shared/sqs-batch-body.ts';

export function sqsClientFor(config: StreamerConfig, env: Record<string, string | undefined>): SQSClient {
  const local = config.sqsEndpoint !== undefined && !env.AWS_ACCESS_KEY_ID;
  const client = new SQSClient({
    region: config.region,
    ...(config.sqsEndpoint ? { endpoint: config.sqsEndpoint } : {}),
    // An emulator accepts any signature; never pick up a developer's real credentials for it.
    ...(local ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
    // Our sink retries forever with its own backoff and logging; the SDK tries twice.
    maxAttempts: 2,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 30_000 },
  });
  useFastBatchBody(client);
  return client;
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

