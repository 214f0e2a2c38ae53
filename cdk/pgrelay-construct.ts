/**
 * PgRelay: everything pgrelay runs on AWS, as one construct.
 *
 * Per source (database): the changes FIFO queue + DLQ, the streamer (one Fargate task holding
 * the replication slot), the transform Lambda fed by the queue, the monitor Lambda on a
 * one-minute schedule, and its alarms. Shared: the ECS cluster, the EventBridge bus, the
 * nodes FIFO queue + DLQ, the payload bucket, the security group, the dashboard.
 *
 * Configuration reaches the running code as one JSON document per process (PGRELAY_CONFIG,
 * PGRELAY_TRANSFORM_CONFIG, PGRELAY_MONITOR_CONFIG), built here from resource attributes, so
 * names are never typed twice (an EventBridge bus name that is wrong is accepted by AWS and
 * the events silently vanish).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CfnOutput, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { MonitorConfigInput } from '#monitor/config.ts';
import { graphEventType, type GraphEventType } from '#core/change-event.ts';
import type { StreamerConfigInput, TransformConfigInput } from '#core/config.ts';
import { CHANGES_DLQ_RETENTION, CHANGES_RETENTION, DEFAULTS, NODES_DLQ_RETENTION, NODES_RETENTION, payloadExpiry } from './defaults.ts';
import { defaultStreamerMemory, slotIdentity, validatePgRelayProps, type PgRelayProps, type ResolvedSource } from './props.ts';
import { acknowledge, bucketPrefixFinding, NAG_REASONS } from './nag.ts';
import { prepareStreamerImage } from './streamer-image.ts';

export * from './props.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** What one source deployed. */
export interface PgRelaySource {
  readonly sourceId: string;
  readonly slotName: string;
  readonly changesQueue: sqs.Queue;
  readonly changesDeadLetterQueue: sqs.Queue;
  readonly service: ecs.FargateService;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly transformFunction: nodejs.NodejsFunction;
  readonly monitorFunction: nodejs.NodejsFunction;
  readonly alarms: cloudwatch.Alarm[];
}

/** How a consumer is attached. */
export interface AddConsumerOptions {
  /**
   * `eventBridge`: a rule on the bus (filter by labels and types); `nodesQueue`: the function
   * consumes the nodes FIFO queue in order (every label; one such consumer per relay).
   * @default 'eventBridge'
   */
  readonly via?: 'eventBridge' | 'nodesQueue';
  /**
   * Node labels (table names) to receive.
   * @default - every label
   */
  readonly labels?: string[];
  /**
   * Event types to receive (GraphEventType: node.inserted, node.updated, node.deleted,
   * label.truncated, label.gap, message.emitted, …).
   * @default - every type
   */
  readonly types?: GraphEventType[];
  /**
   * Logical message prefixes to receive (`message.emitted` events of the sources' `messages`).
   * With `labels` too, the rule matches either.
   * @default - with `labels`: no messages; without: every event
   */
  readonly messagePrefixes?: string[];
  /**
   * Only events of these sources.
   * @default - every source of this relay
   */
  readonly sourceIds?: string[];
  /**
   * Records per invocation for a nodes-queue consumer (FIFO: at most 10).
   * @default 10
   */
  readonly batchSize?: number;
  /**
   * Where EventBridge puts events it could not deliver to the function after its retries
   * (24 hours, 185 attempts). Recommended: without it such events are dropped.
   * @default - none
   */
  readonly deadLetterQueue?: sqs.IQueue;
}

export class PgRelay extends Construct {
  /** The sources deployed, in the order given. */
  readonly sources: PgRelaySource[];
  /** The EventBridge bus events go to, when that output is on. */
  readonly bus: events.IEventBus | undefined;
  /** The nodes FIFO queue, when that output is on. */
  readonly nodesQueue: sqs.IQueue | undefined;
  /** The nodes queue's dead-letter queue, when pgrelay created the queue. */
  readonly nodesDeadLetterQueue: sqs.Queue | undefined;
  /** Claim-check bucket for changes and events too large for a message. */
  readonly payloadBucket: s3.Bucket;
  readonly cluster: ecs.Cluster;
  /** The security group of the streamer tasks and the monitor: allow it into the database. */
  readonly securityGroup: ec2.SecurityGroup;
  readonly dashboard: cloudwatch.Dashboard;
  /** Every alarm, all sources. */
  readonly alarms: cloudwatch.Alarm[] = [];

  private readonly props: PgRelayProps;
  private readonly resolvedSources: ResolvedSource[];
  private nodesQueueConsumer: string | undefined;

  constructor(scope: Construct, id: string, props: PgRelayProps) {
    super(scope, id);
    const resolved = validatePgRelayProps(props);
    this.props = props;
    this.resolvedSources = resolved;
    // Props validation sees one relay; two in the same app on one database with one slot name
    // (the default sourceId twice, say) would have two streamers fight over the slot.
    this.node.addValidation({ validate: () => this.slotsSharedWithOtherRelays() });
    const vpcSubnets = props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    const logRetention = retentionDays(props.logRetention);
    const outputs = props.outputs ?? {};

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'pgrelay streamer tasks and monitor: outbound to the database and AWS APIs',
      allowAllOutbound: true,
    });

    this.payloadBucket = new s3.Bucket(this, 'Payloads', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      // An object must outlive every message that can still point at it: the changes queue, its
      // DLQ (FIFO resets the age on redrive), then the nodes queue and its DLQ.
      lifecycleRules: [{ expiration: payloadExpiry(), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      removalPolicy: RemovalPolicy.RETAIN,
      ...(props.accessLogsBucket !== undefined ? { serverAccessLogsBucket: props.accessLogsBucket, serverAccessLogsPrefix: 'pgrelay-payloads/' } : {}),
    });

    if (props.accessLogsBucket === undefined) acknowledge(this.payloadBucket, 'S1', NAG_REASONS.bucketAccessLogs);

    this.cluster = new ecs.Cluster(this, 'Cluster', { vpc: props.vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });

    if (outputs.eventBridge === false) this.bus = undefined;
    else if (typeof outputs.eventBridge === 'object') this.bus = outputs.eventBridge.bus;
    else this.bus = new events.EventBus(this, 'Bus', { description: 'pgrelay graph node events' });

    if (outputs.nodesQueue === false) {
      this.nodesQueue = undefined;
      this.nodesDeadLetterQueue = undefined;
    } else if (typeof outputs.nodesQueue === 'object') {
      this.nodesQueue = outputs.nodesQueue.queue;
      this.nodesDeadLetterQueue = undefined;
    } else {
      this.nodesDeadLetterQueue = fifoQueue(this, 'NodesDlq', { retentionPeriod: NODES_DLQ_RETENTION });
      this.nodesQueue = fifoQueue(this, 'Nodes', {
        retentionPeriod: NODES_RETENTION,
        deadLetterQueue: { queue: this.nodesDeadLetterQueue, maxReceiveCount: DEFAULTS.maxReceiveCount },
      });
    }

    const image = prepareStreamerImage();
    this.sources = resolved.map((source) => this.addSource(source, { vpcSubnets, logRetention, image }));

    this.dashboard = this.buildDashboard();
    this.addOutputs();
  }

  private slotsSharedWithOtherRelays(): string[] {
    const others = this.node.root.node.findAll().filter((c): c is PgRelay => c instanceof PgRelay && c !== this);
    const problems: string[] = [];
    for (const mine of this.resolvedSources) {
      for (const other of others) {
        for (const theirs of other.resolvedSources) {
          if (slotIdentity(mine) !== slotIdentity(theirs)) continue;
          problems.push(
            `source "${mine.sourceId}": replication slot ${mine.slotName} on database ${mine.database.name} is also the slot of source "${theirs.sourceId}" of ${other.node.path}; two streamers cannot share a slot: give one of them another sourceId or slotName`,
          );
        }
      }
    }
    return problems;
  }

  /**
   * Attach a consumer: an EventBridge rule (filtered by labels, types, sources) invoking the
   * function, or the function consuming the nodes FIFO queue in order. Returns the rule or the
   * event source.
   */
  addConsumer(fn: lambda.IFunction, options: AddConsumerOptions = {}): events.Rule | SqsEventSource {
    const via = options.via ?? 'eventBridge';
    const problems: string[] = [];
    const sourceIds = options.sourceIds ?? this.sources.map((s) => s.sourceId);
    for (const id of sourceIds) if (!this.sources.some((s) => s.sourceId === id)) problems.push(`sourceIds: "${id}" is not a source of this relay`);
    const knownTypes: readonly string[] = graphEventType.options;
    for (const t of options.types ?? []) if (!knownTypes.includes(t)) problems.push(`types: "${t}" is not one of ${knownTypes.join(', ')}`);
    if (via === 'nodesQueue') {
      if (this.nodesQueue === undefined) problems.push('via nodesQueue: the relay has no nodes queue (outputs.nodesQueue is false)');
      if (options.labels !== undefined || options.types !== undefined || options.sourceIds !== undefined || options.messagePrefixes !== undefined) {
        problems.push('via nodesQueue: labels, types, messagePrefixes and sourceIds filter EventBridge rules only; the nodes queue carries every event in order');
      }
      if (this.nodesQueueConsumer !== undefined) problems.push(`via nodesQueue: ${this.nodesQueueConsumer} already consumes the nodes queue; FIFO order holds for one consumer`);
      if (options.batchSize !== undefined && (options.batchSize < 1 || options.batchSize > 10)) problems.push('batchSize: 1 to 10 for a FIFO queue');
      if (options.deadLetterQueue !== undefined) problems.push('deadLetterQueue: for EventBridge consumers; the nodes queue has its own dead-letter queue');
    } else if (this.bus === undefined) {
      problems.push('via eventBridge: the relay has no bus (outputs.eventBridge is false)');
    }
    if (problems.length > 0) throw new Error(`PgRelay.addConsumer(${fn.node.path}):\n  - ${problems.join('\n  - ')}`);

    if (via === 'nodesQueue') {
      const source = new SqsEventSource(this.nodesQueue as sqs.IQueue, { batchSize: options.batchSize ?? 10, reportBatchItemFailures: true });
      fn.addEventSource(source);
      this.nodesQueueConsumer = fn.node.path;
      this.grantPayloadRead(fn);
      return source;
    }
    const byLabel = options.labels !== undefined ? { node: { label: options.labels } } : undefined;
    const byPrefix = options.messagePrefixes !== undefined ? { message: { prefix: options.messagePrefixes } } : undefined;
    const detail = byLabel !== undefined && byPrefix !== undefined ? { $or: [byLabel, byPrefix] } : (byLabel ?? byPrefix);
    const rule = new events.Rule(this, `Consumer${this.node.children.filter((c) => c.node.id.startsWith('Consumer')).length}`, {
      eventBus: this.bus as events.IEventBus,
      description: `pgrelay events for ${fn.node.path}`,
      eventPattern: {
        source: sourceIds.map((id) => `pgrelay.${id}`),
        ...(options.types !== undefined ? { detailType: options.types } : {}),
        ...(detail !== undefined ? { detail } : {}),
      },
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 185, maxEventAge: Duration.hours(24), ...(options.deadLetterQueue !== undefined ? { deadLetterQueue: options.deadLetterQueue } : {}) })],
    });
    this.grantPayloadRead(fn);
    return rule;
  }

  /**
   * Without s3:ListBucket, S3 answers a missing (expired) object with 403 instead of 404, and a
   * reader could not tell "gone" from "not allowed"; listing is limited to the prefix.
   */
  private grantPrefixListing(grantee: iam.IGrantable, prefix: string): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.payloadBucket.bucketArn], conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } } }),
    );
  }

  /** Events too large for their channel arrive as references into the payload bucket; nodeHandler fetches them. */
  private grantPayloadRead(fn: lambda.IFunction): void {
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [this.payloadBucket.arnForObjects(`${DEFAULTS.payloadPrefix}*`)] }));
    this.grantPrefixListing(fn, DEFAULTS.payloadPrefix);
    if (fn.role !== undefined) acknowledge(fn.role, bucketPrefixFinding(this.payloadBucket, DEFAULTS.payloadPrefix), NAG_REASONS.payloadPrefix);
  }

  private addSource(source: ResolvedSource, opts: { vpcSubnets: ec2.SubnetSelection; logRetention: logs.RetentionDays; image: ReturnType<typeof prepareStreamerImage> }): PgRelaySource {
    const scope = new Construct(this, `Source-${source.sourceId}`);
    const stack = Stack.of(this);
    const streamerProps = this.props.streamer ?? {};
    const partitions = streamerProps.partitions ?? DEFAULTS.partitions;
    const payloadPrefix = `${DEFAULTS.payloadPrefix}${source.sourceId}/`;
    const db = source.database;
    if (db.securityGroup !== undefined) {
      db.securityGroup.addIngressRule(this.securityGroup, ec2.Port.tcp(db.port), `pgrelay ${source.sourceId}: streamer and monitor to PostgreSQL`);
    }
    const database = {
      host: db.host,
      port: db.port,
      name: db.name,
      secretArn: db.secret.secretArn,
      sslMode: db.sslMode,
      ...(db.caBundle !== undefined ? { caBundle: db.caBundle } : {}),
    };

    // --- the changes queue ---
    const changesDeadLetterQueue = fifoQueue(scope, 'ChangesDlq', { retentionPeriod: CHANGES_DLQ_RETENTION });
    const changesQueue = fifoQueue(scope, 'Changes', {
      retentionPeriod: CHANGES_RETENTION,
      // AWS's advice for a Lambda event source: at least six times the function's timeout.
      visibilityTimeout: Duration.seconds(DEFAULTS.transformTimeout.toSeconds() * 6),
      deadLetterQueue: { queue: changesDeadLetterQueue, maxReceiveCount: DEFAULTS.maxReceiveCount },
    });

    // --- the streamer: one task that holds the slot ---
    const logGroup = new logs.LogGroup(scope, 'StreamerLogs', { retention: opts.logRetention, removalPolicy: RemovalPolicy.DESTROY });
    const taskDefinition = new ecs.FargateTaskDefinition(scope, 'StreamerTask', {
      cpu: streamerProps.cpu ?? DEFAULTS.streamerCpu,
      memoryLimitMiB: streamerProps.memoryLimitMiB ?? defaultStreamerMemory(streamerProps.cpu ?? DEFAULTS.streamerCpu),
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });
    const streamerConfig: StreamerConfigInput = {
      sourceId: source.sourceId,
      database,
      tables: source.tables,
      tableKeys: source.tableKeys,
      messages: source.messages,
      slotName: source.slotName,
      publicationName: source.publicationName,
      queueUrl: changesQueue.queueUrl,
      largePayloads: { bucket: this.payloadBucket.bucketName, prefix: payloadPrefix },
      region: stack.region,
      partitions,
    };
    taskDefinition.addContainer('streamer', {
      image: ecs.ContainerImage.fromAsset(opts.image.directory, { platform: Platform.LINUX_ARM64 }),
      command: ['run'],
      environment: { ...opts.image.environment, PGRELAY_CONFIG: stack.toJsonString(streamerConfig) },
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
    acknowledge(taskDefinition.taskRole, bucketPrefixFinding(this.payloadBucket, payloadPrefix), NAG_REASONS.payloadPrefix);
    db.secret.grantRead(taskDefinition.taskRole);
    changesQueue.grantSendMessages(taskDefinition.taskRole);
    taskDefinition.taskRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [this.payloadBucket.arnForObjects(`${payloadPrefix}*`)] }));

    const service = new ecs.FargateService(scope, 'Streamer', {
      cluster: this.cluster,
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
      securityGroups: [this.securityGroup],
      enableExecuteCommand: false,
    });

    // --- the transform ---
    const transformConfig: TransformConfigInput = {
      sourceId: source.sourceId,
      tables: source.tables,
      outputs: {
        ...(this.bus !== undefined ? { eventBridge: { busName: this.bus.eventBusName } } : {}),
        ...(this.nodesQueue !== undefined ? { nodesQueue: { queueUrl: this.nodesQueue.queueUrl, partitions } } : {}),
      },
      largePayloads: { bucket: this.payloadBucket.bucketName, prefix: payloadPrefix },
      region: stack.region,
    };
    const transformFunction = nodeFunction(scope, 'Transform', {
      entry: 'functions/transform/handler.ts',
      description: `pgrelay ${source.sourceId}: changes to graph node events`,
      memorySize: 1024,
      timeout: DEFAULTS.transformTimeout,
      environment: { PGRELAY_TRANSFORM_CONFIG: stack.toJsonString(transformConfig) },
      logRetention: opts.logRetention,
    });
    acknowledge(transformFunction.role as iam.IRole, bucketPrefixFinding(this.payloadBucket, payloadPrefix), NAG_REASONS.payloadPrefix);
    transformFunction.addEventSource(new SqsEventSource(changesQueue, { batchSize: 10, reportBatchItemFailures: true }));
    this.bus?.grantPutEventsTo(transformFunction);
    this.nodesQueue?.grantSendMessages(transformFunction);
    // Reads the streamer's large changes, writes events too large for their channel.
    transformFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject', 's3:PutObject'], resources: [this.payloadBucket.arnForObjects(`${payloadPrefix}*`)] }));
    this.grantPrefixListing(transformFunction, payloadPrefix);

    // --- the monitor ---
    const monitorProps = this.props.monitor ?? {};
    const monitorConfig: MonitorConfigInput = {
      sourceId: source.sourceId,
      database,
      tables: source.tables,
      slotName: source.slotName,
      publicationName: source.publicationName,
      heartbeat: monitorProps.heartbeat ?? true,
      bootstrapNewTables: monitorProps.bootstrapNewTables ?? true,
      recreateLostSlot: monitorProps.recreateLostSlot ?? false,
      ecs: { cluster: this.cluster.clusterName, service: service.serviceName },
      liveness: {
        inactiveSeconds: monitorProps.liveness?.inactiveSeconds ?? 300,
        stalledSeconds: monitorProps.liveness?.stalledSeconds ?? 600,
        cooldownSeconds: monitorProps.liveness?.cooldownSeconds ?? 900,
      },
      region: stack.region,
    };
    const monitorFunction = nodeFunction(scope, 'Monitor', {
      entry: 'functions/monitor/handler.ts',
      description: `pgrelay ${source.sourceId}: slot guardian (lag, health, repairs)`,
      memorySize: 256,
      timeout: Duration.seconds(30),
      environment: { PGRELAY_MONITOR_CONFIG: stack.toJsonString(monitorConfig) },
      logRetention: opts.logRetention,
      // A failed run is not retried: the next scheduled run starts from a fresh look, and a
      // retry could act on what it saw a minute ago (e.g. recreate a slot twice).
      retryAttempts: 0,
      maxEventAge: Duration.minutes(1),
      vpc: this.props.vpc,
      vpcSubnets: opts.vpcSubnets,
      securityGroups: [this.securityGroup],
    });
    acknowledge(monitorFunction.role as iam.IRole, 'IAM5[Resource::*]', NAG_REASONS.monitorWildcard);
    db.secret.grantRead(monitorFunction);
    monitorFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ['ecs:DescribeServices'], resources: [service.serviceArn] }));
    // ListTasks names no task and StopTask's task ARNs are unknown ahead: both are bound to
    // this cluster by the ecs:cluster condition instead.
    monitorFunction.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['ecs:ListTasks', 'ecs:StopTask'], resources: ['*'], conditions: { ArnEquals: { 'ecs:cluster': this.cluster.clusterArn } } }),
    );
    new events.Rule(scope, 'MonitorSchedule', {
      description: `pgrelay ${source.sourceId}: run the slot guardian every minute`,
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new targets.LambdaFunction(monitorFunction, { retryAttempts: 0, maxEventAge: Duration.minutes(1) })],
    });

    const alarms = this.sourceAlarms(scope, source, { changesDeadLetterQueue, monitorFunction });
    return { sourceId: source.sourceId, slotName: source.slotName, changesQueue, changesDeadLetterQueue, service, taskDefinition, transformFunction, monitorFunction, alarms };
  }

  private sourceAlarms(scope: Construct, source: ResolvedSource, parts: { changesDeadLetterQueue: sqs.Queue; monitorFunction: lambda.IFunction }): cloudwatch.Alarm[] {
    const a = this.props.alarms ?? {};
    const dims = { Source: source.sourceId, Slot: source.slotName };
    const metric = (metricName: string, statistic: string, period = Duration.minutes(1)) => new cloudwatch.Metric({ namespace: 'PgRelay', metricName, dimensionsMap: dims, statistic, period });
    const name = (what: string) => `pgrelay ${source.sourceId}: ${what}`;
    const GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD;
    const GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD;
    const lagBytes = a.slotLagBytes ?? DEFAULTS.alarmSlotLagBytes;
    // [id, what it means, metric, threshold, comparison, periods]; missing data is healthy
    // except for the streamer's own heartbeat of metrics, whose silence is the signal.
    const specs: [string, string, cloudwatch.IMetric, number, cloudwatch.ComparisonOperator, number][] = [
      ['SlotLagAlarm', `the slot holds more than ${lagBytes} bytes of unacknowledged WAL`, metric('SlotLagBytes', 'Maximum'), lagBytes, GT, 5],
      ['SlotInactiveAlarm', 'no streamer has been connected to the slot for too long', metric('SlotInactiveSeconds', 'Maximum'), a.slotInactiveSeconds ?? DEFAULTS.alarmSlotInactiveSeconds, GTE, 1],
      ['SlotStalledAlarm', 'the acknowledged position has not moved for too long', metric('SlotLastAckAgeSeconds', 'Maximum'), a.slotAckAgeSeconds ?? DEFAULTS.alarmSlotAckAgeSeconds, GTE, 1],
      ['SlotLostAlarm', 'the replication slot was invalidated or dropped: changes were lost', metric('SlotLost', 'Maximum'), 1, GTE, 1],
      ['ChangesDlqAlarm', 'changes the transform could not handle are in the dead-letter queue', parts.changesDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }), 1, GTE, 1],
      ['MonitorFailingAlarm', 'the slot guardian has failed three runs in a row', parts.monitorFunction.metricErrors({ period: Duration.minutes(1), statistic: 'Sum' }), 1, GTE, 3],
    ];
    const alarms = specs.map(
      ([id, what, m, threshold, comparisonOperator, evaluationPeriods]) =>
        new cloudwatch.Alarm(scope, id, { alarmDescription: name(what), metric: m, threshold, comparisonOperator, evaluationPeriods, treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING }),
    );
    alarms.push(
      new cloudwatch.Alarm(scope, 'StreamerDownAlarm', {
        alarmDescription: name('the streamer has printed no metrics for 5 minutes (not running, or stuck)'),
        // The streamer prints its metrics every minute from its event loop; silence is the signal.
        metric: metric('InFlightBytes', 'SampleCount', Duration.minutes(5)),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      }),
    );
    if (this.nodesDeadLetterQueue !== undefined && this.node.tryFindChild('NodesDlqAlarm') === undefined) {
      alarms.push(
        new cloudwatch.Alarm(this, 'NodesDlqAlarm', {
          alarmDescription: 'pgrelay: node events a nodes-queue consumer could not handle are in the dead-letter queue',
          metric: this.nodesDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
    if (a.topic !== undefined) {
      const action = new cwActions.SnsAction(a.topic);
      for (const alarm of alarms) {
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
      }
    }
    this.alarms.push(...alarms);
    return alarms;
  }

  private buildDashboard(): cloudwatch.Dashboard {
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard');
    for (const s of this.sources) {
      const dims = { Source: s.sourceId, Slot: s.slotName };
      const m = (metricName: string, statistic = 'Maximum') => new cloudwatch.Metric({ namespace: 'PgRelay', metricName, dimensionsMap: dims, statistic, period: Duration.minutes(1) });
      dashboard.addWidgets(
        new cloudwatch.GraphWidget({ title: `${s.sourceId}: slot lag and retained WAL (bytes)`, left: [m('SlotLagBytes'), m('SlotRetainedWalBytes')], width: 8 }),
        new cloudwatch.GraphWidget({ title: `${s.sourceId}: changes streamed / sent`, left: [m('ChangesStreamed', 'Sum'), m('MessagesSent', 'Sum')], width: 8 }),
        new cloudwatch.GraphWidget({
          title: `${s.sourceId}: acknowledgement age and inactivity (s)`,
          left: [m('SlotLastAckAgeSeconds'), m('SlotInactiveSeconds')],
          width: 8,
        }),
        new cloudwatch.GraphWidget({
          title: `${s.sourceId}: queues`,
          left: [s.changesQueue.metricApproximateNumberOfMessagesVisible(), s.changesDeadLetterQueue.metricApproximateNumberOfMessagesVisible()],
          width: 12,
        }),
        new cloudwatch.GraphWidget({ title: `${s.sourceId}: transform`, left: [s.transformFunction.metricInvocations(), s.transformFunction.metricErrors()], right: [s.transformFunction.metricDuration()], width: 12 }),
        new cloudwatch.AlarmStatusWidget({ title: `${s.sourceId}: alarms`, alarms: s.alarms, width: 24 }),
      );
    }
    return dashboard;
  }

  private addOutputs(): void {
    const out = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    if (this.bus !== undefined) {
      out('BusName', this.bus.eventBusName, 'EventBridge bus of pgrelay graph node events');
      out('BusArn', this.bus.eventBusArn, 'EventBridge bus ARN');
    }
    if (this.nodesQueue !== undefined) out('NodesQueueUrl', this.nodesQueue.queueUrl, 'FIFO queue of node events (ordered consumers)');
    if (this.nodesDeadLetterQueue !== undefined) out('NodesDeadLetterQueueUrl', this.nodesDeadLetterQueue.queueUrl, 'dead-letter queue of the nodes queue');
    for (const s of this.sources) {
      const id = s.sourceId.replace(/[^A-Za-z0-9]/g, '');
      out(`ChangesQueueUrl${id}`, s.changesQueue.queueUrl, `changes FIFO queue of source ${s.sourceId}`);
      out(`ChangesDeadLetterQueueUrl${id}`, s.changesDeadLetterQueue.queueUrl, `dead-letter queue of source ${s.sourceId}`);
    }
    out('PayloadBucketName', this.payloadBucket.bucketName, 'claim-check bucket for large changes and events');
  }
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

function nodeFunction(
  scope: Construct,
  id: string,
  opts: {
    entry: string;
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
): nodejs.NodejsFunction {
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
  const fn = new nodejs.NodejsFunction(scope, id, {
    role,
    entry: path.join(ROOT, opts.entry),
    handler: 'handler',
    projectRoot: ROOT,
    depsLockFilePath: path.join(ROOT, 'package-lock.json'),
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
    bundling: {
      // The local esbuild from devDependencies: no Docker at synth.
      forceDockerBundling: false,
      format: nodejs.OutputFormat.ESM,
      target: 'node22',
      mainFields: ['module', 'main'],
      sourceMap: true,
      minify: true,
      // pg's optional native binding is never used.
      externalModules: ['pg-native'],
      banner: "import { createRequire as pgrelayCreateRequire } from 'node:module'; const require = pgrelayCreateRequire(import.meta.url);",
    },
  });
  acknowledge(fn, 'L1', NAG_REASONS.lambdaRuntime);
  return fn;
}

function retentionDays(d: Duration | undefined): logs.RetentionDays {
  if (d === undefined) return logs.RetentionDays.ONE_MONTH;
  const days = d.toDays();
  const allowed = Object.values(logs.RetentionDays).filter((v): v is number => typeof v === 'number' && v > 0 && v !== logs.RetentionDays.INFINITE).sort((x, y) => x - y);
  return (allowed.find((v) => v >= days) ?? logs.RetentionDays.TEN_YEARS) as logs.RetentionDays;
}
