/**
 * The transform Lambda: SQS event source on the changes FIFO queue (ReportBatchItemFailures
 * on). Thin: config and clients once per container, then Transform does the work.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { parseTransformEnv, type TransformConfig } from '#core/config.ts';
import { s3PayloadStore } from '#shared/s3-payload-store.ts';
import { EventBridgeOutput, type EventBridgeOutputOptions } from './eventbridge-output.ts';
import type { SqsBatchResponse, SqsEvent } from '#shared/lambda-types.ts';
import { Transform, type Log } from './transform.ts';
import { PgRelayError } from '#core/errors.ts';

/**
 * Powertools Logger: one JSON line per event of note, with the service, the Lambda request id
 * (and cold start) from the invocation's context, and, for a record's lines, its message id,
 * group and change positions (`Log.child`). Level from POWERTOOLS_LOG_LEVEL (default INFO).
 */
export const logger = new Logger({ serviceName: 'pgrelay-transform' });

/** `logger` as the transform's Log. */
export function powertoolsLog(base: Logger = logger): Log {
  return {
    info: (msg, fields) => base.info(msg, fields ?? {}),
    warn: (msg, fields) => base.warn(msg, fields ?? {}),
    error: (msg, fields) => base.error(msg, fields ?? {}),
    child: (keys) => powertoolsLog(base.createChild({ persistentKeys: keys })),
  };
}

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
    log: opts.log ?? powertoolsLog(),
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

export async function handler(event: SqsEvent, context?: Context): Promise<SqsBatchResponse> {
  if (context !== undefined) logger.addContext(context);
  instance ??= createTransform(parseTransformEnv(process.env));
  return instance.handle(event.Records);
}
