/**
 * The bundled app (cdk/app.ts): `npx cdk synth` with the example config works offline, with no
 * AWS credentials anywhere in reach, and the cdk-nag AwsSolutions checks it adds pass; a config
 * with problems fails with every problem listed. In-process first (buildApp, real Lambda
 * bundling, Template assertions), then the real CLI.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, loadAppConfig, type PgRelayStack } from '../../cdk/app.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const EXAMPLE = path.join(ROOT, 'pgrelay.config.example.json');
/** The config as JSON: untyped on purpose, the tests break it in ways the types would not allow. */
type ConfigDoc = Record<string, any>;
const example = JSON.parse(readFileSync(EXAMPLE, 'utf8')) as ConfigDoc;

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'pgrelay-app-'));
});
afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function writeConfig(name: string, doc: unknown): string {
  const file = path.join(scratch, name);
  writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

/** The example config with `edit` applied to a deep copy. */
function exampleWith(edit: (c: ConfigDoc) => void): ConfigDoc {
  const copy = structuredClone(example);
  edit(copy);
  return copy;
}

const badConfig = () =>
  exampleWith((c) => {
    delete c.database.secretArn;
    c.vpc = { vpcId: 'vpc-0123456789abcdef0', availabilityZones: [], privateSubnetIds: [] };
  });

describe('buildApp (in process)', () => {
  let outdir: string;
  let stack: PgRelayStack;
  let template: Template;
  let synthMs: number;

  beforeAll(() => {
    outdir = path.join(scratch, 'in-process');
    // The context `cdk deploy` gives the bundled app: cdk.json's feature flags.
    const { config: _file, ...flags } = (JSON.parse(readFileSync(path.join(ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> }).context;
    const app = new App({ outdir, context: flags });
    const started = Date.now();
    stack = buildApp(app, EXAMPLE);
    app.synth(); // throws on any unacknowledged cdk-nag finding
    synthMs = Date.now() - started;
    template = Template.fromStack(stack);
  }, 180_000);

  it('synthesizes the example config with the prebuilt bundles and a clean cdk-nag report', () => {
    console.info(`buildApp + synth of the example config (two prebuilt Lambda bundles and the streamer image context): ${synthMs} ms`);
    const report = JSON.parse(readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) as { pluginReports: { pluginName: string; violations?: unknown[] }[] };
    for (const r of report.pluginReports) expect(r.violations ?? [], r.pluginName).toEqual([]);
    expect(stack.stackName).toBe(example.stackName);
    expect(stack.region).toBe('eu-west-1');
  });

  it('builds the relay from the file: the given VPC subnets, database security group, secret and thresholds', () => {
    template.resourceCountIs('AWS::ECS::Service', 1);
    template.resourceCountIs('AWS::Lambda::Function', 2);
    template.resourceCountIs('AWS::SQS::Queue', 4);
    template.resourceCountIs('AWS::EC2::VPC', 0); // imported, not created
    template.hasResourceProperties('AWS::ECS::Service', { NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED', Subnets: example.vpc.privateSubnetIds }) } });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { GroupId: example.database.securityGroupId, FromPort: 5432, ToPort: 5432 });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'], Resource: example.database.secretArn })]) },
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'SlotLagBytes', Threshold: example.alarms.slotLagBytes });
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [Match.objectLike({ Environment: Match.arrayWith([{ Name: 'PGRELAY_CONFIG', Value: Match.objectLike({ 'Fn::Join': Match.anyValue() }) }]) })],
    });
    template.hasResourceProperties('AWS::S3::Bucket', { Tags: Match.arrayWith([{ Key: 'pgrelay', Value: 'true' }]) });
    const outputs = Object.keys(template.findOutputs('*'));
    for (const name of ['BusName', 'BusArn', 'NodesQueueUrl', 'ChangesQueueUrlshop', 'PayloadBucketName']) expect(outputs.some((k) => k.startsWith(`Relay${name}`)), name).toBe(true);
  });

  it('writes the two Lambda bundles and the streamer image context into the cloud assembly', () => {
    const lambdas = Object.values(template.findResources('AWS::Lambda::Function')) as { Properties: { Code: { S3Key: string } } }[];
    for (const fn of lambdas) {
      const dir = path.join(outdir, `asset.${fn.Properties.Code.S3Key.replace(/\.zip$/, '')}`);
      expect(readdirSync(dir).sort()).toEqual(['THIRD_PARTY_LICENSES.txt', 'index.mjs', 'index.mjs.map']);
    }
    const assets = JSON.parse(readFileSync(path.join(outdir, `${stack.artifactId}.assets.json`), 'utf8')) as { dockerImages: Record<string, { source: { directory: string; platform?: string } }> };
    const images = Object.values(assets.dockerImages);
    expect(images).toHaveLength(1);
    expect(images[0]?.source.platform).toBe('linux/arm64');
    expect(readdirSync(path.join(outdir, images[0]!.source.directory))).toEqual(expect.arrayContaining(['Dockerfile', 'pgrelay.mjs', 'health-check.mjs', 'THIRD_PARTY_LICENSES.txt']));
  });

  it('looks nothing up in the account (no context lookups to resolve)', () => {
    const manifest = JSON.parse(readFileSync(path.join(outdir, 'manifest.json'), 'utf8')) as { missing?: unknown[] };
    expect(manifest.missing ?? []).toEqual([]);
  });
});

describe('the config file', () => {
  it('lists every problem of the file at once', () => {
    const file = writeConfig('bad.json', badConfig());
    expect(() => loadAppConfig(file)).toThrow(
      [`pgrelay: ${file}:`, '  - database.secretArn: a Secrets Manager secret ARN is required', '  - vpc.availabilityZones: list the AZs of the private subnets', '  - vpc.privateSubnetIds: list at least one private subnet'].join('\n'),
    );
  });

  it('says where to start when there is no file, or it is not JSON', () => {
    expect(() => loadAppConfig(path.join(scratch, 'absent.json'))).toThrow(/no deploy config at .*absent\.json; copy pgrelay\.config\.example\.json/);
    const file = path.join(scratch, 'broken.json');
    writeFileSync(file, '{ "database": ');
    expect(() => loadAppConfig(file)).toThrow(/broken\.json is not valid JSON/);
  });

  it('hands the rest to the construct, which lists its own problems at once', () => {
    const file = writeConfig(
      'bad-props.json',
      exampleWith((c) => {
        const source = { database: c.database, tables: c.tables };
        delete c.database;
        delete c.tables;
        delete c.sourceId;
        c.sources = [
          { ...source, sourceId: 'shop' },
          { ...source, sourceId: 'shop', tables: ['a.b.c'] },
        ];
      }),
    );
    expect(() => buildApp(new App({ outdir: path.join(scratch, 'bad-props') }), file)).toThrow(
      /invalid PgRelay props:\n {2}- sources\[1\]\.sourceId: "shop" is used by sources\[0\] too.*\n {2}- sources\[1\]\.tables\[0\]: "a\.b\.c" is not a table name/,
    );
  });
});

// ---------------------------------------------------------------------------------------
// The CLI, as a user runs it: no AWS credentials, no AWS config, no instance metadata.

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** An environment with nothing of AWS in it but the switches that keep the SDK from looking. */
function offlineEnv(home: string): NodeJS.ProcessEnv {
  const empty = path.join(home, 'empty');
  writeFileSync(empty, '');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('AWS_') || k.startsWith('CDK_') || k.startsWith('VITEST') || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  return {
    ...env,
    // A home of its own: no ~/.aws, no CLI cache from earlier runs.
    HOME: home,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: empty,
    AWS_SHARED_CREDENTIALS_FILE: empty,
    CDK_DISABLE_CLI_TELEMETRY: 'true',
  };
}

function cdkSynth(config: string, out: string): Promise<Run> {
  const home = path.join(scratch, `home-${path.basename(out)}`);
  mkdirSync(home, { recursive: true });
  const args = ['cdk', 'synth', '--app', 'npx tsx cdk/app.ts', '-c', `config=${config}`, '--no-notices', '--no-version-reporting', '-o', out];
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('npx', args, { cwd: ROOT, env: offlineEnv(home), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

describe('npx cdk synth (the CLI, offline, no credentials)', () => {
  it('synthesizes the example config', async () => {
    const out = path.join(scratch, 'cli-out');
    const run = await cdkSynth('pgrelay.config.example.json', out);
    console.info(`npx cdk synth of the example config: ${run.ms} ms`);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toMatch(/credentials|Unable to resolve AWS account|ExpiredToken|Need to perform AWS calls/i);
    // cdk.json sets every feature flag the installed aws-cdk-lib recommends, so the CLI has none to warn of.
    expect(`${run.stdout}${run.stderr}`).not.toMatch(/feature flags? (is|are) not configured/i);
    const file = path.join(out, `${example.stackName}.template.json`);
    expect(existsSync(file)).toBe(true);
    const template = Template.fromJSON(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>);
    for (const [type, count] of [
      ['AWS::ECS::Cluster', 1],
      ['AWS::ECS::Service', 1],
      ['AWS::ECS::TaskDefinition', 1],
      ['AWS::Lambda::Function', 2],
      ['AWS::Lambda::EventSourceMapping', 1],
      ['AWS::SQS::Queue', 4],
      ['AWS::Events::EventBus', 1],
      ['AWS::S3::Bucket', 1],
      ['AWS::CloudWatch::Alarm', 8],
      ['AWS::CloudWatch::Dashboard', 1],
    ] as const) {
      template.resourceCountIs(type, count);
    }
    template.hasResourceProperties('AWS::ECS::TaskDefinition', { RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' } });
    // cdk-nag ran (buildApp adds it) and found nothing unacknowledged.
    const report = JSON.parse(readFileSync(path.join(out, 'validation-report.json'), 'utf8')) as { pluginReports: { violations?: unknown[] }[] };
    for (const r of report.pluginReports) expect(r.violations ?? []).toEqual([]);
  }, 180_000);

  it('fails on a config with a missing secretArn and a bad vpc, listing both on stderr', async () => {
    const config = writeConfig('cli-bad.json', badConfig());
    const out = path.join(scratch, 'cli-bad-out');
    const run = await cdkSynth(config, out);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('database.secretArn: a Secrets Manager secret ARN is required');
    expect(run.stderr).toContain('vpc.privateSubnetIds: list at least one private subnet');
    expect(run.stderr).toContain('vpc.availabilityZones: list the AZs of the private subnets');
    expect(existsSync(path.join(out, `${example.stackName}.template.json`))).toBe(false);
  }, 120_000);
});
