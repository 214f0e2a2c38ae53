/**
 * The transform Lambda: SQS event source on the changes FIFO queue (ReportBatchItemFailures
 * on). Thin: config and clients once per container, then Transform does the work.
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { parseTransformEnv, type TransformConfig } from '#core/config.ts';
import { s3PayloadStore } from '#shared/s3-payload-store.ts';
import { EventBridgeOutput, type EventBridgeOutputOptions } from './eventbridge-output.ts';
import type { SqsBatchResponse, SqsEvent } from '#shared/lambda-types.ts';
import { Transform, type Log } from './transform.ts';
import { PgRelayError } from '#core/errors.ts';

/** One JSON line per event of note, as the streamer logs. */
export const jsonLog: Log = {
  info: (msg, fields) => console.log(JSON.stringify({ level: 'info', msg, ...fields })),
  warn: (msg, fields) => console.log(JSON.stringify({ level: 'warn', msg, ...fields })),
  error: (msg, fields) => console.log(JSON.stringify({ level: 'error', msg, ...fields })),
};

export interface TransformClientsOptions {
  /** Static credentials for local emulators and stand-ins. @default the default provider chain */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  log?: Log;
  /** EventBridge retry budget (tests shorten it). */
  eventBridgeRetry?: Pick<EventBridgeOutputOptions, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs'>;
}

/** Build the transform and its outputs from config (also used by `npm start` and the tests). */
export function createTransform(config: TransformConfig, opts: TransformClientsOptions = {}): Transform {
  const credentials = opts.credentials ? { credentials: opts.credentials } : {};
  const payloads = config.largePayloads
    ? s3PayloadStore({ ...config.largePayloads, region: config.region, ...(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {}), ...credentials })
    : undefined;
  const nodes = config.outputs.nodesQueue;
  // The EventBridge output stores oversized events through the transform's claim check.
  let transform: Transform | undefined;
  const eventBus = config.outputs.eventBridge
    ? EventBridgeOutput.fromConfig(config, {
        ...credentials,
        ...opts.eventBridgeRetry,
        offload: async (event, detail) => {
          const ref = await transform?.offload(event, detail);
          if (ref === undefined) throw new PgRelayError('EVENT_TOO_LARGE', 'event too large for EventBridge and no largePayloads store configured');
          return ref;
        },
      })
    : undefined;
  transform = new Transform({
    config,
    log: opts.log ?? jsonLog,
    ...(eventBus ? { eventBus: { publish: (items) => eventBus.publish(items) } } : {}),
    ...(nodes
      ? {
          nodesQueue: {
            client: new SQSClient({ region: config.region, ...(config.sqsEndpoint ? { endpoint: config.sqsEndpoint } : {}), ...credentials }),
            queueUrl: nodes.queueUrl,
          },
        }
      : {}),
    ...(payloads ? { payloads } : {}),
  });
  return transform;
}

let instance: Transform | undefined;

export async function handler(event: SqsEvent): Promise<SqsBatchResponse> {
  instance ??= createTransform(parseTransformEnv(process.env));
  return instance.handle(event.Records);
}
