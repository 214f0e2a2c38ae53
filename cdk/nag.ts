/**
 * cdk-nag AwsSolutions findings pgrelay accepts, each with the reason a reviewer needs. They
 * are acknowledged on pgrelay's own constructs, so a user running cdk-nag on their stack sees
 * only findings about their own resources.
 */
import { Stack, Validations, type CfnResource } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

export const NAG_REASONS = {
  lambdaRuntime:
    'Node.js 22 is the runtime pgrelay is built and tested for (an LTS line with AWS support into 2027); moving to a newer runtime is a tested release, not a synth-time default.',
  bucketAccessLogs:
    'The payload bucket holds short-lived claim-check objects written and read only by pgrelay roles; pass accessLogsBucket to log access, or audit with CloudTrail data events.',
  streamerEnvironment:
    'The environment holds only non-secret settings (queue URL, database host, the secret ARN, tables); the password is read from Secrets Manager at run time and never placed in the task definition.',
  executionRoleWildcard:
    'ecr:GetAuthorizationToken, which ECS needs to pull the streamer image, has no resource-level permissions; the other pull actions are scoped to the image repository by CDK.',
  monitorWildcard:
    'Resource * appears for two reasons: the EC2 network-interface actions Lambda needs to run in the VPC do not support resource-level permissions, and ecs:ListTasks/ecs:StopTask are bound to this cluster by the ecs:cluster condition because task ARNs are not known in advance.',
  payloadPrefix:
    'Objects are created per change and per event under this prefix with content-derived keys, so no fixed ARN list exists; access is limited to the prefix and to GetObject/PutObject.',
} as const;

export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: `AwsSolutions-${id}`, reason });
}

/** The finding id cdk-nag gives a wildcard under a bucket's ARN, e.g. `IAM5[Resource::<Bucket.Arn>/pgrelay/*]`. */
export function bucketPrefixFinding(bucket: IConstruct & { node: IConstruct['node'] }, prefix: string): string {
  const cfn = bucket.node.defaultChild as CfnResource;
  return `IAM5[Resource::<${Stack.of(bucket).getLogicalId(cfn)}.Arn>/${prefix}*]`;
}
