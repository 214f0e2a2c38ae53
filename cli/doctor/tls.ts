/**
 * TLS on the connection pgrelay uses: whether it is encrypted (pg_stat_ssl), whether the client
 * verifies the server certificate (the sslMode the connection settings carry), and whether that
 * matters (a loopback connection never leaves the machine). The fix names the CA bundle, the
 * RDS one on RDS/Aurora.
 */
import type pg from 'pg';
import type { ConnectionProvider } from '#shared/connection.ts';
import type { Platform } from './platform.ts';
import type { Finding, Fix } from './finding.ts';
import { singleRow } from '#shared/single-row.ts';

export interface SslFacts {
  host: string;
  encrypted: boolean;
  /** TLS version when encrypted. */
  version: string | null;
  /** The client checks the server certificate (verify-ca / verify-full). */
  verified: boolean;
}

const SSL_SQL = 'SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()';

/** TLS facts of `client`, opened from `connections` (whose settings say whether the certificate is verified). */
export async function readSslFacts(client: pg.Client, connections: ConnectionProvider): Promise<SslFacts> {
  const row = await singleRow<{ ssl: boolean; version: string | null }>(client, SSL_SQL);
  // The credentials are cached by the connection just made: nothing is read again.
  const config = await connections.clientConfig();
  const ssl = config.ssl;
  const verified = typeof ssl === 'object' && ssl !== null && ssl.rejectUnauthorized !== false;
  return { host: String(config.host ?? ''), encrypted: row.ssl, version: row.version, verified };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('/') || /^127\./.test(host) || host === '::1' || host === '[::1]';
}

export function sslFinding(s: SslFacts, platform: Platform): Finding {
  const verifyFix: Fix = {
    note: `connect with --ssl-mode verify-full --ca-bundle FILE (database.sslMode and caBundle in the config)${platform === 'rds' || platform === 'aurora' ? '; the RDS CA bundle: https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem' : ''}`,
  };
  if (s.encrypted && s.verified) return { id: 'connection.ssl', severity: 'ok', title: `TLS in use (${s.version ?? 'TLS'}), server certificate verified`, detail: 'Credentials and row data travel encrypted to the server pgrelay expects.' };
  if (isLoopback(s.host)) {
    return { id: 'connection.ssl', severity: 'ok', title: `${s.encrypted ? 'TLS in use' : 'not encrypted'} on a loopback connection (${s.host})`, detail: 'Nothing leaves this machine; use verify-full for a remote database.' };
  }
  if (s.encrypted) {
    return { id: 'connection.ssl', severity: 'warn', title: `TLS in use (${s.version ?? 'TLS'}) but the server certificate is not verified`, detail: 'sslMode require encrypts but would also talk to an impostor.', fix: verifyFix };
  }
  return { id: 'connection.ssl', severity: 'warn', title: `the connection to ${s.host} is not encrypted`, detail: 'Passwords and every changed row would cross the network in clear text.', fix: verifyFix };
}
