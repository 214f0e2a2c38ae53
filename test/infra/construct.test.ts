/**
 * The PgRelay construct, read back from its CloudFormation: alarms, the transform's event
 * source, one private task, ARM64 and Node 22, encryption, logs, IAM scoped to resources, the
 * configuration documents wired from resource attributes (and accepted by the parsers the
 * running code uses), outputs, addConsumer both ways, several sources and two relays side by
 * side, and cdk-nag's AwsSolutions pack with zero unacknowledged findings on every stack.
 *
 * Every stack lives in one App with the cdk-nag plugin and is synthesized once. Lambda bundling
 * is skipped (`aws:cdk:bundling-stacks: []`): it does not change a template property asserted
 * here, and test/infra/lambda-bundles.test.ts and app-synth.test.ts cover the real bundles.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { App, CfnResource, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphEventType, type GraphEventType } from '#core/change-event.ts';
import { ENV, parseStreamerConfig, parseTransformConfig, TRANSFORM_ENV } from '#core/config.ts';
import { MONITOR_ENV, parseMonitorConfig } from '#monitor/config.ts';
import { CHANGES_DLQ_RETENTION, CHANGES_RETENTION, DEFAULTS, NODES_DLQ_RETENTION, NODES_RETENTION } from '../../cdk/defaults.ts';
import { NAG_REASONS } from '../../cdk/nag.ts';
import { newVpc } from '../../cdk/app.ts';
import { PgRelay } from '../../cdk/pgrelay-construct.ts';
import { defaultStreamerMemory } from '../../cdk/props.ts';

// ---------------------------------------------------------------------------------------
// Fixtures

const ENV_EU = { account: '123456789012', region: 'eu-west-1' };
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] as string[] };
const PRIVATE_SUBNETS = ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0bbbbbbbbbbbbbbb2'];
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgrelay/shop-AbCdEf';
const SECRET_ARN_2 = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgrelay/billing-GhIjKl';
/** The reason the test gives for findings on its own fixtures (the user's resources around pgrelay): not pgrelay's. */
const FIXTURE_REASON = 'test fixture: a resource of the user outside pgrelay (consumer function, alarm topic); not what this suite judges';

function privateVpc(stack: Stack): ec2.IVpc {
  return ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['eu-west-1a', 'eu-west-1b'], privateSubnetIds: PRIVATE_SUBNETS });
}

function secret(stack: Stack, arn = SECRET_ARN, id = 'DbSecret'): secretsmanager.ISecret {
  return secretsmanager.Secret.fromSecretCompleteArn(stack, id, arn);
}

/** A user's consumer: its own role without managed policies, so only pgrelay's grants are on it. */
function consumerFunction(stack: Stack, id: string): lambda.Function {
  const role = new iam.Role(stack, `${id}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  const fn = new lambda.Function(stack, id, {
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    handler: 'index.handler',
    code: lambda.Code.fromInline('exports.handler = async () => ({ batchItemFailures: [] });'),
    role,
  });
  Validations.of(fn).acknowledge({ id: 'AwsSolutions-L1', reason: FIXTURE_REASON });
  return fn;
}

// ---------------------------------------------------------------------------------------
// Reading templates

// A synthesized CloudFormation template is untyped JSON; the helpers below narrow what they read.
type Json = any;
type Resources = Record<string, { Type: string; Properties: Json }>;

const logicalId = (c: IConstruct): string => {
  const cfn = (CfnResource.isCfnResource(c) ? c : c.node.defaultChild) as CfnResource;
  return Stack.of(cfn).getLogicalId(cfn);
};
const ofType = (t: Template, type: string): Resources => t.findResources(type) as Resources;
const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** `{Ref}`/`{Fn::GetAtt}` as a marker string, so a joined JSON document parses. */
function marker(v: Json): string {
  if (typeof v === 'object' && v !== null && 'Ref' in v) return `@@Ref:${v.Ref}@@`;
  if (typeof v === 'object' && v !== null && 'Fn::GetAtt' in v) return `@@GetAtt:${(v['Fn::GetAtt'] as string[]).join('.')}@@`;
  return `@@Other:${JSON.stringify(v).replaceAll('"', "'")}@@`;
}

/** An environment value: a literal, or the Fn::Join `stack.toJsonString` makes, with markers for the tokens. */
function joined(v: Json): string {
  if (typeof v === 'string') return v;
  const join = v?.['Fn::Join'] as [string, Json[]] | undefined;
  if (join === undefined) return marker(v);
  return join[1].map((part) => (typeof part === 'string' ? part : marker(part))).join(join[0]);
}

function envOf(fn: Json): Record<string, Json> {
  return fn.Properties.Environment?.Variables ?? {};
}

function containerOf(taskDef: Json): Json {
  const containers = taskDef.Properties.ContainerDefinitions as Json[];
  expect(containers).toHaveLength(1);
  return containers[0];
}

function containerEnv(taskDef: Json): Record<string, Json> {
  return Object.fromEntries((containerOf(taskDef).Environment as { Name: string; Value: Json }[]).map((e) => [e.Name, e.Value]));
}

/** The configuration document a process gets, its tokens as markers. */
const configDoc = (value: Json): Json => JSON.parse(joined(value));

/**
 * The document with every marker replaced by a value of the shape CloudFormation resolves it
 * to (a FIFO queue's URL ends in .fifo, a bucket name is lower case), so the runtime parsers can
 * judge it.
 */
function materialize(doc: Json, resources: Resources): Json {
  const resolveMarker = (kind: string, ref: string): string => {
    const [id = '', attr] = ref.split('.');
    if (kind === 'Ref' && id === 'AWS::URLSuffix') return 'amazonaws.com';
    if (kind === 'Ref' && id === 'AWS::Partition') return 'aws';
    const type = resources[id]?.Type;
    if (kind === 'Ref' && type === 'AWS::SQS::Queue') return `https://sqs.eu-west-1.amazonaws.com/123456789012/${id}${resources[id]?.Properties.FifoQueue ? '.fifo' : ''}`;
    if (kind === 'Ref' && type === 'AWS::S3::Bucket') return id.toLowerCase().slice(0, 63);
    if (kind === 'Ref' && (type === 'AWS::Events::EventBus' || type === 'AWS::ECS::Cluster')) return id;
    if (kind === 'GetAtt' && type === 'AWS::ECS::Service' && attr === 'Name') return id;
    throw new Error(`unexpected token in a configuration document: ${kind}:${ref} (${type ?? 'not a resource of the stack'})`);
  };
  const walk = (v: Json): Json => {
    if (typeof v === 'string') return v.replace(/@@(Ref|GetAtt):([^@]+)@@/g, (_, kind: string, ref: string) => resolveMarker(kind, ref));
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  const out = walk(doc);
  expect(JSON.stringify(out)).not.toContain('@@');
  return out;
}

/** Every Allow statement of every AWS::IAM::Policy, with the roles it is attached to. */
function statementsOf(t: Template): { policy: string; roles: string[]; actions: string[]; resources: Json[]; condition: Json }[] {
  return Object.entries(ofType(t, 'AWS::IAM::Policy')).flatMap(([policy, p]) => {
    const roles = asArray(p.Properties.Roles as Json[]).map((r) => r.Ref as string);
    return (p.Properties.PolicyDocument.Statement as Json[]).map((s) => {
      expect(s.Effect, `${policy}: identity policies only allow`).toBe('Allow');
      return { policy, roles, actions: asArray<string>(s.Action), resources: asArray<Json>(s.Resource), condition: s.Condition };
    });
  });
}

const getAttArn = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });
const prefixArn = (bucketId: string, prefix: string) => ({ 'Fn::Join': ['', [getAttArn(bucketId), `/${prefix}*`]] });

const ENI_ACTIONS = ['ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'];

interface IamExpectations {
  relay: PgRelay;
  /** Secret ARN of each source, by sourceId. */
  secretArns: Record<string, string>;
  /** The bus's ARN as it appears in the template. */
  busArn?: Json;
  /** Consumer functions and the prefix they may read. */
  consumerRoles?: string[];
}

/**
 * Every statement of every policy, judged: which wildcards are allowed (and on whose role), and
 * that each service's actions name only the resource that role needs. Returns the problems.
 */
function iamProblems(t: Template, x: IamExpectations): string[] {
  const problems: string[] = [];
  const bucketId = logicalId(x.relay.payloadBucket);
  const clusterArn = getAttArn(logicalId(x.relay.cluster));
  const bySource = new Map(
    x.relay.sources.map((s) => [
      s.sourceId,
      {
        taskRole: logicalId(s.taskDefinition.taskRole),
        executionRole: logicalId(s.taskDefinition.obtainExecutionRole()),
        transformRole: logicalId(s.transformFunction.role as iam.IRole),
        monitorRole: logicalId(s.monitorFunction.role as iam.IRole),
        changesQueue: logicalId(s.changesQueue),
        service: logicalId(s.service),
      },
    ]),
  );
  const roleKind = (role: string): { kind: string; sourceId?: string } => {
    for (const [sourceId, r] of bySource) {
      if (role === r.taskRole) return { kind: 'task', sourceId };
      if (role === r.executionRole) return { kind: 'execution', sourceId };
      if (role === r.transformRole) return { kind: 'transform', sourceId };
      if (role === r.monitorRole) return { kind: 'monitor', sourceId };
    }
    if (x.consumerRoles?.includes(role)) return { kind: 'consumer' };
    return { kind: 'unknown' };
  };
  const resources = t.toJSON().Resources as Resources;
  const isGetAttOf = (r: Json, type: string) => typeof r === 'object' && r !== null && Array.isArray(r['Fn::GetAtt']) && r['Fn::GetAtt'][1] === 'Arn' && resources[r['Fn::GetAtt'][0]]?.Type === type;

  for (const s of statementsOf(t)) {
    expect(s.roles, `${s.policy} is attached to exactly one role`).toHaveLength(1);
    const role = roleKind(s.roles[0] as string);
    const where = `${s.policy} (${role.kind}${role.sourceId ? ` of ${role.sourceId}` : ''}) ${JSON.stringify(s.actions)}`;
    const mine = role.sourceId !== undefined ? bySource.get(role.sourceId) : undefined;
    if (role.kind === 'unknown') problems.push(`${where}: a policy on a role that is neither pgrelay's nor a consumer's`);
    for (const a of s.actions) if (a.includes('*')) problems.push(`${where}: wildcard action ${a}`);

    // Resource "*": only the three acknowledged cases.
    if (s.resources.includes('*')) {
      const only = (allowed: string[]) => s.actions.every((a) => allowed.includes(a));
      const ok =
        (role.kind === 'execution' && s.actions.length === 1 && s.actions[0] === 'ecr:GetAuthorizationToken') ||
        (role.kind === 'monitor' && only(ENI_ACTIONS) && s.condition === undefined) ||
        (role.kind === 'monitor' && only(['ecs:ListTasks', 'ecs:StopTask']) && JSON.stringify(s.condition) === JSON.stringify({ ArnEquals: { 'ecs:cluster': clusterArn } }));
      if (!ok || s.resources.length !== 1) problems.push(`${where}: Resource * ${JSON.stringify(s.condition ?? {})}`);
      continue;
    }

    // Every other resource names something: a literal ARN without wildcards, or an attribute.
    for (const r of s.resources) {
      if (typeof r === 'string') {
        if (!r.startsWith('arn:') || r.includes('*')) problems.push(`${where}: resource ${r}`);
      } else if (r['Fn::Join'] !== undefined) {
        const literal = (r['Fn::Join'][1] as Json[]).filter((p) => typeof p === 'string').join('');
        if (literal.includes('*') && !(s.actions.every((a) => a === 's3:GetObject' || a === 's3:PutObject') && JSON.stringify(r['Fn::Join'][1][0]) === JSON.stringify(getAttArn(bucketId)))) {
          problems.push(`${where}: wildcard resource ${JSON.stringify(r)}`);
        }
      } else if (r.Ref === undefined && r['Fn::GetAtt'] === undefined) {
        problems.push(`${where}: resource ${JSON.stringify(r)}`);
      }
    }

    const service = (prefix: string) => s.actions.some((a) => a.startsWith(prefix));
    const same = (expected: Json[]) => JSON.stringify(s.resources) === JSON.stringify(expected);
    if (s.actions.includes('s3:ListBucket')) {
      // Listing lets S3 answer 404 for an expired object instead of 403; only the role's own prefix.
      const prefix = role.kind === 'consumer' ? DEFAULTS.payloadPrefix : `${DEFAULTS.payloadPrefix}${role.sourceId}/`;
      if (s.actions.length !== 1 || !['transform', 'consumer'].includes(role.kind)) problems.push(`${where}: ListBucket with other actions or on a ${role.kind} role`);
      if (!same([getAttArn(bucketId)])) problems.push(`${where}: ListBucket on ${JSON.stringify(s.resources)}`);
      if (JSON.stringify(s.condition) !== JSON.stringify({ StringLike: { 's3:prefix': `${prefix}*` } }) && JSON.stringify(s.condition) !== JSON.stringify({ StringLike: { 's3:prefix': [`${prefix}*`] } })) {
        problems.push(`${where}: ListBucket not limited to ${prefix}: ${JSON.stringify(s.condition)}`);
      }
    } else if (service('s3:')) {
      const allowed = role.kind === 'task' ? ['s3:PutObject'] : role.kind === 'transform' ? ['s3:GetObject', 's3:PutObject'] : role.kind === 'consumer' ? ['s3:GetObject'] : [];
      if (!s.actions.every((a) => allowed.includes(a))) problems.push(`${where}: S3 actions beyond ${allowed.join(', ') || 'none'}`);
      const prefix = role.kind === 'consumer' ? DEFAULTS.payloadPrefix : `${DEFAULTS.payloadPrefix}${role.sourceId}/`;
      if (!same([prefixArn(bucketId, prefix)])) problems.push(`${where}: S3 resources ${JSON.stringify(s.resources)} are not exactly the ${prefix} prefix`);
    }
    if (service('secretsmanager:')) {
      if (!['task', 'monitor'].includes(role.kind)) problems.push(`${where}: secret read outside the streamer and monitor`);
      if (!same([x.secretArns[role.sourceId ?? '']])) problems.push(`${where}: secret resources ${JSON.stringify(s.resources)}`);
      if (!s.actions.every((a) => a === 'secretsmanager:GetSecretValue' || a === 'secretsmanager:DescribeSecret')) problems.push(`${where}: secret actions beyond reading`);
    }
    if (s.actions.includes('sqs:SendMessage')) {
      if (role.kind === 'task' && !same([getAttArn(mine?.changesQueue ?? '')])) problems.push(`${where}: the streamer sends to ${JSON.stringify(s.resources)}, not its changes queue`);
      if (role.kind === 'transform' && !same([x.relay.nodesQueue !== undefined ? (Stack.of(x.relay).resolve(x.relay.nodesQueue.queueArn) as Json) : null])) problems.push(`${where}: the transform sends to ${JSON.stringify(s.resources)}, not the nodes queue`);
      if (!['task', 'transform'].includes(role.kind)) problems.push(`${where}: SQS send on a ${role.kind} role`);
    }
    if (s.actions.some((a) => a === 'sqs:ReceiveMessage' || a === 'sqs:DeleteMessage')) {
      if (role.kind === 'transform' && !same([getAttArn(mine?.changesQueue ?? '')])) problems.push(`${where}: the transform consumes ${JSON.stringify(s.resources)}`);
      if (role.kind === 'consumer' && !same([Stack.of(x.relay).resolve(x.relay.nodesQueue?.queueArn) as Json])) problems.push(`${where}: a consumer consumes ${JSON.stringify(s.resources)}`);
      if (!['transform', 'consumer'].includes(role.kind)) problems.push(`${where}: SQS receive on a ${role.kind} role`);
    }
    if (s.actions.includes('events:PutEvents') && (role.kind !== 'transform' || !same([x.busArn]))) problems.push(`${where}: PutEvents on ${JSON.stringify(s.resources)}`);
    if (s.actions.includes('ecs:DescribeServices') && (role.kind !== 'monitor' || !same([{ Ref: mine?.service }]))) problems.push(`${where}: DescribeServices on ${JSON.stringify(s.resources)}`);
    if (service('logs:')) {
      if (!s.resources.every((r) => isGetAttOf(r, 'AWS::Logs::LogGroup'))) problems.push(`${where}: logs actions on ${JSON.stringify(s.resources)}, not a log group of the stack`);
    }
    if (s.actions.some((a) => a.startsWith('ecr:') && a !== 'ecr:GetAuthorizationToken')) {
      const literal = JSON.stringify(s.resources);
      if (role.kind !== 'execution' || !literal.includes(':repository/cdk-hnb659fds-container-assets-123456789012-eu-west-1')) problems.push(`${where}: image pull on ${literal}`);
    }
  }
  return problems;
}

/** Acknowledgements recorded on the constructs under `scope`: construct path, rule id, reason. */
function acknowledgementsUnder(scope: IConstruct): { path: string; id: string; reason: string }[] {
  return scope.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ path: c.node.path, id: id.replace(/^annotation::/i, ''), reason }))),
  );
}

/** What cdk-nag's AwsSolutions pack finds on `scope` with every acknowledgement ignored. */
function unacknowledgedFindings(scope: IConstruct): { rule: string; path: string }[] {
  const pack = new AwsSolutionsChecks();
  // The pack's own acknowledgement lookup, switched off: the findings the acknowledgements hide.
  (pack as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
  return pack.validateScope(scope).violations.flatMap((v) => v.violatingResources.map((r) => ({ rule: v.ruleName, path: r.constructPath ?? '' })));
}

// ---------------------------------------------------------------------------------------
// The stacks: one App, the cdk-nag plugin, one synth.

let outdir: string;
let app: App;
let synthError: Error | undefined;

interface Built {
  stack: Stack;
  relay: PgRelay;
  template: () => Template;
}

const built: Record<string, Built & Record<string, Json>> = {};
let cached = new Map<string, Template>();
function entry(id: string, stack: Stack, relay: PgRelay, extra: Record<string, Json> = {}): void {
  built[id] = {
    stack,
    relay,
    template: () => {
      const hit = cached.get(id);
      if (hit) return hit;
      const t = Template.fromStack(stack);
      cached.set(id, t);
      return t;
    },
    ...extra,
  };
}

beforeAll(() => {
  outdir = mkdtempSync(path.join(os.tmpdir(), 'pgrelay-construct-'));
  app = new App({ outdir, context: NO_BUNDLING });

  // 1. One source with every option: alarm topic and thresholds, database security group, log
  //    retention, and both kinds of consumer.
  {
    const stack = new Stack(app, 'Full', { env: ENV_EU });
    const topic = new sns.Topic(stack, 'AlarmTopic', { enforceSSL: true });
    Validations.of(topic).acknowledge({ id: 'AwsSolutions-SNS2', reason: FIXTURE_REASON });
    const relay = new PgRelay(stack, 'Relay', {
      vpc: privateVpc(stack),
      sourceId: 'shop',
      database: { host: 'shop.cluster-abc.eu-west-1.rds.amazonaws.com', name: 'shop', secret: secret(stack), securityGroup: ec2.SecurityGroup.fromSecurityGroupId(stack, 'DbSg', 'sg-0123456789abcdef0') },
      tables: ['public.orders', 'sales.order_items'],
      alarms: { topic, slotLagBytes: 5_000_000, slotInactiveSeconds: 120, slotAckAgeSeconds: 300 },
      logRetention: Duration.days(10),
    });
    const byLabel = consumerFunction(stack, 'OrdersConsumer');
    const rule = relay.addConsumer(byLabel, { labels: ['orders'], types: ['node.inserted', 'node.updated'] });
    const ordered = consumerFunction(stack, 'OrderedConsumer');
    const source = relay.addConsumer(ordered, { via: 'nodesQueue' });
    entry('full', stack, relay, { topic, byLabel, ordered, rule, source });
  }

  // 2. Every default, in a VPC of its own (the bundled app's first-try VPC: flow logs, private subnets).
  {
    const stack = new Stack(app, 'Defaults', { env: ENV_EU });
    const vpc = newVpc(stack);
    const relay = new PgRelay(stack, 'Relay', { vpc, database: { host: 'db.internal', name: 'app', secret: secret(stack) }, tables: ['orders'] });
    entry('defaults', stack, relay, { vpc });
  }

  // 3. Several sources, streamer sizing, a consumer of one source.
  {
    const stack = new Stack(app, 'Multi', { env: ENV_EU });
    const relay = new PgRelay(stack, 'Relay', {
      vpc: privateVpc(stack),
      sources: [
        { sourceId: 'shop', database: { host: 'shop.internal', name: 'shop', secret: secret(stack) }, tables: ['public.orders'] },
        { sourceId: 'billing-eu', database: { host: 'billing.internal', name: 'billing', port: 5433, secret: secret(stack, SECRET_ARN_2, 'BillingSecret') }, tables: ['billing.invoices'], tableKeys: { 'billing.invoices': ['invoice_no'] } },
      ],
      streamer: { cpu: 1024, memoryLimitMiB: 2048, partitions: 32 },
    });
    const billing = consumerFunction(stack, 'BillingConsumer');
    relay.addConsumer(billing, { sourceIds: ['billing-eu'] });
    const all = consumerFunction(stack, 'AllConsumer');
    relay.addConsumer(all);
    entry('multi', stack, relay, { billing, all });
  }

  // 4. The user's bus, the user's FIFO nodes queue, an access logs bucket, consumers both ways.
  {
    const stack = new Stack(app, 'UserOutputs', { env: ENV_EU });
    const bus = new events.EventBus(stack, 'UserBus', { description: 'the user bus' });
    const queue = sqs.Queue.fromQueueArn(stack, 'UserNodes', 'arn:aws:sqs:eu-west-1:123456789012:graph-nodes.fifo');
    const accessLogs = s3.Bucket.fromBucketName(stack, 'AccessLogs', 'my-access-logs');
    const relay = new PgRelay(stack, 'Relay', {
      vpc: privateVpc(stack),
      sourceId: 'shop',
      database: { host: 'outputs.internal', name: 'shop', secret: secret(stack) },
      tables: ['public.orders'],
      outputs: { eventBridge: { bus }, nodesQueue: { queue } },
      accessLogsBucket: accessLogs,
    });
    const byBus = consumerFunction(stack, 'BusConsumer');
    relay.addConsumer(byBus, { labels: ['orders'] });
    const byQueue = consumerFunction(stack, 'QueueConsumer');
    relay.addConsumer(byQueue, { via: 'nodesQueue', batchSize: 5 });
    entry('userOutputs', stack, relay, { bus, queue, byBus, byQueue });
  }

  // 5. No nodes queue: EventBridge only.
  {
    const stack = new Stack(app, 'BusOnly', { env: ENV_EU });
    const relay = new PgRelay(stack, 'Relay', { vpc: privateVpc(stack), database: { host: 'bus-only.internal', name: 'shop', secret: secret(stack) }, tables: ['public.orders'], outputs: { nodesQueue: false } });
    relay.addConsumer(consumerFunction(stack, 'Consumer'));
    entry('busOnly', stack, relay);
  }

  // 6. No bus: the nodes queue only.
  {
    const stack = new Stack(app, 'QueueOnly', { env: ENV_EU });
    const relay = new PgRelay(stack, 'Relay', { vpc: privateVpc(stack), database: { host: 'queue-only.internal', name: 'shop', secret: secret(stack) }, tables: ['public.orders'], outputs: { eventBridge: false } });
    relay.addConsumer(consumerFunction(stack, 'Consumer'), { via: 'nodesQueue' });
    entry('queueOnly', stack, relay);
  }

  // 7. Two relays side by side in one stack.
  {
    const stack = new Stack(app, 'TwoRelays', { env: ENV_EU });
    const vpc = privateVpc(stack);
    const a = new PgRelay(stack, 'RelayA', { vpc, sourceId: 'shop', database: { host: 'orders.internal', name: 'shop', secret: secret(stack) }, tables: ['public.orders'] });
    const b = new PgRelay(stack, 'RelayB', { vpc, sourceId: 'shop', database: { host: 'crm.internal', name: 'crm', secret: secret(stack, SECRET_ARN_2, 'CrmSecret') }, tables: ['public.contacts'] });
    entry('two', stack, a, { b });
  }

  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  try {
    app.synth();
  } catch (err) {
    // The plugin's findings are in the report; the thrown message only points at it.
    let report = '';
    try {
      report = readFileSync(path.join(outdir, 'validation-report.json'), 'utf8');
    } catch {
      // no report: the failure was not the validation
    }
    synthError = new Error(`${(err as Error).message}\n${report}`);
  }
}, 180_000);

afterAll(() => {
  cached = new Map();
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

const get = (id: string) => {
  if (synthError) throw synthError;
  return built[id] as Built & Record<string, Json>;
};

// ---------------------------------------------------------------------------------------

describe('cdk-nag AwsSolutions', () => {
  it('synthesizes every prop combination with zero unacknowledged findings', () => {
    expect(synthError?.message).toBeUndefined();
    const report = JSON.parse(readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) as { pluginReports: { pluginName: string; violations?: unknown[] }[] };
    for (const r of report.pluginReports) expect(r.violations ?? [], r.pluginName).toEqual([]);
  });

  it('acknowledges only findings that exist, each on the construct that has it, with a reason that says why', () => {
    const reasons = new Set<string>(Object.values(NAG_REASONS));
    for (const [name, { stack }] of Object.entries(built)) {
      const raw = unacknowledgedFindings(stack);
      // cdk-nag's only; CDK itself acknowledges some CloudFormation-Validate warnings of its own constructs.
      const acks = acknowledgementsUnder(stack).filter((a) => a.id.startsWith('AwsSolutions-') && a.reason !== FIXTURE_REASON);
      expect(acks.length, name).toBeGreaterThan(0);
      for (const ack of acks) {
        expect(reasons.has(ack.reason), `${ack.path} ${ack.id}: a reason from NAG_REASONS`).toBe(true);
        // Not stale, not broader than the construct: the finding exists on it or below it.
        const hidden = raw.filter((f) => f.rule === ack.id && (f.path === ack.path || f.path.startsWith(`${ack.path}/`)));
        expect(hidden.length, `${name}: ${ack.path} acknowledges ${ack.id}, which no resource under it has`).toBeGreaterThan(0);
      }
      // And every raw finding on a pgrelay resource is one of those acknowledgements (the synth passing says the same from the other side).
      for (const f of raw.filter((r) => r.path.includes('/Relay'))) {
        expect(acks.some((a) => a.id === f.rule && (f.path === a.path || f.path.startsWith(`${a.path}/`))), `${f.rule} on ${f.path}`).toBe(true);
      }
    }
  });

  it('acknowledges the expected findings on a single relay, and S1 only without an access logs bucket', () => {
    const ids = (b: Built) => [...new Set(acknowledgementsUnder(b.stack).filter((a) => a.id.startsWith('AwsSolutions-') && a.reason !== FIXTURE_REASON).map((a) => `${a.path.replace(`${b.stack.stackName}/`, '')} ${a.id.replace(/<[A-Za-z0-9]+\.Arn>/, '<Bucket.Arn>')}`))].sort();
    expect(ids(get('full'))).toEqual(
      [
        'OrderedConsumerRole AwsSolutions-IAM5[Resource::<Bucket.Arn>/pgrelay/*]',
        'OrdersConsumerRole AwsSolutions-IAM5[Resource::<Bucket.Arn>/pgrelay/*]',
        'Relay/Payloads AwsSolutions-S1',
        'Relay/Source-shop/Monitor AwsSolutions-L1',
        'Relay/Source-shop/MonitorRole AwsSolutions-IAM5[Resource::*]',
        'Relay/Source-shop/StreamerTask AwsSolutions-ECS2',
        'Relay/Source-shop/StreamerTask/ExecutionRole AwsSolutions-IAM5[Resource::*]',
        'Relay/Source-shop/StreamerTask/TaskRole AwsSolutions-IAM5[Resource::<Bucket.Arn>/pgrelay/shop/*]',
        'Relay/Source-shop/Transform AwsSolutions-L1',
        'Relay/Source-shop/TransformRole AwsSolutions-IAM5[Resource::<Bucket.Arn>/pgrelay/shop/*]',
      ].sort(),
    );
    expect(ids(get('userOutputs')).filter((i) => i.includes('-S1'))).toEqual([]);
  });

  it('gives reasons of substance: longer than 40 characters, saying why the finding is accepted', () => {
    for (const [key, reason] of Object.entries(NAG_REASONS)) {
      expect(reason.length, key).toBeGreaterThan(40);
      expect(reason, key).toMatch(/\b(because|so|needs?|only|not|no|never|limited|has no)\b/);
    }
    // The wildcard reasons name what the wildcard is for.
    expect(NAG_REASONS.executionRoleWildcard).toContain('ecr:GetAuthorizationToken');
    expect(NAG_REASONS.monitorWildcard).toMatch(/network-interface/);
    expect(NAG_REASONS.monitorWildcard).toContain('ecs:cluster');
    expect(NAG_REASONS.payloadPrefix).toMatch(/GetObject\/PutObject/);
  });
});

describe('alarms', () => {
  const alarmsOf = (t: Template) => Object.values(ofType(t, 'AWS::CloudWatch::Alarm')).map((a) => a.Properties);

  it('watch the slot, the streamer, the dead-letter queues and the monitor, with the thresholds of props.alarms', () => {
    const { relay, topic } = get('full');
    const t = get('full').template();
    const alarms = alarmsOf(t);
    expect(alarms).toHaveLength(8);
    expect(relay.alarms).toHaveLength(8);
    const pg = (metricName: string) => alarms.filter((a) => a.Namespace === 'PgRelay' && a.MetricName === metricName);
    const dims = [
      { Name: 'Slot', Value: 'pgrelay_shop' },
      { Name: 'Source', Value: 'shop' },
    ];
    expect(pg('SlotLagBytes')).toEqual([expect.objectContaining({ Threshold: 5_000_000, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 5, Period: 60, Statistic: 'Maximum', Dimensions: dims })]);
    expect(pg('SlotInactiveSeconds')).toEqual([expect.objectContaining({ Threshold: 120, ComparisonOperator: 'GreaterThanOrEqualToThreshold', Dimensions: dims })]);
    expect(pg('SlotLastAckAgeSeconds')).toEqual([expect.objectContaining({ Threshold: 300, ComparisonOperator: 'GreaterThanOrEqualToThreshold', Dimensions: dims })]);
    expect(pg('SlotLost')).toEqual([expect.objectContaining({ Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', Dimensions: dims })]);
    // Streamer down: silence is the signal, so missing data breaches.
    expect(pg('InFlightBytes')).toEqual([expect.objectContaining({ Statistic: 'SampleCount', Period: 300, Threshold: 1, ComparisonOperator: 'LessThanThreshold', TreatMissingData: 'breaching', Dimensions: dims })]);
    const dlq = (queue: IConstruct) =>
      alarms.filter((a) => a.Namespace === 'AWS/SQS' && a.MetricName === 'ApproximateNumberOfMessagesVisible' && JSON.stringify(a.Dimensions) === JSON.stringify([{ Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(queue), 'QueueName'] } }]));
    expect(dlq(relay.sources[0]!.changesDeadLetterQueue)).toEqual([expect.objectContaining({ Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' })]);
    expect(dlq(relay.nodesDeadLetterQueue!)).toEqual([expect.objectContaining({ Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' })]);
    expect(alarms.filter((a) => a.Namespace === 'AWS/Lambda' && a.MetricName === 'Errors')).toEqual([
      expect.objectContaining({ Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalId(relay.sources[0]!.monitorFunction) } }], EvaluationPeriods: 3, Threshold: 1, Statistic: 'Sum' }),
    ]);
    // Every alarm notifies the topic, on alarm and on recovery.
    const topicRef = { Ref: logicalId(topic) };
    for (const a of alarms) {
      expect(a.AlarmActions, a.MetricName).toEqual([topicRef]);
      expect(a.OKActions, a.MetricName).toEqual([topicRef]);
      expect(a.AlarmDescription).toMatch(/^pgrelay/);
    }
  });

  it('use the default thresholds and no actions without props.alarms', () => {
    const alarms = alarmsOf(get('defaults').template());
    expect(alarms).toHaveLength(8);
    const threshold = (m: string) => alarms.find((a) => a.MetricName === m)?.Threshold;
    expect(threshold('SlotLagBytes')).toBe(DEFAULTS.alarmSlotLagBytes);
    expect(threshold('SlotInactiveSeconds')).toBe(DEFAULTS.alarmSlotInactiveSeconds);
    expect(threshold('SlotLastAckAgeSeconds')).toBe(DEFAULTS.alarmSlotAckAgeSeconds);
    for (const a of alarms) {
      expect(a.AlarmActions).toBeUndefined();
      expect(a.OKActions).toBeUndefined();
    }
  });

  it('have no nodes DLQ alarm when pgrelay did not create the nodes queue', () => {
    for (const id of ['userOutputs', 'busOnly']) {
      const alarms = alarmsOf(get(id).template());
      expect(alarms, id).toHaveLength(7);
      expect(alarms.filter((a) => a.Namespace === 'AWS/SQS'), id).toHaveLength(1);
    }
  });

  it('watch metrics the running code emits, under the dimensions it emits them with', () => {
    const monitorSource = readFileSync(path.resolve(import.meta.dirname, '../../functions/monitor/metrics.ts'), 'utf8');
    const streamerSource = readFileSync(path.resolve(import.meta.dirname, '../../streamer/streamer.ts'), 'utf8');
    const emfSource = readFileSync(path.resolve(import.meta.dirname, '../../functions/core/emf.ts'), 'utf8');
    expect(emfSource).toContain("METRIC_NAMESPACE = 'PgRelay'");
    for (const a of alarmsOf(get('full').template()).filter((x) => x.Namespace === 'PgRelay')) {
      expect(`${monitorSource}\n${streamerSource}`, a.MetricName).toContain(`'${a.MetricName}'`);
    }
    // Both emitters use exactly the dimensions { Source, Slot } the alarms filter on.
    expect(monitorSource).toContain('emf({ Source: opts.sourceId, Slot: slot.name }');
    // Powertools' default service dimension would make the monitor's metrics other metrics than the alarms'.
    expect(monitorSource).toContain('clearDefaultDimensions()');
    expect(streamerSource).toMatch(/\{ Source: this\.deps\.config\.sourceId, Slot: this\.deps\.config\.slotName \}/);
  });
});

describe('the transform and its queue', () => {
  it('consumes the changes queue in batches with partial batch failures', () => {
    const { relay } = get('full');
    const s = relay.sources[0]!;
    get('full').template().hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAttArn(logicalId(s.changesQueue)),
      FunctionName: { Ref: logicalId(s.transformFunction) },
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('gives the changes queue a visibility timeout of at least six times the transform timeout, and a DLQ', () => {
    const { relay } = get('full');
    const s = relay.sources[0]!;
    const r = get('full').template().toJSON().Resources as Resources;
    const timeout = r[logicalId(s.transformFunction)]?.Properties.Timeout as number;
    const visibility = r[logicalId(s.changesQueue)]?.Properties.VisibilityTimeout as number;
    expect(timeout).toBe(DEFAULTS.transformTimeout.toSeconds());
    expect(visibility).toBeGreaterThanOrEqual(6 * timeout);
    expect(r[logicalId(s.changesQueue)]?.Properties.RedrivePolicy).toEqual({ deadLetterTargetArn: getAttArn(logicalId(s.changesDeadLetterQueue)), maxReceiveCount: DEFAULTS.maxReceiveCount });
  });
});

describe('the streamer: one private ARM64 task', () => {
  it('runs exactly one task without a public IP in the private subnets, replaced stop-first, with a rollback circuit breaker', () => {
    const { relay } = get('full');
    get('full').template().hasResourceProperties('AWS::ECS::Service', {
      Cluster: { Ref: logicalId(relay.cluster) },
      LaunchType: 'FARGATE',
      DesiredCount: 1,
      DeploymentConfiguration: { MinimumHealthyPercent: 0, MaximumPercent: 100, DeploymentCircuitBreaker: { Enable: true, Rollback: true } },
      NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED', Subnets: PRIVATE_SUBNETS, SecurityGroups: [{ 'Fn::GetAtt': [logicalId(relay.securityGroup), 'GroupId'] }] } },
      EnableExecuteCommand: false,
    });
  });

  it('picks the VPC\'s private subnets by default (never the public ones)', () => {
    const { vpc } = get('defaults');
    const t = get('defaults').template();
    const privateIds = (vpc as ec2.Vpc).privateSubnets.map((s) => ({ Ref: logicalId(s.node.defaultChild as CfnResource) }));
    const publicIds = (vpc as ec2.Vpc).publicSubnets.map((s) => ({ Ref: logicalId(s.node.defaultChild as CfnResource) }));
    expect(privateIds).toHaveLength(2);
    const service = Object.values(ofType(t, 'AWS::ECS::Service'))[0]?.Properties;
    expect(service.NetworkConfiguration.AwsvpcConfiguration).toEqual(expect.objectContaining({ AssignPublicIp: 'DISABLED', Subnets: privateIds }));
    const monitor = Object.values(ofType(t, 'AWS::Lambda::Function')).find((f) => f.Properties.VpcConfig !== undefined)?.Properties;
    expect(monitor.VpcConfig.SubnetIds).toEqual(privateIds);
    expect(JSON.stringify([service, monitor])).not.toContain(JSON.stringify(publicIds[0]));
  });

  it('is an ARM64 Linux Fargate task of the configured size', () => {
    get('full').template().hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      NetworkMode: 'awsvpc',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      Cpu: String(DEFAULTS.streamerCpu),
      Memory: String(defaultStreamerMemory(DEFAULTS.streamerCpu)),
    });
    const multi = Object.values(ofType(get('multi').template(), 'AWS::ECS::TaskDefinition'));
    expect(multi).toHaveLength(2);
    for (const td of multi) expect(td.Properties).toEqual(expect.objectContaining({ Cpu: '1024', Memory: '2048', RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' } }));
  });

  it('has a container health check, awslogs to a log group with retention, and a stop timeout for the SIGTERM flush', () => {
    const { relay } = get('full');
    const t = get('full').template();
    const td = Object.values(ofType(t, 'AWS::ECS::TaskDefinition'))[0];
    const c = containerOf(td);
    expect(c.HealthCheck).toEqual({ Command: ['CMD', 'node', '/app/health-check.mjs'], Interval: 30, Timeout: 5, Retries: 3, StartPeriod: 60 });
    expect(c.LogConfiguration.LogDriver).toBe('awslogs');
    expect(c.LogConfiguration.Options).toEqual({ 'awslogs-group': { Ref: expect.any(String) }, 'awslogs-stream-prefix': 'streamer', 'awslogs-region': 'eu-west-1' });
    const group = (t.toJSON().Resources as Resources)[c.LogConfiguration.Options['awslogs-group'].Ref];
    expect(group?.Type).toBe('AWS::Logs::LogGroup');
    expect(group?.Properties.RetentionInDays).toBe(14);
    expect(c.StopTimeout).toBe(30);
    expect(c.Essential).toBe(true);
    expect(c.Command).toEqual(['run']);
    // The image is the asset built from the context streamer-image.ts prepares.
    expect(JSON.stringify(c.Image)).toContain('cdk-hnb659fds-container-assets-123456789012-eu-west-1:');
    // No secret value anywhere in the task definition: the password comes from Secrets Manager at run time.
    expect(c.Secrets).toBeUndefined();
    expect(JSON.stringify(td)).not.toMatch(/password/i);
    expect(relay.sources[0]!.taskDefinition.taskRole).toBeDefined();
  });
});

describe('Lambdas', () => {
  it('are Node.js 22 on ARM64, with their own log group', () => {
    for (const id of Object.keys(built)) {
      const b = get(id);
      const relays = [b.relay, ...(b.b ? [b.b as PgRelay] : [])];
      const resources = b.template().toJSON().Resources as Resources;
      for (const relay of relays) {
        const fns = relay.sources.flatMap((s) => [s.transformFunction, s.monitorFunction]);
        expect(fns.length).toBe(2 * relay.sources.length);
        for (const fn of fns) {
          const p = resources[logicalId(fn)]?.Properties;
          expect(p.Runtime, fn.node.path).toBe('nodejs22.x');
          expect(p.Architectures, fn.node.path).toEqual(['arm64']);
          expect(p.Handler).toBe('index.handler');
          expect(resources[p.LoggingConfig.LogGroup.Ref]?.Type).toBe('AWS::Logs::LogGroup');
        }
      }
      // Nothing else in the relay is a Lambda (no log-retention or other helper functions).
      const inRelay = relays.flatMap((r) => r.node.findAll().filter((c) => c instanceof lambda.CfnFunction));
      expect(inRelay).toHaveLength(relays.reduce((n, r) => n + 2 * r.sources.length, 0));
    }
  });

  it('run the monitor in the VPC on a one-minute schedule whose rule does not redeliver a stale run', () => {
    const { relay } = get('full');
    const t = get('full').template();
    const monitor = relay.sources[0]!.monitorFunction;
    t.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('slot guardian'),
      VpcConfig: { SubnetIds: PRIVATE_SUBNETS, SecurityGroupIds: [{ 'Fn::GetAtt': [logicalId(relay.securityGroup), 'GroupId'] }] },
    });
    t.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: [Match.objectLike({ Arn: getAttArn(logicalId(monitor)), RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 } })],
    });
    t.hasResourceProperties('AWS::Lambda::Permission', { Action: 'lambda:InvokeFunction', Principal: 'events.amazonaws.com', FunctionName: getAttArn(logicalId(monitor)) });
    // Nor does Lambda's own asynchronous retry re-run a failed guardian run a minute later.
    t.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { FunctionName: { Ref: logicalId(monitor) }, MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 });
    // The transform is not in the VPC: it talks to AWS APIs only.
    expect((t.toJSON().Resources as Resources)[logicalId(relay.sources[0]!.transformFunction)]?.Properties.VpcConfig).toBeUndefined();
  });
});

describe('encryption and retention', () => {
  it('makes every queue FIFO, SSE-encrypted and TLS-only', () => {
    for (const id of Object.keys(built)) {
      const t = get(id).template();
      const queues = ofType(t, 'AWS::SQS::Queue');
      expect(Object.keys(queues).length, id).toBeGreaterThan(0);
      const policies = Object.values(ofType(t, 'AWS::SQS::QueuePolicy'));
      for (const [qid, q] of Object.entries(queues)) {
        expect(q.Properties.FifoQueue, `${id} ${qid}`).toBe(true);
        expect(q.Properties.SqsManagedSseEnabled, `${id} ${qid}`).toBe(true);
        const tlsOnly = policies.some(
          (p) =>
            JSON.stringify(p.Properties.Queues) === JSON.stringify([{ Ref: qid }]) &&
            (p.Properties.PolicyDocument.Statement as Json[]).some((s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false'),
        );
        expect(tlsOnly, `${id} ${qid} denies requests without TLS`).toBe(true);
      }
    }
  });

  it('counts the queues: changes + DLQ per source, nodes + DLQ when pgrelay creates it', () => {
    const count = (id: string) => Object.keys(ofType(get(id).template(), 'AWS::SQS::Queue')).length;
    expect(count('full')).toBe(4);
    expect(count('multi')).toBe(6);
    expect(count('userOutputs')).toBe(2);
    expect(count('busOnly')).toBe(2);
    expect(count('queueOnly')).toBe(4);
    expect(count('two')).toBe(8);
  });

  it('encrypts the payload bucket, blocks public access, denies plain HTTP and expires objects after every message that can point at them', () => {
    const { relay } = get('full');
    const t = get('full').template();
    const bucketId = logicalId(relay.payloadBucket);
    const bucket = (t.toJSON().Resources as Resources)[bucketId]?.Properties;
    expect(bucket.BucketEncryption).toEqual({ ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] });
    expect(bucket.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(bucket.OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
    t.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: bucketId },
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
    // Retention of the queues a payload reference can sit in, read from the template.
    const retention = (q: IConstruct) => ((t.toJSON().Resources as Resources)[logicalId(q)]?.Properties.MessageRetentionPeriod as number) / 86_400;
    const s = relay.sources[0]!;
    const chain = retention(s.changesQueue) + retention(s.changesDeadLetterQueue) + retention(relay.nodesQueue as sqs.Queue) + retention(relay.nodesDeadLetterQueue!);
    expect(chain).toBe(CHANGES_RETENTION.toDays() + CHANGES_DLQ_RETENTION.toDays() + NODES_RETENTION.toDays() + NODES_DLQ_RETENTION.toDays());
    const rules = bucket.LifecycleConfiguration.Rules as Json[];
    expect(rules).toHaveLength(1);
    expect(rules[0].Status).toBe('Enabled');
    expect(rules[0].Prefix).toBeUndefined();
    expect(rules[0].ExpirationInDays).toBeGreaterThan(chain);
    // Kept when the stack goes: payloads may still be referenced from a redrive.
    expect((t.toJSON().Resources as Resources)[bucketId]).toEqual(expect.objectContaining({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' }));
  });

  it('logs payload bucket access to the given bucket', () => {
    const { relay } = get('userOutputs');
    const bucket = (get('userOutputs').template().toJSON().Resources as Resources)[logicalId(relay.payloadBucket)]?.Properties;
    expect(bucket.LoggingConfiguration).toEqual({ DestinationBucketName: 'my-access-logs', LogFilePrefix: 'pgrelay-payloads/' });
    expect((get('full').template().toJSON().Resources as Resources)[logicalId(get('full').relay.payloadBucket)]?.Properties.LoggingConfiguration).toBeUndefined();
  });

  it('keeps every log group for the retention asked (a month by default)', () => {
    const retentions = (id: string) => Object.values(ofType(get(id).template(), 'AWS::Logs::LogGroup')).map((g) => g.Properties.RetentionInDays);
    // 10 days rounds up to the next retention CloudWatch offers.
    expect(retentions('full')).toEqual([14, 14, 14]);
    // The Defaults stack's VPC flow log group is the test's own, with a month as well.
    expect(retentions('defaults')).toEqual([30, 30, 30, 30]);
    expect(retentions('multi')).toEqual(Array(6).fill(30));
  });
});

describe('IAM', () => {
  it('scopes every statement to the resources each role needs; * only where acknowledged', () => {
    const cases: [string, IamExpectations][] = [
      ['full', { relay: get('full').relay, secretArns: { shop: SECRET_ARN }, busArn: getAttArn(logicalId(get('full').relay.bus as events.EventBus)), consumerRoles: ['OrdersConsumerRole', 'OrderedConsumerRole'] }],
      ['multi', { relay: get('multi').relay, secretArns: { shop: SECRET_ARN, 'billing-eu': SECRET_ARN_2 }, busArn: getAttArn(logicalId(get('multi').relay.bus as events.EventBus)), consumerRoles: ['BillingConsumerRole', 'AllConsumerRole'] }],
      ['userOutputs', { relay: get('userOutputs').relay, secretArns: { shop: SECRET_ARN }, busArn: getAttArn(logicalId(get('userOutputs').bus as events.EventBus)), consumerRoles: ['BusConsumerRole', 'QueueConsumerRole'] }],
      ['busOnly', { relay: get('busOnly').relay, secretArns: { default: SECRET_ARN }, busArn: getAttArn(logicalId(get('busOnly').relay.bus as events.EventBus)), consumerRoles: ['ConsumerRole'] }],
      ['queueOnly', { relay: get('queueOnly').relay, secretArns: { default: SECRET_ARN }, consumerRoles: ['ConsumerRole'] }],
    ];
    for (const [id, x] of cases) {
      const t = get(id).template();
      const consumerRoles = (x.consumerRoles ?? []).map((r) => logicalId(get(id).stack.node.findChild(r)));
      expect(iamProblems(t, { ...x, consumerRoles }), id).toEqual([]);
    }
  });

  it('grants what the running code calls: one statement each, on the right role', () => {
    const { relay } = get('full');
    const s = relay.sources[0]!;
    const t = get('full').template();
    const on = (role: iam.IRole) => statementsOf(t).filter((x) => x.roles[0] === logicalId(role));
    const has = (role: iam.IRole, action: string, resource: Json) => on(role).some((x) => x.actions.includes(action) && JSON.stringify(x.resources) === JSON.stringify([resource]));
    const bucketId = logicalId(relay.payloadBucket);
    const busArn = getAttArn(logicalId(relay.bus as events.EventBus));
    expect(has(s.taskDefinition.taskRole, 'secretsmanager:GetSecretValue', SECRET_ARN)).toBe(true);
    expect(has(s.taskDefinition.taskRole, 'sqs:SendMessage', getAttArn(logicalId(s.changesQueue)))).toBe(true);
    expect(has(s.taskDefinition.taskRole, 's3:PutObject', prefixArn(bucketId, 'pgrelay/shop/'))).toBe(true);
    expect(has(s.transformFunction.role!, 'events:PutEvents', busArn)).toBe(true);
    expect(has(s.transformFunction.role!, 'sqs:SendMessage', getAttArn(logicalId(relay.nodesQueue as sqs.Queue)))).toBe(true);
    expect(has(s.transformFunction.role!, 's3:GetObject', prefixArn(bucketId, 'pgrelay/shop/'))).toBe(true);
    expect(has(s.transformFunction.role!, 'sqs:ReceiveMessage', getAttArn(logicalId(s.changesQueue)))).toBe(true);
    expect(has(s.monitorFunction.role!, 'secretsmanager:GetSecretValue', SECRET_ARN)).toBe(true);
    expect(has(s.monitorFunction.role!, 'ecs:DescribeServices', { Ref: logicalId(s.service) })).toBe(true);
    expect(on(s.monitorFunction.role!).find((x) => x.actions.includes('ecs:StopTask'))?.condition).toEqual({ ArnEquals: { 'ecs:cluster': getAttArn(logicalId(relay.cluster)) } });
    // The streamer never reads the bus or the nodes queue; the transform never reads the secret.
    expect(on(s.taskDefinition.taskRole).flatMap((x) => x.actions).filter((a) => a.startsWith('events:'))).toEqual([]);
    expect(on(s.transformFunction.role!).flatMap((x) => x.actions).filter((a) => a.startsWith('secretsmanager:'))).toEqual([]);
  });

  it('uses no AWS managed policies on pgrelay\'s roles', () => {
    for (const id of Object.keys(built)) {
      const t = get(id).template();
      const relayRoles = [get(id).relay, ...(get(id).b ? [get(id).b as PgRelay] : [])].flatMap((r) => r.node.findAll().filter((c) => c instanceof iam.CfnRole).map((c) => logicalId(c)));
      expect(relayRoles.length, id).toBeGreaterThan(0);
      const roles = ofType(t, 'AWS::IAM::Role');
      for (const r of relayRoles) expect(roles[r]?.Properties.ManagedPolicyArns, `${id} ${r}`).toBeUndefined();
    }
  });
});

describe('configuration documents', () => {
  it('names the bus from the bus resource, not a literal, and the queues and bucket from theirs', () => {
    const { relay } = get('full');
    const s = relay.sources[0]!;
    const resources = get('full').template().toJSON().Resources as Resources;
    const env = envOf(resources[logicalId(s.transformFunction)]);
    expect(env[TRANSFORM_ENV.config]['Fn::Join'], 'a Fn::Join, not a literal string').toBeDefined();
    const doc = configDoc(env[TRANSFORM_ENV.config]);
    expect(doc.outputs.eventBridge.busName).toBe(`@@Ref:${logicalId(relay.bus as events.EventBus)}@@`);
    expect(doc.outputs.nodesQueue).toEqual({ queueUrl: `@@Ref:${logicalId(relay.nodesQueue as sqs.Queue)}@@` });
    expect(doc.largePayloads).toEqual({ bucket: `@@Ref:${logicalId(relay.payloadBucket)}@@`, prefix: 'pgrelay/shop/' });
    expect(doc).toEqual(expect.objectContaining({ sourceId: 'shop', tables: ['public.orders', 'sales.order_items'], region: 'eu-west-1' }));
  });

  it('wires the user\'s bus and queue when given', () => {
    const { relay, bus } = get('userOutputs');
    const resources = get('userOutputs').template().toJSON().Resources as Resources;
    const doc = configDoc(envOf(resources[logicalId(relay.sources[0]!.transformFunction)])[TRANSFORM_ENV.config]);
    expect(doc.outputs.eventBridge.busName).toBe(`@@Ref:${logicalId(bus)}@@`);
    expect(doc.outputs.nodesQueue.queueUrl).toBe('https://sqs.eu-west-1.@@Ref:AWS::URLSuffix@@/123456789012/graph-nodes.fifo');
    expect(Object.values(resources).filter((r) => r.Type === 'AWS::Events::EventBus')).toHaveLength(1);
  });

  it('leaves an output out of the transform\'s document when it is off', () => {
    const docOf = (id: string) => {
      const b = get(id);
      return configDoc(envOf((b.template().toJSON().Resources as Resources)[logicalId(b.relay.sources[0]!.transformFunction)])[TRANSFORM_ENV.config]);
    };
    expect(Object.keys(docOf('busOnly').outputs)).toEqual(['eventBridge']);
    expect(Object.keys(docOf('queueOnly').outputs)).toEqual(['nodesQueue']);
  });

  it('gives the streamer, transform and monitor documents their parsers accept, naming one slot, queue and service', () => {
    for (const id of ['full', 'multi', 'userOutputs', 'busOnly', 'queueOnly']) {
      const { relay } = get(id);
      const resources = get(id).template().toJSON().Resources as Resources;
      for (const s of relay.sources) {
        const streamerDoc = configDoc(containerEnv(resources[logicalId(s.taskDefinition)])[ENV.config]);
        const transformDoc = configDoc(envOf(resources[logicalId(s.transformFunction)])[TRANSFORM_ENV.config]);
        const monitorDoc = configDoc(envOf(resources[logicalId(s.monitorFunction)])[MONITOR_ENV.config]);
        const streamer = parseStreamerConfig(materialize(streamerDoc, resources));
        const transform = parseTransformConfig(materialize(transformDoc, resources));
        const monitor = parseMonitorConfig(materialize(monitorDoc, resources));
        expect(streamerDoc.queueUrl).toBe(`@@Ref:${logicalId(s.changesQueue)}@@`);
        expect(monitorDoc.ecs).toEqual({ cluster: `@@Ref:${logicalId(relay.cluster)}@@`, service: `@@GetAtt:${logicalId(s.service)}.Name@@` });
        expect(streamer.slotName).toBe(s.slotName);
        expect(monitor.slotName).toBe(s.slotName);
        expect(streamer.publicationName).toBe(monitor.publicationName);
        expect(streamer.sourceId).toBe(s.sourceId);
        expect(transform.sourceId).toBe(s.sourceId);
        expect(monitor.sourceId).toBe(s.sourceId);
        expect(streamer.database.secretArn).toBe(monitor.database.secretArn);
        expect(streamer.largePayloads?.prefix).toBe(`pgrelay/${s.sourceId}/`);
        expect(transform.largePayloads?.prefix).toBe(`pgrelay/${s.sourceId}/`);
        expect(streamer.region).toBe('eu-west-1');
        expect(monitor.region).toBe('eu-west-1');
      }
    }
  });
});

describe('outputs', () => {
  const outputsOf = (t: Template) => t.findOutputs('*') as Record<string, { Value: Json; Description: string }>;
  const find = (outputs: Record<string, { Value: Json }>, name: string) => Object.entries(outputs).filter(([k]) => k.startsWith(`Relay${name}`)).map(([, v]) => v.Value);

  it('export the bus name and ARN, the queue URLs and the bucket name', () => {
    const { relay } = get('full');
    const outputs = outputsOf(get('full').template());
    const s = relay.sources[0]!;
    expect(find(outputs, 'BusName')).toEqual([{ Ref: logicalId(relay.bus as events.EventBus) }]);
    expect(find(outputs, 'BusArn')).toEqual([getAttArn(logicalId(relay.bus as events.EventBus))]);
    expect(find(outputs, 'NodesQueueUrl')).toEqual([{ Ref: logicalId(relay.nodesQueue as sqs.Queue) }]);
    expect(find(outputs, 'NodesDeadLetterQueueUrl')).toEqual([{ Ref: logicalId(relay.nodesDeadLetterQueue!) }]);
    expect(find(outputs, 'ChangesQueueUrlshop')).toEqual([{ Ref: logicalId(s.changesQueue) }]);
    expect(find(outputs, 'ChangesDeadLetterQueueUrlshop')).toEqual([{ Ref: logicalId(s.changesDeadLetterQueue) }]);
    expect(find(outputs, 'PayloadBucketName')).toEqual([{ Ref: logicalId(relay.payloadBucket) }]);
    expect(Object.keys(outputs)).toHaveLength(7);
  });

  it('export one changes queue pair per source, and leave out what is off', () => {
    const multi = outputsOf(get('multi').template());
    expect(Object.keys(multi).filter((k) => k.startsWith('RelayChanges'))).toHaveLength(4);
    expect(find(multi, 'ChangesQueueUrlbillingeu')).toHaveLength(1);
    const busOnly = outputsOf(get('busOnly').template());
    expect(find(busOnly, 'NodesQueueUrl')).toEqual([]);
    expect(find(busOnly, 'BusName')).toHaveLength(1);
    const queueOnly = outputsOf(get('queueOnly').template());
    expect(find(queueOnly, 'BusName')).toEqual([]);
    expect(find(queueOnly, 'NodesQueueUrl')).toHaveLength(1);
  });
});

describe('addConsumer', () => {
  it('via EventBridge: a rule on the pgrelay bus matching the source and labels, invoking the function, which may read payloads', () => {
    const { relay, byLabel, rule } = get('full');
    const t = get('full').template();
    expect(rule).toBeInstanceOf(events.Rule);
    t.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: logicalId(relay.bus as events.EventBus) },
      EventPattern: { source: ['pgrelay.shop'], 'detail-type': ['node.inserted', 'node.updated'], detail: { node: { label: ['orders'] } } },
      Targets: [Match.objectLike({ Arn: getAttArn(logicalId(byLabel)) })],
    });
    t.hasResourceProperties('AWS::Lambda::Permission', { Action: 'lambda:InvokeFunction', Principal: 'events.amazonaws.com', FunctionName: getAttArn(logicalId(byLabel)) });
    const statements = statementsOf(t).filter((s) => s.roles[0] === logicalId((byLabel as lambda.Function).role!));
    expect(statements).toEqual([
      expect.objectContaining({ actions: ['s3:GetObject'], resources: [prefixArn(logicalId(relay.payloadBucket), 'pgrelay/')] }),
      expect.objectContaining({ actions: ['s3:ListBucket'], resources: [getAttArn(logicalId(relay.payloadBucket))] }),
    ]);
  });

  it('via EventBridge: every source of the relay by default, or the ones named', () => {
    const { relay, billing, all } = get('multi');
    const t = get('multi').template();
    const rules = Object.values(ofType(t, 'AWS::Events::Rule')).filter((r) => r.Properties.EventBusName !== undefined);
    const ruleFor = (fn: IConstruct) => rules.find((r) => JSON.stringify(r.Properties.Targets).includes(logicalId(fn)))?.Properties;
    expect(ruleFor(billing).EventPattern).toEqual({ source: ['pgrelay.billing-eu'] });
    expect(ruleFor(all).EventPattern).toEqual({ source: ['pgrelay.shop', 'pgrelay.billing-eu'] });
    expect(ruleFor(all).EventBusName).toEqual({ Ref: logicalId(relay.bus as events.EventBus) });
  });

  it('via nodesQueue: an event source mapping on the nodes queue with partial batch failures', () => {
    const { relay, ordered } = get('full');
    const t = get('full').template();
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAttArn(logicalId(relay.nodesQueue as sqs.Queue)),
      FunctionName: { Ref: logicalId(ordered) },
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    const actions = statementsOf(t).filter((s) => s.roles[0] === logicalId((ordered as lambda.Function).role!)).flatMap((s) => s.actions);
    expect(actions).toEqual(expect.arrayContaining(['sqs:ReceiveMessage', 'sqs:DeleteMessage', 's3:GetObject']));
    // On the user's queue too, with the batch size asked.
    const u = get('userOutputs');
    u.template().hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: 'arn:aws:sqs:eu-west-1:123456789012:graph-nodes.fifo',
      FunctionName: { Ref: logicalId(u.byQueue) },
      BatchSize: 5,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  describe('refuses', () => {
    // Construction only, no synth: each refusal must leave the tree as it was.
    let stack: Stack;
    let relay: PgRelay;
    let noBus: PgRelay;
    let noQueue: PgRelay;

    beforeAll(() => {
      const refusals = new App({ context: NO_BUNDLING });
      stack = new Stack(refusals, 'Refusals', { env: ENV_EU });
      const vpc = privateVpc(stack);
      const db = { host: 'db.internal', name: 'shop', secret: secret(stack) };
      relay = new PgRelay(stack, 'Relay', { vpc, sourceId: 'shop', database: db, tables: ['public.orders'] });
      noBus = new PgRelay(stack, 'NoBus', { vpc, sourceId: 'a', database: db, tables: ['public.orders'], outputs: { eventBridge: false } });
      noQueue = new PgRelay(stack, 'NoQueue', { vpc, sourceId: 'b', database: db, tables: ['public.orders'], outputs: { nodesQueue: false } });
      relay.addConsumer(consumerFunction(stack, 'First'), { via: 'nodesQueue' });
    }, 60_000);

    const count = () => stack.node.findAll().length;

    it('a second nodesQueue consumer (FIFO order holds for one)', () => {
      const before = count();
      const second = consumerFunction(stack, 'Second');
      const after = count();
      expect(() => relay.addConsumer(second, { via: 'nodesQueue' })).toThrow(/Refusals\/First already consumes the nodes queue; FIFO order holds for one consumer/);
      expect(count()).toBe(after);
      expect(after).toBeGreaterThan(before);
    });

    it('labels, types or sourceIds via nodesQueue', () => {
      const fn = consumerFunction(stack, 'Labels');
      const before = count();
      expect(() => relay.addConsumer(fn, { via: 'nodesQueue', labels: ['orders'] })).toThrow(/labels, types, messagePrefixes and sourceIds filter EventBridge rules only/);
      expect(() => relay.addConsumer(fn, { via: 'nodesQueue', types: ['node.deleted'] })).toThrow(/labels, types, messagePrefixes and sourceIds filter EventBridge rules only/);
      expect(count()).toBe(before);
    });

    it('no type of the contract is refused (regression: label.gap threw, the construct kept a list of its own)', () => {
      for (const type of graphEventType.options) {
        const fn = consumerFunction(stack, `Type${type.replaceAll('.', '')}`);
        const rule = relay.addConsumer(fn, { types: [type] }) as events.Rule;
        const pattern = stack.resolve((rule.node.defaultChild as events.CfnRule).eventPattern) as { 'detail-type': string[] };
        expect(pattern['detail-type']).toEqual([type]);
      }
    });

    it('a consumer of logical messages by prefix, alone or together with labels', () => {
      const patternOf = (rule: events.Rule) => stack.resolve((rule.node.defaultChild as events.CfnRule).eventPattern) as Record<string, unknown>;
      const byPrefix = relay.addConsumer(consumerFunction(stack, 'Outbox'), { messagePrefixes: ['outbox'] }) as events.Rule;
      expect(patternOf(byPrefix)).toEqual({ source: ['pgrelay.shop'], detail: { message: { prefix: ['outbox'] } } });
      const both = relay.addConsumer(consumerFunction(stack, 'Both'), { labels: ['orders'], messagePrefixes: ['outbox'] }) as events.Rule;
      expect(patternOf(both)).toEqual({ source: ['pgrelay.shop'], detail: { $or: [{ node: { label: ['orders'] } }, { message: { prefix: ['outbox'] } }] } });
      expect(() => relay.addConsumer(consumerFunction(stack, 'QueuePrefix'), { via: 'nodesQueue', messagePrefixes: ['outbox'] })).toThrow(/messagePrefixes/);
    });

    it('every problem of one call at once: unknown source, unknown type', () => {
      const fn = consumerFunction(stack, 'Unknown');
      let message = '';
      try {
        relay.addConsumer(fn, { sourceIds: ['nope'], types: ['node.created' as GraphEventType] });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain('sourceIds: "nope" is not a source of this relay');
      expect(message).toContain(`types: "node.created" is not one of ${graphEventType.options.join(', ')}`);
    });

    it('a batch size FIFO cannot deliver', () => {
      const fn = consumerFunction(stack, 'Batch');
      expect(() => noBus.addConsumer(fn, { via: 'nodesQueue', batchSize: 11 })).toThrow(/batchSize: 1 to 10 for a FIFO queue/);
    });

    it('a dead-letter queue on a nodes-queue consumer; on an EventBridge consumer it becomes the target\'s', () => {
      const dlq = new sqs.Queue(stack, 'ConsumerDlq', { enforceSSL: true });
      const fn = consumerFunction(stack, 'WithDlq');
      expect(() => noBus.addConsumer(fn, { via: 'nodesQueue', deadLetterQueue: dlq })).toThrow(/deadLetterQueue: for EventBridge consumers/);
      const rule = relay.addConsumer(fn, { labels: ['orders'], deadLetterQueue: dlq }) as events.Rule;
      const target = (stack.resolve((rule.node.defaultChild as events.CfnRule).targets) as { deadLetterConfig?: { arn: unknown }; retryPolicy?: unknown }[])[0];
      expect(target?.deadLetterConfig).toEqual({ arn: stack.resolve(dlq.queueArn) });
      expect(target?.retryPolicy).toEqual({ maximumRetryAttempts: 185, maximumEventAgeInSeconds: 86_400 });
    });

    it('an output that is off', () => {
      const fn = consumerFunction(stack, 'Off');
      expect(() => noBus.addConsumer(fn)).toThrow(/the relay has no bus \(outputs.eventBridge is false\)/);
      expect(() => noQueue.addConsumer(fn, { via: 'nodesQueue' })).toThrow(/the relay has no nodes queue \(outputs.nodesQueue is false\)/);
    });
  });
});

describe('relays of one app', () => {
  it('refuses at synth two relays, in any stacks, that would stream one database through one slot', () => {
    const shared = new App({ context: NO_BUNDLING });
    const first = new Stack(shared, 'First', { env: ENV_EU });
    const second = new Stack(shared, 'Second', { env: ENV_EU });
    const [vpc1, secret1, vpc2, secret2] = [privateVpc(first), secret(first), privateVpc(second), secret(second)];
    const db = (host: string, name: string) => ({ host, name, secret: secret2 });
    new PgRelay(first, 'Relay', { vpc: vpc1, database: { host: 'db.internal', name: 'shop', secret: secret1 }, tables: ['public.orders'] });
    // The default sourceId on the same database: the same slot, pgrelay_default.
    new PgRelay(second, 'Relay', { vpc: vpc2, database: db('db.internal', 'shop'), tables: ['public.customers'] });
    // Not in conflict: another sourceId, another database name, another host.
    new PgRelay(second, 'Billing', { vpc: vpc2, sourceId: 'billing', database: db('db.internal', 'shop'), tables: ['public.invoices'] });
    new PgRelay(second, 'Crm', { vpc: vpc2, database: db('db.internal', 'crm'), tables: ['public.contacts'] });
    new PgRelay(second, 'Elsewhere', { vpc: vpc2, database: db('other.internal', 'shop'), tables: ['public.orders'] });
    let message = '';
    try {
      shared.synth();
    } catch (err) {
      message = (err as Error).message;
    }
    const conflicts = message.split('\n').filter((l) => l.includes('two streamers cannot share a slot'));
    expect(conflicts, message).toHaveLength(2); // said once on each side
    expect(message).toContain('source "default": replication slot pgrelay_default on database shop is also the slot of source "default" of Second/Relay');
    expect(message).toContain('of First/Relay; two streamers cannot share a slot: give one of them another sourceId or slotName');
    expect(message).not.toMatch(/Billing|Crm|Elsewhere/);
  });
});

describe('several sources', () => {
  it('deploys one streamer, changes queue pair, transform and monitor per source, with distinct slots', () => {
    const { relay } = get('multi');
    const t = get('multi').template();
    const resources = t.toJSON().Resources as Resources;
    t.resourceCountIs('AWS::ECS::Service', 2);
    t.resourceCountIs('AWS::ECS::TaskDefinition', 2);
    t.resourceCountIs('AWS::ECS::Cluster', 1);
    t.resourceCountIs('AWS::Events::EventBus', 1);
    t.resourceCountIs('AWS::S3::Bucket', 1);
    t.resourceCountIs('AWS::CloudWatch::Alarm', 2 * 7 + 1);
    expect(Object.values(ofType(t, 'AWS::Events::Rule')).filter((r) => r.Properties.ScheduleExpression === 'rate(1 minute)')).toHaveLength(2);
    expect(relay.sources.map((s) => s.sourceId)).toEqual(['shop', 'billing-eu']);
    expect(relay.sources.map((s) => s.slotName)).toEqual(['pgrelay_shop', 'pgrelay_billing_eu']);

    const slots = relay.sources.map((s) => configDoc(containerEnv(resources[logicalId(s.taskDefinition)])[ENV.config]).slotName as string);
    expect(new Set(slots).size).toBe(2);
    const queues = relay.sources.map((s) => configDoc(containerEnv(resources[logicalId(s.taskDefinition)])[ENV.config]).queueUrl as string);
    expect(queues).toEqual(relay.sources.map((s) => `@@Ref:${logicalId(s.changesQueue)}@@`));
    // Each transform consumes its own source's queue.
    for (const s of relay.sources) {
      t.hasResourceProperties('AWS::Lambda::EventSourceMapping', { EventSourceArn: getAttArn(logicalId(s.changesQueue)), FunctionName: { Ref: logicalId(s.transformFunction) } });
    }
    // Partitions reach both the streamer and the transform.
    const billing = relay.sources[1]!;
    expect(configDoc(containerEnv(resources[logicalId(billing.taskDefinition)])[ENV.config])).toEqual(
      expect.objectContaining({ partitions: 32, tableKeys: { 'billing.invoices': ['invoice_no'] }, database: expect.objectContaining({ port: 5433, host: 'billing.internal' }) }),
    );
    // The nodes queue's groups are the changes partitions: the transform needs no count of its own.
    expect(configDoc(envOf(resources[logicalId(billing.transformFunction)])[TRANSFORM_ENV.config]).outputs.nodesQueue).not.toHaveProperty('partitions');
    // Alarms are per slot.
    const alarmSlots = Object.values(ofType(t, 'AWS::CloudWatch::Alarm')).filter((a) => a.Properties.MetricName === 'SlotLagBytes').map((a) => a.Properties.Dimensions.find((d: Json) => d.Name === 'Slot').Value);
    expect(alarmSlots.sort()).toEqual(['pgrelay_billing_eu', 'pgrelay_shop']);
  });

  it('puts two relays side by side in one stack without a name clash', () => {
    const { relay: a, b } = get('two');
    const t = get('two').template();
    t.resourceCountIs('AWS::ECS::Cluster', 2);
    t.resourceCountIs('AWS::ECS::Service', 2);
    t.resourceCountIs('AWS::Events::EventBus', 2);
    t.resourceCountIs('AWS::S3::Bucket', 2);
    t.resourceCountIs('AWS::CloudWatch::Dashboard', 2);
    // Physical names CloudFormation requires or CDK generates must differ between the two.
    const names = (type: string, prop: string) => Object.values(ofType(t, type)).map((r) => JSON.stringify(r.Properties[prop]));
    for (const [type, prop] of [
      ['AWS::Events::EventBus', 'Name'],
      ['AWS::ECS::TaskDefinition', 'Family'],
    ] as const) {
      const n = names(type, prop);
      expect(new Set(n).size, `${type}.${prop}: ${n.join(', ')}`).toBe(n.length);
    }
    // No hard-coded physical names that a second instance would collide with.
    for (const [type, prop] of [
      ['AWS::SQS::Queue', 'QueueName'],
      ['AWS::S3::Bucket', 'BucketName'],
      ['AWS::ECS::Cluster', 'ClusterName'],
      ['AWS::CloudWatch::Dashboard', 'DashboardName'],
      ['AWS::CloudWatch::Alarm', 'AlarmName'],
      ['AWS::Lambda::Function', 'FunctionName'],
      ['AWS::IAM::Role', 'RoleName'],
      ['AWS::Logs::LogGroup', 'LogGroupName'],
    ] as const) {
      expect(names(type, prop).filter((n) => n !== undefined), `${type}.${prop}`).toEqual([]);
    }
    const outputs = Object.keys(t.findOutputs('*'));
    expect(outputs).toHaveLength(14);
    expect(outputs.filter((k) => k.startsWith('RelayA'))).toHaveLength(7);
    expect(a.sources[0]!.slotName).toBe((b as PgRelay).sources[0]!.slotName); // same default slot name, on different databases
  });
});

describe('the database security group', () => {
  it('lets pgrelay\'s security group in on the database port', () => {
    const { relay } = get('full');
    get('full').template().hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: 'sg-0123456789abcdef0',
      IpProtocol: 'tcp',
      FromPort: 5432,
      ToPort: 5432,
      SourceSecurityGroupId: { 'Fn::GetAtt': [logicalId(relay.securityGroup), 'GroupId'] },
    });
    get('multi').template().resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
  });
});
