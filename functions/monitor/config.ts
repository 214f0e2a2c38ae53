/**
 * The monitor Lambda's configuration: the streamer's settings it shares (source, database,
 * slot, publication, tables), taken from the streamer's own schema so the two never drift,
 * parsed once from PGRELAY_MONITOR_CONFIG. Every problem is reported at once.
 */
import { z } from 'zod';
import { databaseProblems, parseTableList, streamerConfigSchema, type StreamerConfig } from '#core/config.ts';
import { ConfigError } from '#core/errors.ts';
import type { TableName } from '#core/identifiers.ts';

const shared = streamerConfigSchema.shape;

export const monitorConfigSchema = z
  .object({
    sourceId: shared.sourceId,
    database: shared.database,
    tables: shared.tables,
    slotName: shared.slotName,
    publicationName: shared.publicationName,
    region: z.string().optional(),
    /** Secrets Manager endpoint override (tests). */
    secretsEndpoint: shared.secretsEndpoint,
    /** Cap on each catalog query, so a stuck server cannot hold the Lambda to its timeout. */
    statementTimeoutMs: z.number().int().min(100).max(60_000).default(5_000),
  })
  .strict();

export type MonitorConfigInput = z.input<typeof monitorConfigSchema>;

export interface MonitorConfig {
  sourceId: string;
  database: StreamerConfig['database'];
  tables: TableName[];
  slotName: string;
  publicationName: string;
  region: string;
  secretsEndpoint?: string;
  statementTimeoutMs: number;
}

export const MONITOR_ENV = { config: 'PGRELAY_MONITOR_CONFIG', region: 'AWS_REGION' } as const;

function issuePath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(config)' : path.map(String).join('.');
}

/** Validate a config object; throws one ConfigError listing every problem. */
export function parseMonitorConfig(input: unknown, defaults: { region?: string } = {}): MonitorConfig {
  const result = monitorConfigSchema.safeParse(input);
  const problems = result.success ? [] : result.error.issues.map((i) => `${issuePath(i.path)}: ${i.message}`);
  const raw = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  if (typeof raw.database === 'object' && raw.database !== null) problems.push(...databaseProblems(raw.database as Record<string, unknown>));
  const tables = parseTableList(raw.tables, problems);
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  const data = result.data;
  // The same defaults as the streamer's, so both point at one slot without saying so twice.
  const derived = `pgrelay_${data.sourceId.replaceAll('-', '_')}`;
  return {
    sourceId: data.sourceId,
    database: data.database,
    tables,
    slotName: data.slotName ?? derived,
    publicationName: data.publicationName ?? derived,
    region: data.region ?? defaults.region ?? 'us-east-1',
    ...(data.secretsEndpoint !== undefined ? { secretsEndpoint: data.secretsEndpoint } : {}),
    statementTimeoutMs: data.statementTimeoutMs,
  };
}

/** The monitor's config from its environment (one JSON document, set by the construct). */
export function parseMonitorEnv(env: Record<string, string | undefined>): MonitorConfig {
  const text = env[MONITOR_ENV.config];
  if (text === undefined) throw new ConfigError([`${MONITOR_ENV.config}: not set`]);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`${MONITOR_ENV.config}: not valid JSON (${(err as Error).message})`]);
  }
  const region = env[MONITOR_ENV.region];
  return parseMonitorConfig(doc, region !== undefined ? { region } : {});
}
