/**
 * What a consumer team's role may be granted on a relay, in the CDK's style (an `iam.Grant`
 * for an `iam.IGrantable`): reading the nodes queue, managing its own rules on the bus, and
 * reading the events too large for their channel from the payload bucket.
 */
import { Arn, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as events from 'aws-cdk-lib/aws-events';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';

/** The EventBridge actions a team needs to own rules and their targets on one bus. */
export const RULE_ACTIONS = ['events:PutRule', 'events:DeleteRule', 'events:DescribeRule', 'events:EnableRule', 'events:DisableRule', 'events:PutTargets', 'events:RemoveTargets', 'events:ListTargetsByRule'];

/** Receive, delete, change visibility and read attributes of the nodes queue (and decrypt, with a KMS key). */
export function grantConsumeNodes(nodesQueue: sqs.IQueue | undefined, grantee: iam.IGrantable): iam.Grant {
  if (nodesQueue === undefined) throw new Error('grantConsumeNodes: this relay has no nodes queue (outputs.nodesQueue is off)');
  return nodesQueue.grantConsumeMessages(grantee);
}

/** Rules and targets on the relay's bus: rules of this bus only (`rule/<bus>/*`), never another bus's. */
export function grantPutRules(bus: events.IEventBus | undefined, grantee: iam.IGrantable): iam.Grant {
  if (bus === undefined) throw new Error('grantPutRules: this relay has no EventBridge bus (outputs.eventBridge is off)');
  const stack = Stack.of(bus);
  // Rules of the default bus have no bus name in their ARN; a custom bus's do.
  const resourceName = bus.eventBusName === 'default' ? '*' : `${bus.eventBusName}/*`;
  const rules = Arn.format({ service: 'events', resource: 'rule', resourceName }, stack);
  return iam.Grant.addToPrincipal({ grantee, actions: RULE_ACTIONS, resourceArns: [rules] });
}

/** s3:GetObject on the sources' payload prefixes: what nodeHandler reads for a `payloadRef` event. */
export function grantReadPayloads(bucket: s3.IBucket, prefixes: readonly string[], grantee: iam.IGrantable): iam.Grant {
  return iam.Grant.addToPrincipal({ grantee, actions: ['s3:GetObject'], resourceArns: prefixes.map((p) => bucket.arnForObjects(`${p}*`)) });
}
