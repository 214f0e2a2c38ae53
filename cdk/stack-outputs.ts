/**
 * The relay's CloudFormation outputs (CfnOutput in the relay's scope): the bus, the nodes
 * queue and its DLQ when pgrelay has them, each source's changes queue and DLQ, and the
 * payload bucket; what a user or a script needs after a deploy.
 */
import { CfnOutput } from 'aws-cdk-lib';
import type * as events from 'aws-cdk-lib/aws-events';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

export interface RelayOutputs {
  readonly bus: events.IEventBus | undefined;
  readonly nodesQueue: sqs.IQueue | undefined;
  readonly nodesDeadLetterQueue: sqs.IQueue | undefined;
  readonly sources: readonly { readonly sourceId: string; readonly changesQueue: sqs.IQueue; readonly changesDeadLetterQueue: sqs.IQueue }[];
  readonly payloadBucket: s3.IBucket;
}

/** Creates the outputs; a source's output IDs carry its sourceId without the characters IDs cannot hold. */
export function createStackOutputs(scope: Construct, relay: RelayOutputs): void {
  const out = (id: string, value: string, description: string) => new CfnOutput(scope, id, { value, description });
  if (relay.bus !== undefined) {
    out('BusName', relay.bus.eventBusName, 'EventBridge bus of pgrelay graph node events');
    out('BusArn', relay.bus.eventBusArn, 'EventBridge bus ARN');
  }
  if (relay.nodesQueue !== undefined) out('NodesQueueUrl', relay.nodesQueue.queueUrl, 'FIFO queue of node events (ordered consumers)');
  if (relay.nodesDeadLetterQueue !== undefined) out('NodesDeadLetterQueueUrl', relay.nodesDeadLetterQueue.queueUrl, 'dead-letter queue of the nodes queue');
  for (const s of relay.sources) {
    const id = s.sourceId.replace(/[^A-Za-z0-9]/g, '');
    out(`ChangesQueueUrl${id}`, s.changesQueue.queueUrl, `changes FIFO queue of source ${s.sourceId}`);
    out(`ChangesDeadLetterQueueUrl${id}`, s.changesDeadLetterQueue.queueUrl, `dead-letter queue of source ${s.sourceId}`);
  }
  out('PayloadBucketName', relay.payloadBucket.bucketName, 'claim-check bucket for large changes and events');
}
