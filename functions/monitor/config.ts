/**
 * The monitor Lambda's configuration: the streamer's settings it shares (source, database,
 * slot, publication, tables, state schema), taken from the streamer's own schema so the two
 * never drift, plus what only the guardian decides (heartbeat, liveness, repairs), parsed once
 * from PGRELAY_MONITOR_CONFIG. Every problem is reported at once.
 */
import { z } from 'zod';
import { databaseProblems, jsonFromEnv, zodProblems, parseTableList, streamerConfigSchema, type StreamerConfig } from '#core/config.ts';
import { ConfigError } from '#core/errors.ts';
import type { TableConfig } from '#core/config.ts';

const shared = streamerConfigSchema.shape;

const livenessSchema = z
  .object({
    /** Stop the task when the slot has had no streamer for this long while ECS says the service runs. */
    inactiveSeconds: z.number().int().min(60).max(86_400).default(300),
    /** Stop the task when the acknowledged position has not moved for this long while WAL piles up after it. */
    stalledSeconds: z.number().int().min(60).max(86_400).default(600),
    /** At most one stop per this many seconds, so a task that cannot get healthy is not killed in a loop. */
    cooldownSeconds: z.number().int().min(60).max(86_400).default(900),
  })
  .strict();

export const monitorConfigSchema = z
  .object({
    sourceId: shared.sourceId,
    database: shared.database,
    tables: shared.tables,
    slotName: shared.slotName,
    publicationName: shared.publicationName,
    stateSchema: shared.stateSchema,
    /** Add configured tables the publication lacks (when the user's privileges allow). */
    managePublication: shared.managePublication,
    /** Write a heartbeat into the WAL every run, so a slot whose tables are quiet still advances. */
    heartbeat: z.boolean().default(true),
    /** Request the initial load of configured tables that were never loaded. */
    bootstrapNewTables: z.boolean().default(true),
    /**
     * Opt-in: when the slot was invalidated or dropped, create it again and request a fresh
     * bootstrap of every table, recording the lost WAL range. Off, the monitor only alarms.
     */
    recreateLostSlot: z.boolean().default(false),
    /** The streamer's ECS service; without it the monitor reports a stuck streamer but cannot stop it. */
    ecs: z.object({ cluster: z.string().min(1), service: z.string().min(1) }).strict().optional(),
    liveness: livenessSchema.default({ inactiveSeconds: 300, stalledSeconds: 600, cooldownSeconds: 900 }),
    region: z.string().optional(),
    /** Secrets Manager endpoint override (tests). */
    secretsEndpoint: shared.secretsEndpoint,
    /** ECS endpoint override (tests). */
    ecsEndpoint: z.string().url().optional(),
    /** Cap on each catalog query, so a stuck server cannot hold the Lambda to its timeout. */
    statementTimeoutMs: z.number().int().min(100).max(60_000).default(5_000),
  })
  .strict();

export type MonitorConfigInput = z.input<typeof monitorConfigSchema>;

export interface MonitorConfig {
  sourceId: string;
  database: StreamerConfig['database'];
  tables: TableConfig[];
  slotName: string;
  publicationName: string;
  stateSchema: string;
  managePublication: boolean;
  heartbeat: boolean;
  bootstrapNewTables: boolean;
  recreateLostSlot: boolean;
  ecs?: { cluster: string; service: string };
  liveness: z.output<typeof livenessSchema>;
  region: string;
  secretsEndpoint?: string;
  ecsEndpoint?: string;
  statementTimeoutMs: number;
}

export const MONITOR_ENV = { config: 'PGRELAY_MONITOR_CONFIG', region: 'AWS_REGION' } as const;

/** Validate a config object; throws one ConfigError listing every problem. */
export function parseMonitorConfig(input: unknown, defaults: { region?: string } = {}): MonitorConfig {
  const result = monitorConfigSchema.safeParse(input);
  const problems = result.success ? [] : zodProblems(result.error);
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
    stateSchema: data.stateSchema,
    managePublication: data.managePublication,
    heartbeat: data.heartbeat,
    bootstrapNewTables: data.bootstrapNewTables,
    recreateLostSlot: data.recreateLostSlot,
    ...(data.ecs !== undefined ? { ecs: data.ecs } : {}),
    liveness: data.liveness,
    region: data.region ?? defaults.region ?? 'us-east-1',
    ...(data.secretsEndpoint !== undefined ? { secretsEndpoint: data.secretsEndpoint } : {}),
    ...(data.ecsEndpoint !== undefined ? { ecsEndpoint: data.ecsEndpoint } : {}),
    statementTimeoutMs: data.statementTimeoutMs,
  };
}

/** The monitor's config from its environment (one JSON document, set by the construct). */
export function parseMonitorEnv(env: Record<string, string | undefined>): MonitorConfig {
  const region = env[MONITOR_ENV.region];
  return parseMonitorConfig(jsonFromEnv(env, MONITOR_ENV.config), region !== undefined ? { region } : {});
}
