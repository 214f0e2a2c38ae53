/**
 * The monitor Lambda, on an EventBridge schedule: one ordinary (never replication)
 * connection, one guardian run (guardian.ts), one EMF line to stdout for CloudWatch to turn
 * into metrics. Thin: config, connection settings and the ECS client once per container.
 * A run that fails still prints a document, with MonitorRunFailed = 1, then fails the invocation.
 */
import pg from 'pg';
import { PgRelayError } from '#core/errors.ts';
import { ConnectionProvider, explainConnectionFailure, isAuthFailure, secretsManagerSource } from '#shared/connection.ts';
import type { SlotStatus } from '#shared/source-status.ts';
import { parseMonitorEnv, type MonitorConfig } from './config.ts';
import { ecsServiceControl } from './ecs.ts';
import { guard, guardianMetrics, type Action, type Finding, type StreamerService } from './guardian.ts';
import { runFailedMetrics } from './metrics.ts';

export interface MonitorDeps {
  connections: Pick<ConnectionProvider, 'clientConfig' | 'invalidate'>;
  /** Receives the EMF document as one line (console.log in the Lambda). */
  write(line: string): void | Promise<void>;
  /** The streamer's ECS service, when the config names one. */
  service?: StreamerService;
  /** Epoch milliseconds for the run's clock. @default Date.now */
  now?: () => number;
}

export interface MonitorSummary {
  sourceId: string;
  slotName: string;
  slotState: SlotStatus['state'];
  lagBytes: number | null;
  retainedWalBytes: number | null;
  missingTables: string[];
  slotLost: boolean;
  lastAckAgeSeconds: number | null;
  inactiveSeconds: number | null;
  findings: Finding[];
  actions: Action[];
}

const APPLICATION_NAME = 'pgrelay-monitor';

/** One run: connect, guard, write the metrics, disconnect. */
export async function runMonitor(config: MonitorConfig, deps: MonitorDeps): Promise<MonitorSummary> {
  const now = (deps.now ?? Date.now)();
  let client: pg.Client | undefined;
  try {
    client = await connect(config, deps.connections);
    const result = await guard(client, config, { now: new Date(now), ...(deps.service !== undefined ? { service: deps.service } : {}) });
    await deps.write(JSON.stringify(guardianMetrics(result, config.sourceId, now)));
    const slot = result.status.slot.state === 'missing' ? undefined : result.status.slot;
    return {
      sourceId: config.sourceId,
      slotName: config.slotName,
      slotState: result.status.slot.state,
      lagBytes: slot?.lagBytes ?? null,
      retainedWalBytes: slot?.retainedWalBytes ?? null,
      missingTables: result.status.publication.missingTables,
      slotLost: result.slotLost,
      lastAckAgeSeconds: result.lastAckAgeSeconds ?? null,
      inactiveSeconds: result.inactiveSeconds ?? null,
      findings: result.findings,
      actions: result.actions,
    };
  } catch (err) {
    const code = err instanceof PgRelayError ? err.code : ((err as { code?: string }).code ?? 'ERROR');
    await deps.write(JSON.stringify(runFailedMetrics({ sourceId: config.sourceId, slotName: config.slotName, now, code, message: (err as Error).message })));
    throw err;
  } finally {
    await client?.end().catch(() => undefined);
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

let container: { config: MonitorConfig; connections: ConnectionProvider; service?: StreamerService } | undefined;

export async function handler(): Promise<MonitorSummary> {
  if (container === undefined) {
    const config = parseMonitorEnv(process.env);
    const secrets = config.database.secretArn ? secretsManagerSource(config.region, config.secretsEndpoint) : undefined;
    const service = config.ecs !== undefined ? ecsServiceControl(config.ecs, { region: config.region, ...(config.ecsEndpoint !== undefined ? { endpoint: config.ecsEndpoint } : {}) }) : undefined;
    container = { config, connections: new ConnectionProvider(config.database, secrets), ...(service !== undefined ? { service } : {}) };
  }
  const { config, connections, service } = container;
  return runMonitor(config, { connections, write: (line) => console.log(line), ...(service !== undefined ? { service } : {}) });
}
