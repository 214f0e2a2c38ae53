/**
 * Where database connections come from: a URL (local runs), or host/port/name with
 * credentials from a Secrets Manager secret (AWS). The secret is cached and re-read after
 * PostgreSQL rejects the password, so a rotation never needs a restart.
 */
import { readFileSync } from 'node:fs';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pg, { type ClientConfig } from 'pg';
import type { StreamerConfig, SslMode } from '#core/config.ts';
import { ConfigError, PgRelayError } from '#core/errors.ts';

/**
 * Session settings that fix how PostgreSQL prints values, so the text we decode has one
 * form whatever the server's defaults (the converters in functions/core/values/ rely on these).
 */
export const SESSION_OPTIONS = '-c DateStyle=ISO,YMD -c TimeZone=UTC -c IntervalStyle=iso_8601 -c extra_float_digits=3 -c bytea_output=hex';

interface Credentials {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

export interface SecretSource {
  getSecretString(arn: string): Promise<string>;
}

export function secretsManagerSource(
  region: string,
  endpoint?: string,
  credentials?: { accessKeyId: string; secretAccessKey: string },
): SecretSource {
  const client = new SecretsManagerClient({ region, maxAttempts: 3, ...(endpoint ? { endpoint } : {}), ...(credentials ? { credentials } : {}) });
  return {
    async getSecretString(arn) {
      const out = await client.send(new GetSecretValueCommand({ SecretId: arn }));
      if (out.SecretString === undefined) throw new PgRelayError('SECRET_FORMAT', `secret ${arn} has no SecretString`);
      return out.SecretString;
    },
  };
}

/** SQLSTATEs PostgreSQL uses for a rejected login. */
export function isAuthFailure(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === '28P01' || code === '28000';
}

export class ConnectionProvider {
  private cached: Credentials | undefined;
  private readonly ssl: ClientConfig['ssl'];
  secretReads = 0;

  constructor(
    private readonly db: StreamerConfig['database'],
    private readonly secrets?: SecretSource,
  ) {
    this.ssl = sslOptions(db.sslMode ?? sslModeFromUrl(db.url) ?? (db.url ? 'disable' : 'require'), db.caBundle);
  }

  /** Settings for a new connection; `replication` adds the walsender flag. */
  async clientConfig(opts: { replication?: boolean; applicationName?: string } = {}): Promise<ClientConfig> {
    const c = await this.credentials();
    return {
      host: c.host,
      port: c.port,
      database: c.database,
      user: c.user,
      password: c.password,
      ssl: this.ssl,
      connectionTimeoutMillis: this.db.connectTimeoutMs,
      application_name: opts.applicationName ?? 'pgrelay',
      options: SESSION_OPTIONS,
      keepAlive: true,
      ...(opts.replication ? { replication: 'database' } : {}),
    } as ClientConfig;
  }

  /**
   * A connected client: the one way pgrelay opens an ordinary connection (streamer set-up,
   * operator commands, doctor, monitor, npm start). A rejected password is tried once more with
   * the secret read again (rotation); an error on the idle client never crashes the process (the
   * next query reports it). Failures are a ConnectError: one sentence naming the server and the
   * fix, with a stable code (`SECRET`, `UNREACHABLE`, `TIMEOUT`, `AUTH`, `NO_DATABASE`, `TLS`, `SERVER`).
   */
  async connect(opts: { applicationName: string; replication?: boolean; statementTimeoutMs?: number }): Promise<pg.Client> {
    for (let attempt = 1; ; attempt++) {
      let config: ClientConfig;
      try {
        config = await this.clientConfig(opts);
      } catch (err) {
        throw new ConnectError('SECRET', secretFailure(err, this.describeSafely()), { cause: err });
      }
      const timeouts = opts.statementTimeoutMs !== undefined ? { statement_timeout: opts.statementTimeoutMs, query_timeout: opts.statementTimeoutMs + 1_000 } : {};
      const client = new pg.Client({ ...config, ...timeouts });
      client.on('error', () => undefined);
      try {
        await client.connect();
        return client;
      } catch (err) {
        await client.end().catch(() => undefined);
        if (attempt === 1 && isAuthFailure(err) && this.db.secretArn) {
          this.invalidate();
          continue;
        }
        const failure = explainConnectionFailure(err, { host: String(config.host ?? 'localhost'), port: config.port ?? 5432, database: String(config.database ?? ''), ...(config.user ? { user: config.user } : {}) });
        throw new ConnectError(failure.code, failure.message, { cause: err });
      }
    }
  }

  /** Forget cached credentials: the next connection re-reads the secret. */
  invalidate(): void {
    if (this.db.secretArn) this.cached = undefined;
  }

  /** `describe()`, or 'the database' when even that cannot be said (an unparseable URL). */
  describeSafely(): string {
    try {
      return this.describe();
    } catch {
      return 'the database';
    }
  }

  /** What to print about the target, without secrets. */
  describe(): string {
    if (this.db.url) {
      const u = new URL(this.db.url);
      return `${u.hostname}:${u.port || 5432}/${decodeURIComponent(u.pathname.slice(1))}`;
    }
    return `${this.db.host}:${this.db.port}/${this.db.name}`;
  }

  private async credentials(): Promise<Credentials> {
    if (this.cached) return this.cached;
    if (this.db.url) {
      const u = new URL(this.db.url);
      this.cached = {
        host: u.searchParams.get('host') ?? decodeURIComponent(u.hostname),
        port: Number(u.port || 5432),
        database: decodeURIComponent(u.pathname.slice(1)) || 'postgres',
        user: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
      };
      return this.cached;
    }
    if (!this.secrets || !this.db.secretArn) throw new ConfigError(['database.secretArn: no secret source configured']);
    const text = await this.secrets.getSecretString(this.db.secretArn);
    this.secretReads++;
    let secret: Record<string, unknown>;
    try {
      secret = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new PgRelayError('SECRET_FORMAT', `secret ${this.db.secretArn} is not JSON with username and password`);
    }
    if (typeof secret.username !== 'string' || typeof secret.password !== 'string') {
      throw new PgRelayError('SECRET_FORMAT', `secret ${this.db.secretArn} lacks username or password`);
    }
    this.cached = {
      host: this.db.host ?? (secret.host as string),
      port: this.db.port ?? Number(secret.port ?? 5432),
      database: this.db.name ?? (secret.dbname as string),
      user: secret.username,
      password: secret.password,
    };
    return this.cached;
  }
}

function sslModeFromUrl(url: string | undefined): SslMode | undefined {
  if (!url) return undefined;
  const mode = new URL(url).searchParams.get('sslmode');
  if (mode === null) return undefined;
  if (mode === 'prefer' || mode === 'allow') return 'disable';
  return (['disable', 'require', 'verify-ca', 'verify-full'] as const).find((m) => m === mode);
}

function loadCa(caBundle: string | undefined): string | undefined {
  if (caBundle === undefined) return undefined;
  if (caBundle.includes('-----BEGIN')) return caBundle;
  try {
    return readFileSync(caBundle, 'utf8');
  } catch (err) {
    throw new ConfigError([`database.caBundle: cannot read ${caBundle} (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
}

export function sslOptions(mode: SslMode, caBundle: string | undefined): ClientConfig['ssl'] {
  switch (mode) {
    case 'disable':
      return false;
    case 'require':
      // Encrypted, not verified: the libpq meaning of `require`.
      return { rejectUnauthorized: false };
    case 'verify-ca':
      return { rejectUnauthorized: true, ca: loadCa(caBundle), checkServerIdentity: () => undefined };
    case 'verify-full':
      return { rejectUnauthorized: true, ca: loadCa(caBundle) };
  }
}

export type ConnectionFailureCode = 'UNREACHABLE' | 'TIMEOUT' | 'AUTH' | 'NO_DATABASE' | 'SERVER' | 'TLS';

/** A connection that could not be opened (ConnectionProvider.connect), phrased for people. */
export type ConnectErrorCode = ConnectionFailureCode | 'SECRET';
export class ConnectError extends PgRelayError<ConnectErrorCode> {}

function secretFailure(err: unknown, where: string): string {
  // One sentence, even for a config problem list.
  if (err instanceof ConfigError) return err.problems.join('; ');
  if (err instanceof PgRelayError) return err.message;
  const e = err as { name?: string; message?: string };
  return `cannot read the credentials for ${where} from Secrets Manager (${e.name ?? 'Error'}: ${firstLine(e.message)}): check the secret ARN, the region, and that these AWS credentials may call secretsmanager:GetSecretValue on it`;
}

/** The first line of an error message: drivers append detail nobody needs in a one-sentence report. */
export function firstLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0] ?? '';
}

const UNTRUSTED_CERT = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED']);

/**
 * One sentence for a connection that failed: which server, what happened, what to do. The one
 * place every command (npm start, doctor, status, slot drop) turns a connect error into words.
 */
export function explainConnectionFailure(
  err: unknown,
  to: { host: string; port: number; database: string; user?: string },
): { code: ConnectionFailureCode; message: string } {
  const e = err as { code?: string; message?: string };
  const hostPort = `${to.host}:${to.port}`;
  const where = `${hostPort}/${to.database}`;
  const user = to.user ? ` of user ${to.user}` : '';
  const say = (code: ConnectionFailureCode, message: string) => ({ code, message });
  switch (e?.code) {
    case 'ECONNREFUSED':
    case 'ENOENT':
      return say('UNREACHABLE', `nothing accepts connections at ${where}: start PostgreSQL or fix the host and port`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return say('UNREACHABLE', `the host of ${where} cannot be resolved: check the host name`);
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return say('UNREACHABLE', `${hostPort} cannot be reached (${e.code}): check the host, port and network path (security groups, firewall, VPC routing)`);
    case 'ECONNRESET':
    case 'EPIPE':
      return say('UNREACHABLE', `${hostPort} closed the connection without answering like PostgreSQL: check the port (another service may listen there) and whether the server requires TLS (sslMode require)`);
    case '28P01':
      return say('AUTH', `PostgreSQL at ${where} rejected the password${user}: check the credentials (or the secret's password after a rotation)`);
    case '28000':
      return say('AUTH', `PostgreSQL at ${where} refused the login${user} (${firstLine(e.message)}): allow this user and host in pg_hba.conf, or connect with TLS if the server only accepts it`);
    case '3D000':
      return say('NO_DATABASE', `database ${to.database} does not exist on ${hostPort}: check the database name (SELECT datname FROM pg_database lists them)`);
    case '53300':
      return say('SERVER', `PostgreSQL at ${hostPort} has no free connection slots: close idle sessions or raise max_connections`);
    case '57P03':
      return say('SERVER', `PostgreSQL at ${hostPort} is starting up or shutting down: try again in a moment`);
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return say('TLS', `the TLS certificate of ${hostPort} does not name that host: connect by a name the certificate lists, or use sslMode verify-ca`);
  }
  if (e?.code && UNTRUSTED_CERT.has(e.code)) {
    return say('TLS', `the TLS certificate of ${hostPort} is not trusted (${e.code}): give the CA bundle that signed it (caBundle / --ca-bundle; for RDS/Aurora the region's bundle)`);
  }
  // pg raises these without a code; its message text is all there is to go on.
  const message = e?.message ?? String(err);
  if (/does not support SSL/i.test(message)) return say('TLS', `${hostPort} does not accept TLS connections: turn on ssl on the server, or use sslMode disable on a trusted network only`);
  if (/error establishing an SSL connection/i.test(message)) return say('TLS', `${hostPort} did not answer the TLS request like PostgreSQL: check the port (another service may listen there)`);
  if (/timeout/i.test(message)) return say('TIMEOUT', `${hostPort} did not answer within the connect timeout: check the host, port and network path, and that PostgreSQL is up`);
  if (/terminated unexpectedly|unexpected message/i.test(message)) {
    return say('UNREACHABLE', `${hostPort} closed the connection without answering like PostgreSQL: check the port and whether the server requires TLS`);
  }
  return say('UNREACHABLE', `cannot connect to ${where}: ${firstLine(message)}${e?.code ? ` (${e.code})` : ''}`);
}
