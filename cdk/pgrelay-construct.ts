/**
 * PgRelay: everything pgrelay runs on AWS, as one construct. This file is its public face
 * (the props are checked in props.ts) and the order things are created in; what is created
 * lives by kind:
 *
 *   database-access.ts   the security group of the streamer and the monitor, the ingress rule into the database
 *   payload-bucket.ts    the claim-check bucket and the grants on it
 *   messaging.ts         per source the changes FIFO queue + DLQ; the nodes FIFO queue + DLQ; the EventBridge bus
 *   streamer-service.ts  the ECS cluster; per source the Fargate service holding the slot
 *   functions.ts         per source the transform Lambda (fed by the queue) and the monitor Lambda (every minute)
 *   alarms.ts            per source its alarms; the nodes-DLQ alarm; the dashboard
 *   consumers.ts         what addConsumer attaches
 *   stack-outputs.ts     the CloudFormation outputs
 *
 * Configuration reaches the running code as one JSON document per process (PGRELAY_CONFIG,
 * PGRELAY_TRANSFORM_CONFIG, PGRELAY_MONITOR_CONFIG), built from resource attributes, so
 * names are never typed twice (an EventBridge bus name that is wrong is accepted by AWS and
 * the events silently vanish).
 *
 * Construct IDs are the CloudFormation logical IDs of a deployed relay: the builders create
 * their resources directly in the relay's or the source's scope, under the IDs they always had.
 */
import type { Duration } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as events from 'aws-cdk-lib/aws-events';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { graphEventType, type GraphEventType } from '#core/change-event.ts';
import { createDashboard, createSourceAlarms } from './alarms.ts';
import { consumeNodesQueue, ruleForConsumer } from './consumers.ts';
import { allowIntoDatabase, createSecurityGroup } from './database-access.ts';
import { DEFAULTS } from './defaults.ts';
import { createMonitorFunction, createTransformFunction } from './functions.ts';
import { createChangesQueues, createEventBus, createNodesQueues } from './messaging.ts';
import { createPayloadBucket, sourcePayloadPrefix } from './payload-bucket.ts';
import { slotIdentity, validatePgRelayProps, type PgRelayProps, type ResolvedSource } from './props.ts';
import { createStackOutputs } from './stack-outputs.ts';
import { grantConsumeNodes, grantPutRules, grantReadPayloads } from './grants.ts';
import { sourceMetrics } from './source-metrics.ts';
import { streamerImage, type StreamerImage } from './streamer-image.ts';
import { createCluster, createStreamerService } from './streamer-service.ts';

export * from './props.ts';

/** What one source deployed. */
export interface PgRelaySource {
  readonly sourceId: string;
  readonly slotName: string;
  readonly changesQueue: sqs.Queue;
  readonly changesDeadLetterQueue: sqs.Queue;
  readonly service: ecs.FargateService;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly transformFunction: lambda.Function;
  readonly monitorFunction: lambda.Function;
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

    // The order of creation is the order of the template; keep it.
    this.securityGroup = createSecurityGroup(this, props.vpc);
    this.payloadBucket = createPayloadBucket(this, props.accessLogsBucket);
    this.cluster = createCluster(this, props.vpc);
    this.bus = createEventBus(this, outputs.eventBridge);
    const nodes = createNodesQueues(this, outputs.nodesQueue);
    this.nodesQueue = nodes.queue;
    this.nodesDeadLetterQueue = nodes.deadLetterQueue;

    const image = streamerImage();
    this.sources = resolved.map((source) => this.addSource(source, { vpcSubnets, logRetention, image }));

    this.dashboard = createDashboard(this, this.sources);
    createStackOutputs(this, this);
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
      const source = consumeNodesQueue(fn, this.nodesQueue as sqs.IQueue, this.payloadBucket, options.batchSize ?? 10);
      this.nodesQueueConsumer = fn.node.path;
      return source;
    }
    return ruleForConsumer(this, fn, this.bus as events.IEventBus, this.payloadBucket, { ...options, sourceIds });
  }

  /**
   * Lets `grantee` (a consumer's role or function) receive and delete node events from the
   * nodes queue, as a nodes-queue consumer outside this stack does.
   * @throws when the relay has no nodes queue (`outputs.nodesQueue` off)
   */
  grantConsumeNodes(grantee: iam.IGrantable): iam.Grant {
    return grantConsumeNodes(this.nodesQueue, grantee);
  }

  /**
   * Lets `grantee` create, change and delete rules and their targets on the relay's bus (only
   * rules of this bus), as a team that manages its own subscriptions does.
   * @throws when the relay has no bus (`outputs.eventBridge` off)
   */
  grantPutRules(grantee: iam.IGrantable): iam.Grant {
    return grantPutRules(this.bus, grantee);
  }

  /**
   * Lets `grantee` read the events too large for their channel (a `payloadRef` event, which
   * nodeHandler fetches) from every source's prefix of the payload bucket.
   */
  grantReadPayloads(grantee: iam.IGrantable): iam.Grant {
    return grantReadPayloads(this.payloadBucket, this.sources.map((s) => sourcePayloadPrefix(s.sourceId)), grantee);
  }

  /**
   * Bytes of WAL the source's slot holds unacknowledged (`PgRelay/SlotLagBytes`, Maximum per
   * minute), as `SlotLagAlarm` watches it.
   * @param sourceId - @default the first source
   */
  metricSlotLag(props?: cloudwatch.MetricOptions, sourceId?: string): cloudwatch.Metric {
    return sourceMetrics.slotLag(this.sourceFor(sourceId, 'metricSlotLag'), props);
  }

  /**
   * The delay: seconds the source's acknowledged position has not moved
   * (`PgRelay/SlotLastAckAgeSeconds`, Maximum per minute), as `SlotStalledAlarm` watches it.
   * @param sourceId - @default the first source
   */
  metricAckAge(props?: cloudwatch.MetricOptions, sourceId?: string): cloudwatch.Metric {
    return sourceMetrics.ackAge(this.sourceFor(sourceId, 'metricAckAge'), props);
  }

  /**
   * Seconds no streamer has been connected to the source's slot (`PgRelay/SlotInactiveSeconds`),
   * as `SlotInactiveAlarm` watches it.
   * @param sourceId - @default the first source
   */
  metricSlotInactive(props?: cloudwatch.MetricOptions, sourceId?: string): cloudwatch.Metric {
    return sourceMetrics.slotInactive(this.sourceFor(sourceId, 'metricSlotInactive'), props);
  }

  /**
   * 1 when the source's slot was invalidated or dropped (`PgRelay/SlotLost`), as `SlotLostAlarm`
   * watches it.
   * @param sourceId - @default the first source
   */
  metricSlotLost(props?: cloudwatch.MetricOptions, sourceId?: string): cloudwatch.Metric {
    return sourceMetrics.slotLost(this.sourceFor(sourceId, 'metricSlotLost'), props);
  }

  /**
   * Errors: change batches in the source's dead-letter queue (Maximum per minute), as
   * `ChangesDlqAlarm` watches them.
   * @param sourceId - @default the first source
   */
  metricChangesDeadLettered(props?: cloudwatch.MetricOptions, sourceId?: string): cloudwatch.Metric {
    return sourceMetrics.changesDeadLettered(this.sourceFor(sourceId, 'metricChangesDeadLettered'), props);
  }

  /**
   * Errors: failed runs of the source's slot guardian (Sum per minute), as `MonitorFailingAlarm`
   * watches them.
   * @param sourceId - @default the first source
   */
  metricMonitorErrors(props?: cloudwatch.MetricOptions, sourceId?: string): cloudwatch.Metric {
    return sourceMetrics.monitorErrors(this.sourceFor(sourceId, 'metricMonitorErrors'), props);
  }

  /**
   * Errors: failed invocations of the source's transform (Sum per minute; failed batches are
   * retried, then dead-lettered).
   * @param sourceId - @default the first source
   */
  metricTransformErrors(props?: cloudwatch.MetricOptions, sourceId?: string): cloudwatch.Metric {
    return sourceMetrics.transformErrors(this.sourceFor(sourceId, 'metricTransformErrors'), props);
  }

  private sourceFor(sourceId: string | undefined, method: string): PgRelaySource {
    const source = sourceId === undefined ? this.sources[0] : this.sources.find((s) => s.sourceId === sourceId);
    if (source === undefined) throw new Error(`${method}: "${sourceId}" is not a source of this relay (sources: ${this.sources.map((s) => s.sourceId).join(', ')})`);
    return source;
  }

  /** One source: its queues, streamer, transform, monitor and alarms, in `Source-<sourceId>`. */
  private addSource(source: ResolvedSource, opts: { vpcSubnets: ec2.SubnetSelection; logRetention: logs.RetentionDays; image: StreamerImage }): PgRelaySource {
    const scope = new Construct(this, `Source-${source.sourceId}`);
    const streamer = this.props.streamer ?? {};
    const partitions = streamer.partitions ?? DEFAULTS.partitions;
    const payloadPrefix = sourcePayloadPrefix(source.sourceId);
    const { payloadBucket } = this;
    allowIntoDatabase(source, this.securityGroup);

    const { changesQueue, changesDeadLetterQueue } = createChangesQueues(scope);
    const { service, taskDefinition } = createStreamerService(scope, {
      source,
      streamer,
      partitions,
      image: opts.image,
      cluster: this.cluster,
      securityGroup: this.securityGroup,
      vpcSubnets: opts.vpcSubnets,
      logRetention: opts.logRetention,
      changesQueue,
      payloadBucket,
      payloadPrefix,
    });
    const transformFunction = createTransformFunction(scope, {
      source,
      changesQueue,
      bus: this.bus,
      nodesQueue: this.nodesQueue,
      payloadBucket,
      payloadPrefix,
      logRetention: opts.logRetention,
    });
    const monitorFunction = createMonitorFunction(scope, {
      source,
      monitor: this.props.monitor ?? {},
      cluster: this.cluster,
      service,
      vpc: this.props.vpc,
      vpcSubnets: opts.vpcSubnets,
      securityGroup: this.securityGroup,
      logRetention: opts.logRetention,
    });
    const alarms = createSourceAlarms(this, scope, {
      transformFunction,
      source,
      alarms: this.props.alarms ?? {},
      changesDeadLetterQueue,
      monitorFunction,
      nodesDeadLetterQueue: this.nodesDeadLetterQueue,
    });
    this.alarms.push(...alarms);
    return { sourceId: source.sourceId, slotName: source.slotName, changesQueue, changesDeadLetterQueue, service, taskDefinition, transformFunction, monitorFunction, alarms };
  }
}

/** `logRetention` as the CloudWatch Logs retention that keeps logs at least that long (default one month). */
function retentionDays(d: Duration | undefined): logs.RetentionDays {
  if (d === undefined) return logs.RetentionDays.ONE_MONTH;
  const days = d.toDays();
  const allowed = Object.values(logs.RetentionDays).filter((v): v is number => typeof v === 'number' && v > 0 && v !== logs.RetentionDays.INFINITE).sort((x, y) => x - y);
  return (allowed.find((v) => v >= days) ?? logs.RetentionDays.TEN_YEARS) as logs.RetentionDays;
}
