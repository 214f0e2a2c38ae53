/**
 * The SQS queues and the EventBridge bus that changes and events travel through.
 *
 * Per source: the changes FIFO queue (streamer → transform) and its dead-letter queue. Shared
 * by the relay: the nodes FIFO queue (transform → one ordered consumer) and its dead-letter
 * queue, and the EventBridge bus (transform → filtered consumers). The nodes queue and the bus
 * are each pgrelay's own, the user's (then pgrelay creates nothing) or off (PgRelayOutputs).
 */
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { CHANGES_DLQ_RETENTION, CHANGES_RETENTION, DEFAULTS, NODES_DLQ_RETENTION, NODES_RETENTION } from './defaults.ts';
import type { PgRelayOutputs } from './props.ts';

/** A source's changes queue and the dead-letter queue behind it. */
export interface ChangesQueues {
  readonly changesQueue: sqs.Queue;
  readonly changesDeadLetterQueue: sqs.Queue;
}

/** Creates `ChangesDlq` and `Changes` in the source's scope. */
export function createChangesQueues(scope: Construct): ChangesQueues {
  const changesDeadLetterQueue = fifoQueue(scope, 'ChangesDlq', { retentionPeriod: CHANGES_DLQ_RETENTION });
  const changesQueue = fifoQueue(scope, 'Changes', {
    retentionPeriod: CHANGES_RETENTION,
    // AWS's advice for a Lambda event source: at least six times the function's timeout.
    visibilityTimeout: Duration.seconds(DEFAULTS.transformTimeout.toSeconds() * 6),
    deadLetterQueue: { queue: changesDeadLetterQueue, maxReceiveCount: DEFAULTS.maxReceiveCount },
  });
  return { changesQueue, changesDeadLetterQueue };
}

/** The relay's bus: the user's, none (`false`), or pgrelay's own (`Bus` in the relay's scope). */
export function createEventBus(scope: Construct, eventBridge: PgRelayOutputs['eventBridge']): events.IEventBus | undefined {
  if (eventBridge === false) return undefined;
  if (typeof eventBridge === 'object') return eventBridge.bus;
  return new events.EventBus(scope, 'Bus', { description: 'pgrelay graph node events' });
}

/** The relay's nodes queue, and its dead-letter queue when pgrelay created the queue. */
export interface NodesQueues {
  readonly queue: sqs.IQueue | undefined;
  readonly deadLetterQueue: sqs.Queue | undefined;
}

/** The user's queue, none (`false`), or pgrelay's own (`NodesDlq` and `Nodes` in the relay's scope). */
export function createNodesQueues(scope: Construct, nodesQueue: PgRelayOutputs['nodesQueue']): NodesQueues {
  if (nodesQueue === false) return { queue: undefined, deadLetterQueue: undefined };
  if (typeof nodesQueue === 'object') return { queue: nodesQueue.queue, deadLetterQueue: undefined };
  const deadLetterQueue = fifoQueue(scope, 'NodesDlq', { retentionPeriod: NODES_DLQ_RETENTION });
  const queue = fifoQueue(scope, 'Nodes', {
    retentionPeriod: NODES_RETENTION,
    deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount: DEFAULTS.maxReceiveCount },
  });
  return { queue, deadLetterQueue };
}

function fifoQueue(scope: Construct, id: string, props: Omit<sqs.QueueProps, 'fifo'>): sqs.Queue {
  return new sqs.Queue(scope, id, {
    fifo: true,
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    // High-throughput FIFO: deduplication and throughput per message group.
    deduplicationScope: sqs.DeduplicationScope.MESSAGE_GROUP,
    fifoThroughputLimit: sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
    ...props,
  });
}
