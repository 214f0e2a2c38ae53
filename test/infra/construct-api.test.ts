/**
 * The construct's API in the CDK's habits: grant* methods that put exactly the statements a
 * consumer team needs on its role (scoped to this relay's queue, bus rules and payload
 * prefixes), and metric* methods that are the very metrics the alarms watch.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { beforeAll, describe, expect, it } from 'vitest';
import { PgRelay } from '../../cdk/pgrelay-construct.ts';
import { RULE_ACTIONS } from '../../cdk/grants.ts';

const ENV_EU = { account: '123456789012', region: 'eu-west-1' };
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgrelay/shop-AbCdEf';

// A synthesized template is untyped JSON.
type Json = any;

let stack: Stack;
let relay: PgRelay;
let template: Template;
let teamRole: iam.Role;

beforeAll(() => {
  const app = new App();
  stack = new Stack(app, 'Api', { env: ENV_EU });
  const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['eu-west-1a', 'eu-west-1b'], privateSubnetIds: ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0bbbbbbbbbbbbbbb2'] });
  relay = new PgRelay(stack, 'Relay', {
    vpc,
    sources: [
      { sourceId: 'shop', database: { host: 'shop.internal', name: 'shop', secret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'S1', SECRET_ARN) }, tables: ['public.orders'] },
      { sourceId: 'billing', database: { host: 'billing.internal', name: 'billing', secret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'S2', SECRET_ARN) }, tables: ['public.invoices'] },
    ],
    alarms: { slotLagBytes: 7_000_000 },
  });
  teamRole = new iam.Role(stack, 'TeamRole', { assumedBy: new iam.AccountRootPrincipal() });
  relay.grantConsumeNodes(teamRole);
  relay.grantPutRules(teamRole);
  relay.grantReadPayloads(teamRole);
  template = Template.fromStack(stack);
});

/** The statements of the policies attached to `role`. */
function statementsOf(role: iam.Role): Json[] {
  const id = stack.getLogicalId(role.node.defaultChild as iam.CfnRole);
  return Object.values(template.findResources('AWS::IAM::Policy') as Record<string, Json>)
    .filter((p) => (p.Properties.Roles as Json[]).some((r) => r.Ref === id))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Json[]);
}

const asArray = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

describe('grant methods', () => {
  it('grantConsumeNodes: receive, delete, visibility and attributes on the nodes queue only', () => {
    const nodesQueueId = stack.getLogicalId(relay.nodesQueue!.node.defaultChild as Json);
    const onQueue = statementsOf(teamRole).filter((s) => asArray(s.Resource).some((r: Json) => r?.['Fn::GetAtt']?.[0] === nodesQueueId));
    expect(onQueue).toHaveLength(1);
    expect(asArray(onQueue[0].Action).sort()).toEqual(['sqs:ChangeMessageVisibility', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:ReceiveMessage']);
  });

  it("grantPutRules: rule and target actions on this bus's rules, no other resource", () => {
    const onRules = statementsOf(teamRole).filter((s) => asArray(s.Action).includes('events:PutRule'));
    expect(onRules).toHaveLength(1);
    expect(asArray(onRules[0].Action).sort()).toEqual([...RULE_ACTIONS].sort());
    const resource = JSON.stringify(onRules[0].Resource);
    const busId = stack.getLogicalId(relay.bus!.node.defaultChild as Json);
    // arn:<partition>:events:eu-west-1:123456789012:rule/<this bus's name>/*
    expect(resource).toContain(':events:eu-west-1:123456789012:rule/');
    expect(resource).toContain(busId);
    expect(resource).toContain("/*");
    expect(asArray(onRules[0].Resource)).not.toContain('*');
  });

  it("grantReadPayloads: GetObject on each source's payload prefix of the bucket", () => {
    const reads = statementsOf(teamRole).filter((s) => asArray(s.Action).includes('s3:GetObject'));
    expect(reads).toHaveLength(1);
    expect(asArray(reads[0].Action)).toEqual(['s3:GetObject']);
    const resources = asArray(reads[0].Resource).map((r) => JSON.stringify(r));
    expect(resources).toHaveLength(2);
    expect(resources.some((r) => r.includes('shop/*'))).toBe(true);
    expect(resources.some((r) => r.includes('billing/*'))).toBe(true);
  });

  it('no statement of the team role has a wildcard action or resource', () => {
    for (const s of statementsOf(teamRole)) {
      for (const a of asArray(s.Action)) expect(a).not.toMatch(/\*/);
      expect(asArray(s.Resource)).not.toContain('*');
    }
  });

  it('says so when the relay has no nodes queue or no bus', () => {
    const other = new Stack(new App(), 'NoOutputs', { env: ENV_EU });
    const vpc = ec2.Vpc.fromVpcAttributes(other, 'Vpc', { vpcId: 'vpc-1', availabilityZones: ['eu-west-1a'], privateSubnetIds: ['subnet-1'] });
    const bare = new PgRelay(other, 'Relay', {
      vpc,
      database: { host: 'h', name: 'd', secret: secretsmanager.Secret.fromSecretCompleteArn(other, 'S', SECRET_ARN) },
      tables: ['t'],
      outputs: { eventBridge: true, nodesQueue: false },
    });
    const role = new iam.Role(other, 'R', { assumedBy: new iam.AccountRootPrincipal() });
    expect(() => bare.grantConsumeNodes(role)).toThrow(/no nodes queue/);
    expect(() => bare.grantPutRules(role)).not.toThrow();
  });
});

describe('metric methods are what the alarms watch', () => {
  /** The alarm's metric as CloudFormation has it. */
  function alarmInTemplate(sourceId: string, alarmId: string): { alarm: cloudwatch.Alarm; props: Json } {
    const alarm = relay.alarms.find((a) => a.node.path.endsWith(`Source-${sourceId}/${alarmId}`));
    expect(alarm, `${sourceId}/${alarmId}`).toBeDefined();
    const props = template.toJSON().Resources[stack.getLogicalId(alarm!.node.defaultChild as cloudwatch.CfnAlarm)].Properties;
    return { alarm: alarm!, props };
  }

  const PAIRS: [string, (r: PgRelay, sourceId: string) => cloudwatch.IMetric][] = [
    ['SlotLagAlarm', (r, id) => r.metricSlotLag(undefined, id)],
    ['SlotStalledAlarm', (r, id) => r.metricAckAge(undefined, id)],
    ['SlotInactiveAlarm', (r, id) => r.metricSlotInactive(undefined, id)],
    ['SlotLostAlarm', (r, id) => r.metricSlotLost(undefined, id)],
    ['ChangesDlqAlarm', (r, id) => r.metricChangesDeadLettered(undefined, id)],
    ['MonitorFailingAlarm', (r, id) => r.metricMonitorErrors(undefined, id)],
  ];

  it.each(PAIRS)('%s watches the method\'s metric, for each source', (alarmId, method) => {
    for (const sourceId of ['shop', 'billing']) {
      const { alarm, props } = alarmInTemplate(sourceId, alarmId);
      const metric = method(relay, sourceId);
      // The same metric, tokens resolved as the template has them: namespace, name,
      // dimensions (this source's queue or function, or Source and Slot), statistic, period.
      expect(stack.resolve(metric.toMetricConfig())).toEqual(stack.resolve(alarm.metric.toMetricConfig()));
      // And the template's alarm is that metric.
      const stat = metric.toMetricConfig().metricStat!;
      expect(props).toMatchObject({ MetricName: stat.metricName, Namespace: stat.namespace, Period: stat.period.toSeconds(), Statistic: stat.statistic });
      expect(props.Dimensions).toEqual(stack.resolve((stat.dimensions ?? []).map((d) => ({ Name: d.name, Value: d.value }))));
    }
  });

  it('publishes slot metrics in PgRelay with the Source and Slot dimensions, and takes overrides', () => {
    const lag = relay.metricSlotLag();
    expect(lag.namespace).toBe('PgRelay');
    expect(lag.metricName).toBe('SlotLagBytes');
    expect(lag.dimensions).toEqual({ Source: 'shop', Slot: 'pgrelay_shop' });
    expect(relay.metricSlotLag(undefined, 'billing').dimensions).toEqual({ Source: 'billing', Slot: 'pgrelay_billing' });
    expect(relay.metricAckAge({ statistic: 'Average' }).statistic).toBe('Average');
    expect(relay.metricTransformErrors().metricName).toBe('Errors');
    expect(() => relay.metricSlotLag(undefined, 'nope')).toThrow(/"nope" is not a source of this relay \(sources: shop, billing\)/);
  });
});
