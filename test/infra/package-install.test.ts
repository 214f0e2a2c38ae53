/**
 * pgrelay as its users meet it: `npm pack` of this checkout installed into a fresh project
 * that has only aws-cdk-lib, constructs and typescript (the shape of `cdk init app --language
 * typescript`: CommonJS, module NodeNext). There, with no AWS credentials and nothing but the
 * npm registry reachable:
 *
 * - `tsc` type-checks a stack that uses `PgRelay`, `addConsumer` and the grant it needs;
 * - the compiled app synthesizes with the package's prebuilt bundles, writing nothing into
 *   node_modules;
 * - plain Node imports the consumer helper and handles an event with it;
 * - `npx pgrelay --help` and `npx pgrelay doctor` run, the latter against the test database.
 *
 * The README's "Use it in your stack" section is this project, step by step.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const manifest = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };

let scratch: string;
let project: string;
let tarball: string;
const timings: Record<string, number> = {};

function timed<T>(name: string, fn: () => T): T {
  const started = Date.now();
  try {
    return fn();
  } finally {
    timings[name] = Date.now() - started;
  }
}

/** Runs a command in the project with no AWS settings; throws with its output on failure. */
function run(cmd: string, args: string[], extraEnv: Record<string, string> = {}): { stdout: string; stderr: string; status: number | null } {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('AWS_') && !k.startsWith('CDK_') && !k.startsWith('npm_')) env[k] = v;
  const r = spawnSync(cmd, args, { cwd: project, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 300_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

const STACK = `import { App, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { PgRelay } from 'pgrelay/cdk';

const app = new App();
const stack = new Stack(app, 'Shop', { env: { account: '123456789012', region: 'eu-west-1' } });
const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
const secret = new secretsmanager.Secret(stack, 'DbSecret');
const relay = new PgRelay(stack, 'Relay', {
  vpc,
  tables: ['public.orders'],
  database: { host: 'db.internal', port: 5432, name: 'shop', secret },
});
const consumer = new lambda.Function(stack, 'OnOrder', {
  runtime: lambda.Runtime.NODEJS_22_X,
  handler: 'index.handler',
  code: lambda.Code.fromInline('exports.handler = async () => {};'),
});
relay.addConsumer(consumer, { labels: ['orders'] });
app.synth();
`;

const CONSUMER = `import { nodeHandler } from 'pgrelay';
const seen = [];
const handler = nodeHandler({ onInserted: (e) => void seen.push(e.node.id) });
const detail = {
  v: 1, type: 'node.inserted', source: 'shop', node: { id: 'orders:1', label: 'orders', properties: { id: '1' } },
  position: { commitLsn: '0/10', seq: 0 }, tx: { xid: 1, commitLsn: '0/10', commitTime: '2026-01-01T00:00:00.000000Z' },
};
await handler({ version: '0', id: 'x', 'detail-type': 'node.inserted', source: 'pgrelay.shop', account: '1', time: '', region: 'eu-west-1', resources: [], detail });
console.log(JSON.stringify(seen));
`;

/** The cdk init template's compiler options (module NodeNext in a CommonJS package), types trimmed to node. */
const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['es2022'], declaration: true, strict: true,
    noImplicitAny: true, strictNullChecks: true, noImplicitThis: true, alwaysStrict: true, noImplicitReturns: true,
    experimentalDecorators: true, strictPropertyInitialization: false, skipLibCheck: true, isolatedModules: true,
    rootDir: '.', outDir: 'build', types: ['node'],
  },
  include: ['bin/**/*.ts'],
};

beforeAll(() => {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'pgrelay-install-'));
  project = path.join(scratch, 'my-app');
  mkdirSync(path.join(project, 'bin'), { recursive: true });
  // npm pack runs prepack (the build) and prints the tarball's name last.
  const packed = timed('npm pack', () => execFileSync('npm', ['pack', '--pack-destination', scratch], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  tarball = path.join(scratch, packed.trim().split('\n').pop() as string);
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'my-app', version: '0.1.0', private: true }, null, 2));
  writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
  writeFileSync(path.join(project, 'bin', 'shop.ts'), STACK);
  writeFileSync(path.join(project, 'consumer.mjs'), CONSUMER);
  const deps = [tarball, `aws-cdk-lib@${manifest.devDependencies['aws-cdk-lib']}`, `constructs@${manifest.devDependencies.constructs}`, `typescript@${manifest.devDependencies.typescript}`, `@types/node@${manifest.devDependencies['@types/node']}`];
  const install = timed('npm install', () => run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...deps]));
  if (install.status !== 0) throw new Error(`npm install failed:\n${install.stdout}\n${install.stderr}`);
}, 600_000);

afterAll(() => {
  console.info(`package install test: ${JSON.stringify(timings)} ms; tarball ${tarball ? (statSync(tarball).size / 1e6).toFixed(1) : '?'} MB`);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Every file under `dir`, relative, sorted. */
function listFiles(dir: string, base = dir): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? listFiles(p, base) : [path.relative(base, p)];
  }).sort();
}

describe('npm pack of pgrelay, installed into a fresh CDK app', () => {
  it('ships dist, schemas, README, LICENSE and package.json, nothing else', () => {
    const installed = path.join(project, 'node_modules', 'pgrelay');
    const top = [...new Set(listFiles(installed).map((f) => f.split(path.sep)[0]))].sort();
    expect(top).toEqual(['LICENSE', 'README.md', 'dist', 'package.json', 'schemas']);
    const pkg = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8')) as { version: string; license: string; private?: boolean };
    expect(pkg).toMatchObject({ version: manifest.version, license: 'Apache-2.0' });
    expect(pkg.private).toBeUndefined();
    expect(readFileSync(path.join(installed, 'LICENSE'), 'utf8')).toContain('Apache License');
    for (const bundle of ['transform', 'monitor']) expect(listFiles(path.join(installed, 'dist', 'bundles', bundle))).toEqual(['THIRD_PARTY_LICENSES.txt', 'index.mjs', 'index.mjs.map']);
  });

  it('type-checks a stack that uses PgRelay and addConsumer with the cdk init compiler options', () => {
    const tsc = timed('tsc', () => run('npx', ['tsc', '--noEmit']));
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  });

  it('synthesizes offline with the prebuilt bundles, writing nothing into node_modules', () => {
    const before = listFiles(path.join(project, 'node_modules', 'pgrelay'));
    const build = run('npx', ['tsc']);
    expect(build.status, build.stdout + build.stderr).toBe(0);
    const synth = timed('synth', () => run(process.execPath, ['build/bin/shop.js'], { CDK_OUTDIR: path.join(project, 'cdk.out') }));
    expect(synth.status, synth.stderr).toBe(0);
    const template = JSON.parse(readFileSync(path.join(project, 'cdk.out', 'Shop.template.json'), 'utf8')) as { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
    const functions = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    // The transform, the monitor (prebuilt, index.handler on Node 22) and the user's consumer.
    expect(functions.filter((f) => f.Properties.Handler === 'index.handler' && f.Properties.Runtime === 'nodejs22.x')).toHaveLength(3);
    expect(Object.values(template.Resources).filter((r) => r.Type === 'AWS::Events::Rule').length).toBeGreaterThanOrEqual(2);
    const assets = readdirSync(path.join(project, 'cdk.out')).filter((f) => f.startsWith('asset.'));
    // Two Lambda bundles and the streamer's image context, copied from the package.
    const contents = assets.map((a) => listFiles(path.join(project, 'cdk.out', a)).join(','));
    expect(contents).toEqual(expect.arrayContaining(['THIRD_PARTY_LICENSES.txt,index.mjs,index.mjs.map']));
    expect(contents.some((c) => c.includes('Dockerfile') && c.includes('pgrelay.mjs'))).toBe(true);
    expect(listFiles(path.join(project, 'node_modules', 'pgrelay'))).toEqual(before);
  });

  it('lets plain Node import the consumer helper and handle an event', () => {
    const r = run(process.execPath, ['consumer.mjs']);
    expect(r.stderr.replace(/\(node:\d+\) Warning: NodeVersionSupportWarning[\s\S]*$/, '')).toBe('');
    expect(r.stdout.trim()).toBe('["orders:1"]');
  });

  it('runs `npx pgrelay --help` and `npx pgrelay doctor` against a database', async () => {
    const help = run('npx', ['pgrelay', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout + help.stderr).toMatch(/doctor/);
    const version = run('npx', ['pgrelay', '--version']);
    expect(version.stdout.trim()).toBe(manifest.version);

    const db = await testDatabase('pkg_install');
    try {
      await withClient(db.url, (c) => c.query('CREATE TABLE orders (id int PRIMARY KEY, note text)'));
      const doctor = run('npx', ['pgrelay', 'doctor', '--database-url', db.url, '--tables', 'public.orders']);
      // It connected and checked: the server's settings and the table's key are reported on.
      expect(doctor.stdout, doctor.stderr).toMatch(/wal_level/);
      expect(doctor.stdout).toMatch(/public\.orders/);
      expect([0, 1]).toContain(doctor.status);
    } finally {
      await db.drop();
    }
  });
});
