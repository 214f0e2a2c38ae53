/**
 * pgrelay's configuration: one zod schema, parsed once at each entry point
 * (`parseStreamerEnv(process.env)`), also imported by the CDK construct. Every problem is
 * reported at once, each naming the setting it concerns.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { parseTableName, tableKey, type TableName } from './identifiers.ts';

export const KIB = 1024;
export const MIB = 1024 * KIB;
/** SQS's limit for one message and for one SendMessageBatch request (since 2025: 1 MiB). */
export const SQS_MAX_MESSAGE_BYTES = MIB;

const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

export const sslModes = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof sslModes)[number];

export const databaseSchema = z
  .object({
    /** A libpq-style URL (local runs, tests). Mutually exclusive with `secretArn`. */
    url: z.string().optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).default(5432),
    name: z.string().min(1).optional(),
    /**
     * Secrets Manager secret (RDS format: username, password, and optionally host, port,
     * dbname). Re-read whenever PostgreSQL rejects the password, so rotation just works.
     */
    secretArn: z.string().regex(/^arn:aws[a-z-]*:secretsmanager:/, 'must be a Secrets Manager secret ARN').optional(),
    /** `verify-full` checks the certificate chain and the host name against `caBundle`. */
    sslMode: z.enum(sslModes).optional(),
    /** PEM text of the CA bundle, or a path to a PEM file. */
    caBundle: z.string().optional(),
    connectTimeoutMs: z.number().int().positive().default(10_000),
  })
  .strict();

const batchSchema = z
  .object({
    /** Bytes of one SQS message body. @default 256 KiB, at most 1 MiB. */
    maxBytes: z.number().int().min(4 * KIB).max(SQS_MAX_MESSAGE_BYTES).default(256 * KIB),
    /** Changes in one SQS message. */
    maxChanges: z.number().int().min(1).max(100_000).default(5_000),
    /** How long a partly filled message may wait for more changes. */
    lingerMs: z.number().int().min(0).max(60_000).default(50),
  })
  .strict();

/** Prefixes of pgrelay's own logical messages (heartbeat, gap notice, bootstrap marks): never delivered. */
export const RESERVED_MESSAGE_PREFIX = 'pgrelay.';

/**
 * Logical decoding messages to deliver (`pg_logical_emit_message(transactional, prefix,
 * content)`, e.g. a transactional outbox without a table), by exact prefix. Shared with the
 * CDK construct's props.
 */
export const messagesSchema = z
  .object({
    prefixes: z
      .array(
        z
          .string()
          .min(1, 'a prefix is at least one character')
          .refine((p) => !p.startsWith(RESERVED_MESSAGE_PREFIX), `prefixes starting with "${RESERVED_MESSAGE_PREFIX}" are pgrelay's own`),
      )
      .refine((list) => new Set(list).size === list.length, 'a prefix is listed twice')
      .default([]),
  })
  .strict();

/**
 * One streamed table: `schema.table` (a bare name means `public`), or an object with that name
 * and the table's own settings. The construct's props take the same entries.
 */
export const tableEntrySchema = z.preprocess(
  (entry) => (typeof entry === 'string' ? { table: entry } : entry),
  z
    .object({
      table: z.string({ error: 'a table name (schema.table), or an object with one in "table"' }),
      /**
       * `auto`: the monitor requests the table's initial load (every existing row as a snapshot
       * event) when it was never loaded; `off`: only `pgrelay bootstrap` or a gap repair loads it.
       * @default 'auto'
       */
      bootstrap: z.enum(['auto', 'off']).default('auto'),
    })
    .strict(),
);

/** What a `tables` entry may be in the config document and the construct's props. */
export type TableEntryInput = string | { table: string; bootstrap?: 'auto' | 'off' };

/** A configured table, parsed: its name and its settings with defaults applied. */
export interface TableConfig extends TableName {
  bootstrap: 'auto' | 'off';
}

/** Bootstrap (initial loads) in the streamer: how it reads, and how gently. */
const bootstrapSchema = z
  .object({
    /** How often the streamer looks for load requests in the state schema. */
    pollIntervalMs: z.number().int().min(100).max(600_000).default(5_000),
    /** Tables loaded at once. */
    concurrency: z.number().int().min(1).max(16).default(1),
    /** Rows of the first chunk; the size grows while a chunk reads within `chunkTargetMs`. */
    chunkMinRows: z.number().int().min(1).max(1_000_000).default(1_000),
    chunkMaxRows: z.number().int().min(1).max(1_000_000).default(50_000),
    /** A chunk stops growing once its rows hold this many bytes of PostgreSQL text (2 MiB: the chunk is emitted at once at its mark, so smaller chunks keep live changes quick). */
    chunkMaxBytes: z.number().int().min(64 * KIB).max(256 * MIB).default(2 * MIB),
    /** How long reading one chunk may take before the next one is made smaller. */
    chunkTargetMs: z.number().int().min(10).max(60_000).default(250),
    /** Reading waits while the slot's unconfirmed WAL exceeds this (live changes first). */
    maxLagBytes: z.number().int().min(MIB).default(64 * MIB),
  })
  .strict();

export const streamerConfigSchema = z
  .object({
    /** Names this source in logs, metrics and (later) event sources. */
    sourceId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lower-case letters, digits and -, at most 40').default('default'),
    database: databaseSchema,
    /** Tables to stream, `schema.table` (a bare name means `public`). */
    tables: z.array(tableEntrySchema).min(1, 'list at least one table'),
    /** Key columns for tables without a primary key or replica identity index. */
    tableKeys: z.record(z.string(), z.array(z.string().min(1)).min(1)).default({}),
    slotName: z.string().regex(SLOT_NAME, 'lower-case letters, digits and _, at most 63').optional(),
    publicationName: z.string().min(1).max(63).optional(),
    bootstrap: bootstrapSchema.default(bootstrapSchema.parse({})),
    /** Logical messages to deliver as `message` changes (PostgreSQL 14+). @default { prefixes: [] }: none */
    messages: messagesSchema.default({ prefixes: [] }),
    /** Create the publication, or add missing tables to it, when privileges allow. */
    managePublication: z.boolean().default(true),
    /**
     * Schema of pgrelay's bookkeeping tables in the source database (slot watch, bootstrap
     * requests); the monitor creates it. The streamer only reads it.
     */
    stateSchema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case identifier: letters, digits and _, at most 63').default('pgrelay'),
    queueUrl: z.string().url().refine((u) => u.endsWith('.fifo'), 'must be a FIFO queue (its URL ends in .fifo)'),
    /** SQS endpoint override (local emulator). */
    sqsEndpoint: z.string().url().optional(),
    /** S3 endpoint override (local emulator; path-style addressing is used with it). */
    s3Endpoint: z.string().url().optional(),
    /**
     * Where changes too large for one SQS message go (claim check). Without it, such a
     * change stops the streamer with CHANGE_TOO_LARGE and nothing is acknowledged.
     */
    largePayloads: z
      .object({
        bucket: z.string().min(3).max(63),
        /** Key prefix; the role may be limited to it. */
        prefix: z.string().default('pgrelay/'),
      })
      .strict()
      .optional(),
    region: z.string().default('us-east-1'),
    /** Secrets Manager endpoint override (tests). */
    secretsEndpoint: z.string().url().optional(),
    /** FIFO message groups; a node always maps to the same one. */
    partitions: z.number().int().min(1).max(4096).default(16),
    batch: batchSchema.default(batchSchema.parse({})),
    /** Reading pauses while this many bytes wait for SQS. */
    maxInFlightBytes: z.number().int().min(MIB).max(1024 * MIB).default(16 * MIB),
    /**
     * SendMessageBatch requests in flight at once. With one message in flight per partition
     * and up to four 256 KiB messages a request, 4 requests keep 16 partitions busy.
     */
    maxConcurrentSends: z.number().int().min(1).max(64).default(4),
    /** How often the acknowledged position is reported to PostgreSQL. */
    statusIntervalMs: z.number().int().min(100).max(30_000).default(1_000),
    /** SIGTERM: time to flush and acknowledge before exiting (ECS default stop timeout is 30 s). */
    shutdownTimeoutMs: z.number().int().min(1_000).max(120_000).default(25_000),
    metricsIntervalMs: z.number().int().min(1_000).default(60_000),
    reconnect: z
      .object({
        initialDelayMs: z.number().int().min(10).default(500),
        maxDelayMs: z.number().int().min(100).default(30_000),
      })
      .strict()
      .default({ initialDelayMs: 500, maxDelayMs: 30_000 }),
  })
  .strict();

export type StreamerConfigInput = z.input<typeof streamerConfigSchema>;

export interface StreamerConfig extends Omit<z.output<typeof streamerConfigSchema>, 'tables' | 'tableKeys' | 'slotName' | 'publicationName'> {
  tables: TableConfig[];
  /** Keyed by `schema.table`. */
  tableKeys: Map<string, string[]>;
  slotName: string;
  publicationName: string;
}

/**
 * A failed zod parse as the problem list says it, one line per issue, each named by its
 * setting (`batch.maxBytes: …`), under `prefix` when the schema is part of a larger document.
 */
export function zodProblems(error: z.ZodError, prefix = ''): string[] {
  return error.issues.map((issue) => `${prefix}${issuePath(issue.path)}: ${issue.message}`);
}

/** A zod issue's path as the problem list names it (`batch.maxBytes`). */
function issuePath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(config)' : path.map(String).join('.');
}

/** `tables`: each entry's name parsed, none twice, settings defaulted; problems pushed by index. */
export function parseTableList(value: unknown, problems: string[]): TableConfig[] {
  const tables: TableConfig[] = [];
  const seen = new Set<string>();
  if (!Array.isArray(value)) return tables;
  value.forEach((entry, i) => {
    const checked = tableEntrySchema.safeParse(entry);
    if (!checked.success) return; // the schema's own issues name it
    const e = checked.data;
    const parsed = parseTableName(e.table);
    const at = typeof entry === 'string' ? `tables.${i}` : `tables.${i}.table`;
    if (typeof parsed === 'string') problems.push(`${at}: ${parsed}`);
    else if (seen.has(tableKey(parsed))) problems.push(`${at}: ${tableKey(parsed)} is listed twice`);
    else {
      seen.add(tableKey(parsed));
      tables.push({ ...parsed, bootstrap: e.bootstrap });
    }
  });
  return tables;
}

/** `database`: a URL, or host + name + secretArn; a verifying sslMode needs a CA bundle. */
export function databaseProblems(db: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const hasUrl = typeof db.url === 'string';
  if (hasUrl && (db.host !== undefined || db.secretArn !== undefined)) {
    problems.push('database: give either url, or host + name + secretArn, not both');
  } else if (!hasUrl) {
    if (db.host === undefined) problems.push('database.host: required when database.url is not given');
    if (db.name === undefined) problems.push('database.name: required when database.url is not given');
    if (db.secretArn === undefined) problems.push('database.secretArn: required when database.url is not given');
  } else {
    try {
      const u = new URL(db.url as string);
      if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') problems.push('database.url: must start with postgres:// or postgresql://');
    } catch {
      problems.push('database.url: not a valid URL');
    }
  }
  if ((db.sslMode === 'verify-ca' || db.sslMode === 'verify-full') && db.caBundle === undefined) {
    problems.push(`database.caBundle: required with sslMode ${String(db.sslMode)} (PEM text or a file path)`);
  }
  return problems;
}

/** Validate a config object; throws one ConfigError listing every problem. */
export function parseStreamerConfig(input: unknown): StreamerConfig {
  const result = streamerConfigSchema.safeParse(input);
  const problems: string[] = [];
  if (!result.success) {
    problems.push(...zodProblems(result.error));
  }
  // Cross-field checks run even when the schema failed elsewhere, so one run lists everything.
  const raw = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  const tables = parseTableList(raw.tables, problems);
  const seen = new Set(tables.map(tableKey));
  const tableKeys = new Map<string, string[]>();
  if (raw.tableKeys && typeof raw.tableKeys === 'object') {
    for (const [name, cols] of Object.entries(raw.tableKeys as Record<string, unknown>)) {
      const parsed = parseTableName(name);
      if (typeof parsed === 'string') problems.push(`tableKeys.${name}: ${parsed}`);
      else if (!seen.has(tableKey(parsed))) problems.push(`tableKeys.${name}: ${tableKey(parsed)} is not in tables`);
      else if (Array.isArray(cols)) tableKeys.set(tableKey(parsed), cols.map(String));
    }
  }
  if (typeof raw.database === 'object' && raw.database !== null) problems.push(...databaseProblems(raw.database as Record<string, unknown>));
  if (result.success) {
    const b = result.data.batch;
    if (result.data.maxInFlightBytes < 2 * b.maxBytes) problems.push('maxInFlightBytes: must be at least twice batch.maxBytes');
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  const data = result.data;
  return {
    ...data,
    tables,
    tableKeys,
    slotName: data.slotName ?? `pgrelay_${data.sourceId.replaceAll('-', '_')}`,
    publicationName: data.publicationName ?? `pgrelay_${data.sourceId.replaceAll('-', '_')}`,
  };
}

/** Environment variable names the streamer reads (the CDK construct sets them). */
export const ENV = {
  config: 'PGRELAY_CONFIG',
  configFile: 'PGRELAY_CONFIG_FILE',
  databaseUrl: 'PGRELAY_DATABASE_URL',
  queueUrl: 'PGRELAY_QUEUE_URL',
  tables: 'PGRELAY_TABLES',
  sqsEndpoint: 'PGRELAY_SQS_ENDPOINT',
  region: 'AWS_REGION',
} as const;

/**
 * Build the config from the environment: a JSON document (PGRELAY_CONFIG, or the file named
 * by PGRELAY_CONFIG_FILE) with single settings layered on top by their own variables.
 */
export function parseStreamerEnv(env: Record<string, string | undefined>): StreamerConfig {
  let doc: Record<string, unknown> = {};
  const problems: string[] = [];
  const text = env[ENV.config] ?? (env[ENV.configFile] ? readConfigFile(env[ENV.configFile] as string, problems) : undefined);
  if (text !== undefined) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) problems.push(`${ENV.config}: must be a JSON object`);
      else doc = parsed as Record<string, unknown>;
    } catch (err) {
      problems.push(`${env[ENV.config] !== undefined ? ENV.config : ENV.configFile}: not valid JSON (${(err as Error).message})`);
    }
  }
  if (env[ENV.databaseUrl]) doc.database = { ...((doc.database as object) ?? {}), url: env[ENV.databaseUrl] };
  if (env[ENV.queueUrl]) doc.queueUrl = env[ENV.queueUrl];
  if (env[ENV.tables]) doc.tables = (env[ENV.tables] as string).split(',').map((t) => t.trim()).filter(Boolean);
  if (env[ENV.sqsEndpoint]) doc.sqsEndpoint = env[ENV.sqsEndpoint];
  if (env[ENV.region] && doc.region === undefined) doc.region = env[ENV.region];
  try {
    const config = parseStreamerConfig(doc);
    if (problems.length > 0) throw new ConfigError(problems);
    return config;
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError([...problems, ...err.problems]);
    throw err;
  }
}

function readConfigFile(path: string, problems: string[]): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`${ENV.configFile}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// The transform Lambda

const labelList = z.array(z.string().min(1)).min(1).optional();

export const transformConfigSchema = z
  .object({
    sourceId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lower-case letters, digits and -, at most 40').default('default'),
    /** The streamed tables (as for the streamer): labels are table names, schema-qualified only where two share a name. */
    tables: z.array(tableEntrySchema).min(1, 'list at least one table'),
    outputs: z
      .object({
        /** EventBridge bus: Source `pgrelay.<sourceId>`, DetailType the event type. */
        eventBridge: z.object({ busName: z.string().min(1), labels: labelList }).strict().optional(),
        /** SQS FIFO queue of node events: message group n{p} carries the events of changes partition p. */
        nodesQueue: z
          .object({
            queueUrl: z.string().url().refine((u) => u.endsWith('.fifo'), 'must be a FIFO queue (its URL ends in .fifo)'),
            labels: labelList,
          })
          .strict()
          .optional(),
      })
      .strict()
      .refine((o) => o.eventBridge !== undefined || o.nodesQueue !== undefined, 'configure eventBridge, nodesQueue or both'),
    /** Claim checks: events too large for a channel are stored here (and changes read from here). */
    largePayloads: z.object({ bucket: z.string().min(3).max(63), prefix: z.string().default('pgrelay/') }).strict().optional(),
    region: z.string().default('us-east-1'),
    sqsEndpoint: z.string().url().optional(),
    s3Endpoint: z.string().url().optional(),
    eventBridgeEndpoint: z.string().url().optional(),
  })
  .strict();

export type TransformConfigInput = z.input<typeof transformConfigSchema>;
export interface TransformConfig extends Omit<z.output<typeof transformConfigSchema>, 'tables'> {
  tables: TableConfig[];
}

export function parseTransformConfig(input: unknown): TransformConfig {
  const result = transformConfigSchema.safeParse(input);
  const problems: string[] = result.success ? [] : zodProblems(result.error);
  const raw = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  const tables = parseTableList(raw.tables, problems);
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return { ...result.data, tables };
}

export const TRANSFORM_ENV = { config: 'PGRELAY_TRANSFORM_CONFIG' } as const;

/** The transform's config from its environment (one JSON document, set by the construct). */
export function parseTransformEnv(env: Record<string, string | undefined>): TransformConfig {
  return parseTransformConfig(jsonFromEnv(env, TRANSFORM_ENV.config));
}

/** The JSON document a Lambda's config variable holds; a ConfigError when it is missing or not JSON. */
export function jsonFromEnv(env: Record<string, string | undefined>, name: string): unknown {
  const text = env[name];
  if (text === undefined) throw new ConfigError([`${name}: not set`]);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`${name}: not valid JSON (${(err as Error).message})`]);
  }
}
