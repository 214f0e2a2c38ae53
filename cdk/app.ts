/**
 * The bundled app: `npx cdk deploy` in a checkout deploys one PgRelay stack configured by a
 * JSON file, so trying pgrelay needs no CDK code of your own.
 *
 *   npx cdk deploy -c config=pgrelay.config.json     (default: ./pgrelay.config.json)
 *   npx cdk deploy -c pgrelay='{"database": …}'       (or a "pgrelay" object in cdk.json's context)
 *
 * The file (see pgrelay.config.example.json):
 *   stackName?, account?, region?,
 *   vpc: { vpcId, availabilityZones, privateSubnetIds, privateSubnetRouteTableIds? }   — or omitted: a new VPC is created
 *   database: { host, port?, name, secretArn, securityGroupId?, sslMode?, caBundleFile? }
 *   tables, sourceId?, tableKeys?, sources? (instead of database + tables),
 *   outputs?, monitor?, alarms? { slotLagBytes?, slotInactiveSeconds?, slotAckAgeSeconds?, topicArn? }
 *
 * Nothing is looked up in the account at synth (no Vpc.fromLookup), so `cdk synth` works
 * offline without credentials. Problems in the file are listed together, then the props are
 * checked by the construct itself.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { App, Duration, Stack, Tags, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { Construct } from 'constructs';
import { PgRelay, type PgRelayDatabase, type PgRelayProps, type PgRelaySourceProps } from './pgrelay-construct.ts';

interface DatabaseFile {
  host: string;
  port?: number;
  name: string;
  secretArn: string;
  securityGroupId?: string;
  sslMode?: PgRelayDatabase['sslMode'];
  caBundleFile?: string;
}

interface SourceFile {
  sourceId?: string;
  database: DatabaseFile;
  tables: string[];
  tableKeys?: Record<string, string[]>;
}

export interface AppConfigFile extends Partial<SourceFile> {
  stackName?: string;
  account?: string;
  region?: string;
  vpc?: { vpcId: string; availabilityZones: string[]; privateSubnetIds: string[]; privateSubnetRouteTableIds?: string[] };
  sources?: SourceFile[];
  outputs?: PgRelayProps['outputs'];
  monitor?: PgRelayProps['monitor'];
  alarms?: { slotLagBytes?: number; slotInactiveSeconds?: number; slotAckAgeSeconds?: number; topicArn?: string };
  logRetentionDays?: number;
}

export class PgRelayStack extends Stack {
  readonly relay: PgRelay;
  constructor(scope: Construct, id: string, config: AppConfigFile, baseDir: string) {
    super(scope, id, {
      description: 'pgrelay: PostgreSQL changes as graph node events on AWS',
      ...(config.account !== undefined || config.region !== undefined ? { env: { account: config.account, region: config.region } } : {}),
    });
    const vpc =
      config.vpc !== undefined
        ? ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
            vpcId: config.vpc.vpcId,
            availabilityZones: config.vpc.availabilityZones,
            privateSubnetIds: config.vpc.privateSubnetIds,
            ...(config.vpc.privateSubnetRouteTableIds !== undefined ? { privateSubnetRouteTableIds: config.vpc.privateSubnetRouteTableIds } : {}),
          })
        : newVpc(this);
    const database = (d: DatabaseFile, key: string): PgRelayDatabase => ({
      host: d.host,
      ...(d.port !== undefined ? { port: d.port } : {}),
      name: d.name,
      secret: secretsmanager.Secret.fromSecretCompleteArn(this, `Secret${key}`, d.secretArn),
      ...(d.securityGroupId !== undefined ? { securityGroup: ec2.SecurityGroup.fromSecurityGroupId(this, `DbSg${key}`, d.securityGroupId, { mutable: true }) } : {}),
      ...(d.sslMode !== undefined ? { sslMode: d.sslMode } : {}),
      ...(d.caBundleFile !== undefined ? { caBundle: readFileSync(path.resolve(baseDir, d.caBundleFile), 'utf8') } : {}),
    });
    const sources: PgRelaySourceProps[] | undefined = config.sources?.map((s, i) => ({
      ...(s.sourceId !== undefined ? { sourceId: s.sourceId } : {}),
      database: database(s.database, String(i)),
      tables: s.tables,
      ...(s.tableKeys !== undefined ? { tableKeys: s.tableKeys } : {}),
    }));
    this.relay = new PgRelay(this, 'Relay', {
      vpc,
      ...(sources !== undefined
        ? { sources }
        : {
            database: database(config.database as DatabaseFile, ''),
            tables: config.tables as string[],
            ...(config.sourceId !== undefined ? { sourceId: config.sourceId } : {}),
            ...(config.tableKeys !== undefined ? { tableKeys: config.tableKeys } : {}),
          }),
      ...(config.outputs !== undefined ? { outputs: config.outputs } : {}),
      ...(config.monitor !== undefined ? { monitor: config.monitor } : {}),
      ...(config.alarms !== undefined
        ? {
            alarms: {
              ...(config.alarms.slotLagBytes !== undefined ? { slotLagBytes: config.alarms.slotLagBytes } : {}),
              ...(config.alarms.slotInactiveSeconds !== undefined ? { slotInactiveSeconds: config.alarms.slotInactiveSeconds } : {}),
              ...(config.alarms.slotAckAgeSeconds !== undefined ? { slotAckAgeSeconds: config.alarms.slotAckAgeSeconds } : {}),
              ...(config.alarms.topicArn !== undefined ? { topic: sns.Topic.fromTopicArn(this, 'AlarmTopic', config.alarms.topicArn) } : {}),
            },
          }
        : {}),
      ...(config.logRetentionDays !== undefined ? { logRetention: Duration.days(config.logRetentionDays) } : {}),
    });
    Tags.of(this).add('pgrelay', 'true');
  }
}

/** A VPC for a first try: two AZs, one NAT gateway, flow logs. Production stacks pass their own. */
export function newVpc(scope: Construct): ec2.IVpc {
  const vpc = new ec2.Vpc(scope, 'Vpc', {
    maxAzs: 2,
    natGateways: 1,
    subnetConfiguration: [
      { name: 'public', subnetType: ec2.SubnetType.PUBLIC },
      { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
    ],
  });
  vpc.addFlowLog('FlowLog', { destination: ec2.FlowLogDestination.toCloudWatchLogs(new logs.LogGroup(scope, 'FlowLogs', { retention: logs.RetentionDays.ONE_MONTH })) });
  return vpc;
}

/** Reads the config file; throws one Error listing every problem. */
export function loadAppConfig(file: string): AppConfigFile {
  if (!existsSync(file)) {
    throw new Error(`pgrelay: no deploy config at ${file}; copy pgrelay.config.example.json to pgrelay.config.json and fill it in, pass -c config=PATH, or put the settings under the "pgrelay" context key in cdk.json`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`pgrelay: ${file} is not valid JSON (${(err as Error).message})`);
  }
  return checkAppConfig(doc, file);
}

/** Checks a config document (from a file or the `pgrelay` context key); throws one Error listing every problem. */
export function checkAppConfig(doc: unknown, where: string): AppConfigFile {
  const problems: string[] = [];
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`pgrelay: ${where} must hold one JSON object`);
  const c = doc as AppConfigFile;
  const checkDb = (d: unknown, at: string) => {
    if (typeof d !== 'object' || d === null) return problems.push(`${at}: required ({ host, name, secretArn })`);
    const db = d as Partial<DatabaseFile>;
    if (typeof db.host !== 'string') problems.push(`${at}.host: required`);
    if (typeof db.name !== 'string') problems.push(`${at}.name: required`);
    if (typeof db.secretArn !== 'string' || !/^arn:aws[a-z-]*:secretsmanager:/.test(db.secretArn)) problems.push(`${at}.secretArn: a Secrets Manager secret ARN is required`);
    return undefined;
  };
  if (c.sources !== undefined) c.sources.forEach((s, i) => checkDb(s.database, `sources[${i}].database`));
  else checkDb(c.database, 'database');
  if (c.vpc !== undefined) {
    if (typeof c.vpc.vpcId !== 'string') problems.push('vpc.vpcId: required');
    if (!Array.isArray(c.vpc.availabilityZones) || c.vpc.availabilityZones.length === 0) problems.push('vpc.availabilityZones: list the AZs of the private subnets');
    if (!Array.isArray(c.vpc.privateSubnetIds) || c.vpc.privateSubnetIds.length === 0) problems.push('vpc.privateSubnetIds: list at least one private subnet');
  }
  if (problems.length > 0) throw new Error(`pgrelay: ${where}:\n  - ${problems.join('\n  - ')}`);
  return c;
}

/** Builds the app: the stack, and cdk-nag's AwsSolutions checks on everything in it. */
export function buildApp(app: App, configFile: string): PgRelayStack {
  // Settings given inline under the "pgrelay" context key win over a file.
  const inline: unknown = app.node.tryGetContext('pgrelay');
  const config = inline !== undefined ? checkAppConfig(typeof inline === 'string' ? JSON.parse(inline) : inline, 'context "pgrelay"') : loadAppConfig(configFile);
  const stack = new PgRelayStack(app, config.stackName ?? 'PgRelay', config, inline !== undefined ? process.cwd() : path.dirname(configFile));
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return stack;
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname);
if (isMain) {
  const app = new App();
  const file = (app.node.tryGetContext('config') as string | undefined) ?? 'pgrelay.config.json';
  try {
    buildApp(app, path.resolve(file));
    app.synth();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
}
