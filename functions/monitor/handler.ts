/**
 * The monitor Lambda, on an EventBridge schedule: one ordinary (never replication)
 * connection, the catalog reads of readStatus, one EMF line to stdout for CloudWatch to turn
 * into metrics. Thin: config and connection settings once per container, then runMonitor.
 */
import pg from 'pg';
import { PgRelayError } from '#core/errors.ts';
import { ConnectionProvider, explainConnectionFailure, isAuthFailure, secretsManagerSource } from '#streamer/connection.ts';
import { readStatus, type SlotStatus } from '#streamer/status.ts';
import { parseMonitorEnv, type MonitorConfig } from './config.ts';
import { slotMetrics } from './metrics.ts';

export interface MonitorDeps {
  connections: Pick<ConnectionProvider, 'clientConfig' | 'invalidate'>;
  /** Receives the EMF document as one line (console.log in the Lambda). */
  write(line: string): void | Promise<void>;
  /** Epoch milliseconds for the document's timestamp. @default Date.now */
  now?: () => number;
}

export interface MonitorSummary {
  sourceId: string;
  slotName: string;
  slotState: SlotStatus['state'];
  lagBytes: number | null;
  retainedWalBytes: number | null;
  missingTables: string[];
}

const APPLICATION_NAME = 'pgrelay-monitor';

/** One check: connect, read the status, write the metrics, disconnect. */
export async function runMonitor(config: MonitorConfig, deps: MonitorDeps): Promise<MonitorSummary> {
  const client = await connect(config, deps.connections);
  try {
    const status = await readStatus(client, { slotName: config.slotName, publicationName: config.publicationName, tables: config.tables });
    const doc = slotMetrics(status, { sourceId: config.sourceId, now: (deps.now ?? Date.now)() });
    await deps.write(JSON.stringify(doc));
    const slot = status.slot.state === 'missing' ? undefined : status.slot;
    return {
      sourceId: config.sourceId,
      slotName: config.slotName,
      slotState: status.slot.state,
      lagBytes: slot?.lagBytes ?? null,
      retainedWalBytes: slot?.retainedWalBytes ?? null,
      missingTables: status.publication.missingTables,
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * A plain client with statement and query timeouts, so a stuck server ends the run in
 * seconds. A rejected password is retried once with the secret read again (rotation).
 */
async function connect(config: MonitorConfig, connections: MonitorDeps['connections']): Promise<pg.Client> {
  for (let attempt = 1; ; attempt++) {
    const settings = await connections.clientConfig({ applicationName: APPLICATION_NAME });
    const client = new pg.Client({ ...settings, statement_timeout: config.statementTimeoutMs, query_timeout: config.statementTimeoutMs + 1_000 });
    // An error on an idle client must not crash the container; the next query reports it.
    client.on('error', () => undefined);
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (attempt === 1 && isAuthFailure(err)) {
        connections.invalidate();
        continue;
      }
      const to = { host: settings.host ?? '?', port: settings.port ?? 5432, database: settings.database ?? '?', ...(settings.user ? { user: settings.user } : {}) };
      const failure = explainConnectionFailure(err, to);
      throw new PgRelayError(`CONNECT_${failure.code}`, failure.message, { cause: err });
    }
  }
}

let container: { config: MonitorConfig; connections: ConnectionProvider } | undefined;

export async function handler(): Promise<MonitorSummary> {
  if (container === undefined) {
    const config = parseMonitorEnv(process.env);
    const secrets = config.database.secretArn ? secretsManagerSource(config.region, config.secretsEndpoint) : undefined;
    container = { config, connections: new ConnectionProvider(config.database, secrets) };
  }
  return runMonitor(container.config, { connections: container.connections, write: (line) => console.log(line) });
}
