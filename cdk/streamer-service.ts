/**
 * The streamer on ECS: the shared cluster (`Cluster`), and per source one Fargate service
 * (`Streamer`) of exactly one task that holds the replication slot, with its task definition
 * (`StreamerTask`), log group (`StreamerLogs`), config document (PGRELAY_CONFIG) and the task
 * role's grants: the database secret, sending to the changes queue, writing large changes to
 * the source's prefix of the payload bucket.
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { StreamerConfigInput } from '#core/config.ts';
import { DEFAULTS } from './defaults.ts';
import { databaseConnection } from './database-access.ts';
import { acknowledge, bucketPrefixFinding, NAG_REASONS } from './nag.ts';
import { defaultStreamerMemory, type PgRelayStreamerProps, type ResolvedSource } from './props.ts';
import type { StreamerImage } from './streamer-image.ts';

/** Creates `Cluster` in the relay's scope, with Container Insights. */
export function createCluster(scope: Construct, vpc: ec2.IVpc): ecs.Cluster {
  return new ecs.Cluster(scope, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
}

export interface StreamerServiceOptions {
  readonly source: ResolvedSource;
  readonly streamer: PgRelayStreamerProps;
  /** Message groups the changes are spread over (the transform is told the same number). */
  readonly partitions: number;
  readonly image: StreamerImage;
  readonly cluster: ecs.ICluster;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly vpcSubnets: ec2.SubnetSelection;
  readonly logRetention: logs.RetentionDays;
  readonly changesQueue: sqs.IQueue;
  readonly payloadBucket: s3.Bucket;
  /** The source's prefix in the payload bucket. */
  readonly payloadPrefix: string;
}

export interface StreamerService {
  readonly service: ecs.FargateService;
  readonly taskDefinition: ecs.FargateTaskDefinition;
}

/** Creates the source's streamer in the source's scope. */
export function createStreamerService(scope: Construct, opts: StreamerServiceOptions): StreamerService {
  const { source, streamer, payloadBucket, payloadPrefix } = opts;
  const logGroup = new logs.LogGroup(scope, 'StreamerLogs', { retention: opts.logRetention, removalPolicy: RemovalPolicy.DESTROY });
  const taskDefinition = new ecs.FargateTaskDefinition(scope, 'StreamerTask', {
    cpu: streamer.cpu ?? DEFAULTS.streamerCpu,
    memoryLimitMiB: streamer.memoryLimitMiB ?? defaultStreamerMemory(streamer.cpu ?? DEFAULTS.streamerCpu),
    runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
  });
  const streamerConfig: StreamerConfigInput = {
    sourceId: source.sourceId,
    database: databaseConnection(source.database),
    tables: source.tables,
    tableKeys: source.tableKeys,
    messages: source.messages,
    slotName: source.slotName,
    publicationName: source.publicationName,
    queueUrl: opts.changesQueue.queueUrl,
    largePayloads: { bucket: payloadBucket.bucketName, prefix: payloadPrefix },
    region: Stack.of(scope).region,
    partitions: opts.partitions,
  };
  taskDefinition.addContainer('streamer', {
    image: ecs.ContainerImage.fromAsset(opts.image.directory, { platform: Platform.LINUX_ARM64 }),
    command: ['run'],
    environment: { ...opts.image.environment, PGRELAY_CONFIG: Stack.of(scope).toJsonString(streamerConfig) },
    logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: 'streamer' }),
    healthCheck: {
      command: opts.image.healthCheckCommand,
      interval: Duration.seconds(30),
      timeout: Duration.seconds(5),
      retries: 3,
      startPeriod: Duration.seconds(60),
    },
    // The streamer flushes and acknowledges on SIGTERM within its 25 s shutdownTimeoutMs.
    stopTimeout: Duration.seconds(30),
  });
  acknowledge(taskDefinition, 'ECS2', NAG_REASONS.streamerEnvironment);
  acknowledge(taskDefinition.obtainExecutionRole(), 'IAM5[Resource::*]', NAG_REASONS.executionRoleWildcard);
  acknowledge(taskDefinition.taskRole, bucketPrefixFinding(payloadBucket, payloadPrefix), NAG_REASONS.payloadPrefix);
  source.database.secret.grantRead(taskDefinition.taskRole);
  opts.changesQueue.grantSendMessages(taskDefinition.taskRole);
  taskDefinition.taskRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [payloadBucket.arnForObjects(`${payloadPrefix}*`)] }));

  const service = new ecs.FargateService(scope, 'Streamer', {
    cluster: opts.cluster,
    taskDefinition,
    desiredCount: 1,
    // Exactly one slot holder. PostgreSQL lets one process stream a slot; a second task started
    // before the first stops would only wait for the slot (and look unhealthy). With 0 % minimum
    // healthy and 100 % maximum, ECS stops the old task (which flushes and acknowledges on
    // SIGTERM) before it starts the new one; nothing is lost, the new task resumes at the
    // acknowledged position.
    minHealthyPercent: 0,
    maxHealthyPercent: 100,
    circuitBreaker: { enable: true, rollback: true },
    assignPublicIp: false,
    vpcSubnets: opts.vpcSubnets,
    securityGroups: [opts.securityGroup],
    enableExecuteCommand: false,
  });
  return { service, taskDefinition };
}
