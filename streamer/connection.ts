/**
 * Where database connections come from: a URL (local runs), or host/port/name with
 * credentials from a Secrets Manager secret (AWS). The secret is cached and re-read after
 * PostgreSQL rejects the password, so a rotation never needs a restart.
 */
import { readFileSync } from 'node:fs';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { ClientConfig } from 'pg';
import type { StreamerConfig, SslMode } from '#core/config.ts';
import { ConfigError, PgRelayError } from '#core/errors.ts';

/**
 * Session settings that fix how PostgreSQL prints values, so the text we decode has one
 * form whatever the server's defaults (values.ts relies on these).
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

  /** Forget cached credentials: the next connection re-reads the secret. */
  invalidate(): void {
    if (this.db.secretArn) this.cached = undefined;
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

/**
 * One sentence for a failed connection: what happened to which server, and what to do.
 * `target` is a URL (password removed here) or host:port/db text.
 */
export function explainConnectionError(err: unknown, target: string): string {
  let where = target;
  if (/^postgres(ql)?:\/\//.test(target)) {
    try {
      const u = new URL(target);
      where = `${u.hostname}:${u.port || 5432}/${decodeURIComponent(u.pathname.slice(1)) || 'postgres'}`;
    } catch {
      where = '(an unparseable database URL)';
    }
  }
  const e = err as { code?: string; message?: string };
  switch (e?.code) {
    case 'ECONNREFUSED':
      return `nothing accepts connections at ${where}: start PostgreSQL or fix the host and port`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host of ${where} cannot be resolved: check the host name`;
    case 'ETIMEDOUT':
      return `connecting to ${where} timed out: check the network path (security groups, firewall, VPC routing)`;
    case '28P01':
      return `PostgreSQL at ${where} rejected the password: check the credentials (or the secret's password after a rotation)`;
    case '28000':
      return `PostgreSQL at ${where} refused the login (${e.message ?? 'no pg_hba.conf entry'}): add a pg_hba.conf entry for this user and host, or use SSL if the server requires it`;
    case '3D000':
      return `database ${where.split('/').pop()} does not exist on ${where.split('/')[0]}: check the database name`;
    case '53300':
      return `PostgreSQL at ${where} has no free connection slots: raise max_connections or close idle sessions`;
    default:
      if (/timeout/i.test(e?.message ?? '')) return `connecting to ${where} timed out: check the network path and that the server is up`;
      return `cannot connect to ${where}: ${e?.message ?? String(err)}`;
  }
}
