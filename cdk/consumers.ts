/**
 * What PgRelay.addConsumer attaches: an EventBridge rule on the relay's bus (`Consumer<n>` in
 * the relay's scope, filtered by source, type, label and message prefix) that invokes the
 * function, or an SQS event source that has the function consume the nodes FIFO queue in
 * order. Either way the function may read the payload bucket, where events too large for
 * their channel are parked. The options are checked by addConsumer before any of this.
 */
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { GraphEventType } from '#core/change-event.ts';
import { grantPayloadRead } from './payload-bucket.ts';

/** Has `fn` consume the nodes queue, `batchSize` records at a time, reporting failures per record. */
export function consumeNodesQueue(fn: lambda.IFunction, nodesQueue: sqs.IQueue, payloadBucket: s3.Bucket, batchSize: number): SqsEventSource {
  const source = new SqsEventSource(nodesQueue, { batchSize, reportBatchItemFailures: true });
  fn.addEventSource(source);
  grantPayloadRead(payloadBucket, fn);
  return source;
}

/** Which events of the bus reach an EventBridge consumer (AddConsumerOptions, sources resolved). */
export interface EventBridgeConsumerFilter {
  readonly sourceIds: readonly string[];
  readonly labels?: string[] | undefined;
  readonly types?: GraphEventType[] | undefined;
  readonly messagePrefixes?: string[] | undefined;
  readonly deadLetterQueue?: sqs.IQueue | undefined;
}

/**
 * Creates the next `Consumer<n>` rule in the relay's scope. EventBridge retries delivery to
 * the function for 24 hours (185 attempts), then drops the event or puts it in the
 * dead-letter queue.
 */
export function ruleForConsumer(relayScope: Construct, fn: lambda.IFunction, bus: events.IEventBus, payloadBucket: s3.Bucket, filter: EventBridgeConsumerFilter): events.Rule {
  const byLabel = filter.labels !== undefined ? { node: { label: filter.labels } } : undefined;
  const byPrefix = filter.messagePrefixes !== undefined ? { message: { prefix: filter.messagePrefixes } } : undefined;
  const detail = byLabel !== undefined && byPrefix !== undefined ? { $or: [byLabel, byPrefix] } : (byLabel ?? byPrefix);
  const rule = new events.Rule(relayScope, `Consumer${relayScope.node.children.filter((c) => c.node.id.startsWith('Consumer')).length}`, {
    eventBus: bus,
    description: `pgrelay events for ${fn.node.path}`,
    eventPattern: {
      source: filter.sourceIds.map((id) => `pgrelay.${id}`),
      ...(filter.types !== undefined ? { detailType: filter.types } : {}),
      ...(detail !== undefined ? { detail } : {}),
    },
    targets: [new targets.LambdaFunction(fn, { retryAttempts: 185, maxEventAge: Duration.hours(24), ...(filter.deadLetterQueue !== undefined ? { deadLetterQueue: filter.deadLetterQueue } : {}) })],
  });
  grantPayloadRead(payloadBucket, fn);
  return rule;
}
