/**
 * The Lambda functions of a source, each with its own role and log group (nodeFunction):
 *
 * - the transform (`Transform`), fed by the changes queue; its config document
 *   (PGRELAY_TRANSFORM_CONFIG) names the bus, the nodes queue and the payload prefix it writes;
 * - the monitor (`Monitor`), the slot guardian in the VPC, run every minute by
 *   `MonitorSchedule`; its config document (PGRELAY_MONITOR_CONFIG) names the database, the
 *   slot and the streamer's ECS service, which it may restart.
 *
 * Both are the package's prebuilt bundles (cdk/prebuilt.ts): nothing is bundled at synth.
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { MonitorConfigInput } from '#monitor/config.ts';
import type { TransformConfigInput } from '#core/config.ts';
import { databaseConnection } from './database-access.ts';
import { DEFAULTS } from './defaults.ts';
import { acknowledge, bucketPrefixFinding, NAG_REASONS } from './nag.ts';
import { grantPrefixListing } from './payload-bucket.ts';
import { prebuiltBundle, type PrebuiltBundle } from './prebuilt.ts';
import type { PgRelayMonitorProps, ResolvedSource } from './props.ts';

export interface TransformFunctionOptions {
  readonly source: ResolvedSource;
  readonly changesQueue: sqs.IQueue;
  readonly bus: events.IEventBus | undefined;
  readonly nodesQueue: sqs.IQueue | undefined;
  readonly payloadBucket: s3.Bucket;
  /** The source's prefix in the payload bucket. */
  readonly payloadPrefix: string;
  readonly logRetention: logs.RetentionDays;
}

/** Creates the source's transform in the source's scope: changes to graph node events. */
export function createTransformFunction(scope: Construct, opts: TransformFunctionOptions): lambda.Function {
  const { source, bus, nodesQueue, payloadBucket, payloadPrefix } = opts;
  const stack = Stack.of(scope);
  const transformConfig: TransformConfigInput = {
    sourceId: source.sourceId,
    tables: source.tables,
    outputs: {
      ...(bus !== undefined ? { eventBridge: { busName: bus.eventBusName } } : {}),
      ...(nodesQueue !== undefined ? { nodesQueue: { queueUrl: nodesQueue.queueUrl } } : {}),
    },
    largePayloads: { bucket: payloadBucket.bucketName, prefix: payloadPrefix },
    region: stack.region,
  };
  const transformFunction = nodeFunction(scope, 'Transform', {
    bundle: 'transform',
    description: `pgrelay ${source.sourceId}: changes to graph node events`,
    memorySize: 1024,
    timeout: DEFAULTS.transformTimeout,
    environment: { PGRELAY_TRANSFORM_CONFIG: stack.toJsonString(transformConfig) },
    logRetention: opts.logRetention,
  });
  acknowledge(transformFunction.role as iam.IRole, bucketPrefixFinding(payloadBucket, payloadPrefix), NAG_REASONS.payloadPrefix);
  transformFunction.addEventSource(new SqsEventSource(opts.changesQueue, { batchSize: 10, reportBatchItemFailures: true }));
  bus?.grantPutEventsTo(transformFunction);
  nodesQueue?.grantSendMessages(transformFunction);
  // Reads the streamer's large changes, writes events too large for their channel.
  transformFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject', 's3:PutObject'], resources: [payloadBucket.arnForObjects(`${payloadPrefix}*`)] }));
  grantPrefixListing(payloadBucket, transformFunction, payloadPrefix);
  return transformFunction;
}

export interface MonitorFunctionOptions {
  readonly source: ResolvedSource;
  readonly monitor: PgRelayMonitorProps;
  readonly cluster: ecs.ICluster;
  /** The source's streamer, which the monitor checks and restarts. */
  readonly service: ecs.FargateService;
  readonly vpc: ec2.IVpc;
  readonly vpcSubnets: ec2.SubnetSelection;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly logRetention: logs.RetentionDays;
}

/** Creates the source's monitor and its one-minute schedule in the source's scope. */
export function createMonitorFunction(scope: Construct, opts: MonitorFunctionOptions): lambda.Function {
  const { source, monitor: monitorProps, cluster, service } = opts;
  const stack = Stack.of(scope);
  const monitorConfig: MonitorConfigInput = {
    sourceId: source.sourceId,
    database: databaseConnection(source.database),
    tables: source.tables,
    slotName: source.slotName,
    publicationName: source.publicationName,
    heartbeat: monitorProps.heartbeat ?? true,
    bootstrapNewTables: monitorProps.bootstrapNewTables ?? true,
    recreateLostSlot: monitorProps.recreateLostSlot ?? false,
    ecs: { cluster: cluster.clusterName, service: service.serviceName },
    liveness: {
      inactiveSeconds: monitorProps.liveness?.inactiveSeconds ?? 300,
      stalledSeconds: monitorProps.liveness?.stalledSeconds ?? 600,
      cooldownSeconds: monitorProps.liveness?.cooldownSeconds ?? 900,
    },
    region: stack.region,
  };
  const monitorFunction = nodeFunction(scope, 'Monitor', {
    bundle: 'monitor',
    description: `pgrelay ${source.sourceId}: slot guardian (lag, health, repairs)`,
    memorySize: 256,
    timeout: Duration.seconds(30),
    environment: { PGRELAY_MONITOR_CONFIG: stack.toJsonString(monitorConfig) },
    logRetention: opts.logRetention,
    // A failed run is not retried: the next scheduled run starts from a fresh look, and a
    // retry could act on what it saw a minute ago (e.g. recreate a slot twice).
    retryAttempts: 0,
    maxEventAge: Duration.minutes(1),
    vpc: opts.vpc,
    vpcSubnets: opts.vpcSubnets,
    securityGroups: [opts.securityGroup],
  });
  acknowledge(monitorFunction.role as iam.IRole, 'IAM5[Resource::*]', NAG_REASONS.monitorWildcard);
  source.database.secret.grantRead(monitorFunction);
  monitorFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ['ecs:DescribeServices'], resources: [service.serviceArn] }));
  // ListTasks names no task and StopTask's task ARNs are unknown ahead: both are bound to
  // this cluster by the ecs:cluster condition instead.
  monitorFunction.addToRolePolicy(
    new iam.PolicyStatement({ actions: ['ecs:ListTasks', 'ecs:StopTask'], resources: ['*'], conditions: { ArnEquals: { 'ecs:cluster': cluster.clusterArn } } }),
  );
  new events.Rule(scope, 'MonitorSchedule', {
    description: `pgrelay ${source.sourceId}: run the slot guardian every minute`,
    schedule: events.Schedule.rate(Duration.minutes(1)),
    targets: [new targets.LambdaFunction(monitorFunction, { retryAttempts: 0, maxEventAge: Duration.minutes(1) })],
  });
  return monitorFunction;
}

/**
 * A Node.js function from one of the package's prebuilt bundles, with `${id}Logs` and
 * `${id}Role` of its own next to it.
 */
function nodeFunction(
  scope: Construct,
  id: string,
  opts: {
    bundle: PrebuiltBundle;
    description: string;
    memorySize: number;
    timeout: Duration;
    environment: Record<string, string>;
    logRetention: logs.RetentionDays;
    vpc?: ec2.IVpc;
    vpcSubnets?: ec2.SubnetSelection;
    securityGroups?: ec2.ISecurityGroup[];
    retryAttempts?: number;
    maxEventAge?: Duration;
  },
): lambda.Function {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, { retention: opts.logRetention, removalPolicy: RemovalPolicy.DESTROY });
  // Our own role instead of the AWS managed execution policies: logs to this function's log
  // group only, and (in a VPC) the network-interface actions Lambda needs to attach to it.
  const role = new iam.Role(scope, `${id}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description: opts.description });
  logGroup.grantWrite(role);
  if (opts.vpc !== undefined) {
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'],
        resources: ['*'],
      }),
    );
  }
  const fn = new lambda.Function(scope, id, {
    role,
    // index.mjs, its source map and its licences; the asset hash follows their bytes.
    code: lambda.Code.fromAsset(prebuiltBundle(opts.bundle)),
    handler: 'index.handler',
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    description: opts.description,
    memorySize: opts.memorySize,
    timeout: opts.timeout,
    environment: { ...opts.environment, NODE_OPTIONS: '--enable-source-maps' },
    logGroup,
    ...(opts.retryAttempts !== undefined ? { retryAttempts: opts.retryAttempts } : {}),
    ...(opts.maxEventAge !== undefined ? { maxEventAge: opts.maxEventAge } : {}),
    ...(opts.vpc !== undefined ? { vpc: opts.vpc, vpcSubnets: opts.vpcSubnets, securityGroups: opts.securityGroups } : {}),
  });
  acknowledge(fn, 'L1', NAG_REASONS.lambdaRuntime);
  return fn;
}
