/**
 * The monitor Lambda, on an EventBridge schedule: one ordinary (never replication)
 * connection, one guardian run (guardian.ts), one EMF line to stdout for CloudWatch to turn
 * into metrics. Thin: config, connection settings and the ECS client once per container.
 * A run that fails still prints a document, with MonitorRunFailed = 1, then fails the invocation.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import type pg from 'pg';
import { PgRelayError } from '#core/errors.ts';
import { ConnectionProvider, secretsManagerSource } from '#shared/connection.ts';
import type { SlotStatus } from '#shared/source-status.ts';
import { parseMonitorEnv, type MonitorConfig } from './config.ts';
import { ecsServiceControl } from './ecs.ts';
import { guard, guardianMetrics, type Action, type Finding, type StreamerService } from './guardian.ts';
import { runFailedMetrics } from './metrics.ts';

export interface MonitorDeps {
  connections: Pick<ConnectionProvider, 'connect'>;
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
    // Statement and query timeouts, so a stuck server ends the run in seconds.
    client = await deps.connections.connect({ applicationName: APPLICATION_NAME, statementTimeoutMs: config.statementTimeoutMs });
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

let container: { config: MonitorConfig; connections: ConnectionProvider; service?: StreamerService } | undefined;

/** Powertools Logger: the run's failure as a JSON line with the request id (the EMF document is the run's record). */
const logger = new Logger({ serviceName: 'pgrelay-monitor' });

export async function handler(_event?: unknown, context?: Context): Promise<MonitorSummary> {
  if (context !== undefined) logger.addContext(context);
  if (container === undefined) {
    const config = parseMonitorEnv(process.env);
    const secrets = config.database.secretArn ? secretsManagerSource(config.region, config.secretsEndpoint) : undefined;
    const service = config.ecs !== undefined ? ecsServiceControl(config.ecs, { region: config.region, ...(config.ecsEndpoint !== undefined ? { endpoint: config.ecsEndpoint } : {}) }) : undefined;
    container = { config, connections: new ConnectionProvider(config.database, secrets), ...(service !== undefined ? { service } : {}) };
  }
  const { config, connections, service } = container;
  try {
    return await runMonitor(config, { connections, write: (line) => console.log(line), ...(service !== undefined ? { service } : {}) });
  } catch (err) {
    logger.error('monitor run failed', { sourceId: config.sourceId, slotName: config.slotName, error: err as Error });
    throw err;
  }
}
