/**
 * PgRelay's props and their validation at synth time: every problem listed at once, by prop
 * path, the way the streamer's config is checked at start (aws-solutions-constructs'
 * Check*Props habit). Names and table lists are checked with the same parsers the
 * running code uses, so a deploy never ships a config the streamer would refuse.
 */
import { Token, type Duration } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as events from 'aws-cdk-lib/aws-events';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { messagesSchema, tableEntrySchema, zodProblems, type TableEntryInput } from '#core/config.ts';
import { parseTableName, tableKey } from '#core/identifiers.ts';

/** Where one source database is and how to log in. */
export interface PgRelayDatabase {
  /** Host name of the primary (RDS/Aurora: the instance or cluster writer endpoint). */
  readonly host: string;
  /**
   * Port.
   * @default 5432
   */
  readonly port?: number;
  /** Database name. */
  readonly name: string;
  /**
   * Secrets Manager secret holding `username` and `password` (the RDS secret format). The
   * streamer and monitor read it at start and again when PostgreSQL rejects the password.
   */
  readonly secret: secretsmanager.ISecret;
  /**
   * The database's security group. When given, an ingress rule on the port is added for
   * pgrelay's security group; otherwise allow `relay.securityGroup` yourself.
   * @default - no rule is added
   */
  readonly securityGroup?: ec2.ISecurityGroup;
  /**
   * TLS mode: `require` (encrypted), `verify-full` (chain and host name checked against
   * `caBundle`), `verify-ca`, or `disable`.
   * @default 'require'
   */
  readonly sslMode?: 'disable' | 'require' | 'verify-ca' | 'verify-full';
  /**
   * PEM text of the CA bundle for `verify-ca`/`verify-full` (for RDS: the AWS RDS global bundle).
   * @default - none
   */
  readonly caBundle?: string;
}

/** One database streamed by pgrelay: its own slot, streamer task, queues and functions. */
export interface PgRelaySourceProps {
  /**
   * Names the source in event sources (`pgrelay.<sourceId>`), metrics and the default slot and
   * publication names. Lower-case letters, digits and `-`, at most 40.
   * @default 'default'
   */
  readonly sourceId?: string;
  readonly database: PgRelayDatabase;
  /**
   * Tables to stream: `schema.table` (a bare name means `public`), or `{ table, bootstrap }`
   * where `bootstrap: 'off'` keeps the monitor from requesting the table's initial load.
   */
  readonly tables: TableEntryInput[];
  /**
   * Key columns for tables without a primary key (they need REPLICA IDENTITY FULL).
   * @default {}
   */
  readonly tableKeys?: Record<string, string[]>;
  /**
   * Logical decoding messages to deliver (`pg_logical_emit_message`), by exact prefix, as
   * `message.emitted` events. Prefixes starting with `pgrelay.` are pgrelay's own.
   * @default - none
   */
  readonly messages?: PgRelayMessages;
  /**
   * Replication slot name.
   * @default `pgrelay_<sourceId>` with `-` as `_`
   */
  readonly slotName?: string;
  /**
   * Publication name.
   * @default `pgrelay_<sourceId>` with `-` as `_`
   */
  readonly publicationName?: string;
}

/** Which logical decoding messages a source delivers. */
export interface PgRelayMessages {
  /** Exact prefixes, e.g. `['outbox']`. */
  readonly prefixes: string[];
}

/** Where graph node events go. */
export interface PgRelayOutputs {
  /**
   * EventBridge: `true` creates a bus, or pass your own bus.
   * @default true
   */
  readonly eventBridge?: boolean | { readonly bus: events.IEventBus };
  /**
   * A FIFO queue of node events (all sources; each event names its `source`), for ordered
   * consumers: `true` creates one with a dead-letter queue, or pass your own FIFO queue.
   * @default true
   */
  readonly nodesQueue?: boolean | { readonly queue: sqs.IQueue };
}

/** Alarm thresholds; every alarm notifies `topic` when given. */
export interface PgRelayAlarms {
  /**
   * WAL written since the streamer's last acknowledgement, in bytes, held for 5 minutes.
   * @default 1073741824 (1 GiB)
   */
  readonly slotLagBytes?: number;
  /**
   * Seconds with no streamer connected to the slot.
   * @default 600
   */
  readonly slotInactiveSeconds?: number;
  /**
   * Seconds the acknowledged position has not moved (the monitor writes a heartbeat every
   * minute, so a healthy streamer stays near 0).
   * @default 900
   */
  readonly slotAckAgeSeconds?: number;
  /**
   * SNS topic for alarm and OK notifications.
   * @default - alarms without actions
   */
  readonly topic?: sns.ITopic;
}

/** The monitor Lambda (slot guardian). */
export interface PgRelayMonitorProps {
  /**
   * Recreate an invalidated or dropped slot and request a gap-marked re-read of every table.
   * Off, the monitor alarms and the streamer refuses to start until an operator decides.
   * @default false
   */
  readonly recreateLostSlot?: boolean;
  /**
   * Write a heartbeat into the WAL every run, so a slot whose tables are quiet still advances.
   * @default true
   */
  readonly heartbeat?: boolean;
  /**
   * Request the initial load of configured tables never loaded.
   * @default true
   */
  readonly bootstrapNewTables?: boolean;
  /**
   * When the monitor stops a stuck streamer task (seconds).
   * @default { inactiveSeconds: 300, stalledSeconds: 600, cooldownSeconds: 900 }
   */
  readonly liveness?: { readonly inactiveSeconds?: number; readonly stalledSeconds?: number; readonly cooldownSeconds?: number };
}

/** The streamer task. */
export interface PgRelayStreamerProps {
  /**
   * Fargate CPU units.
   * @default 512
   */
  readonly cpu?: number;
  /**
   * Fargate memory (MiB); must be a size Fargate offers for `cpu`.
   * @default 1024 for 512 CPU units, otherwise twice the CPU units
   */
  readonly memoryLimitMiB?: number;
  /**
   * FIFO message groups of the changes and nodes queues.
   * @default 16
   */
  readonly partitions?: number;
}

export interface PgRelayProps {
  /** The VPC the streamer task and the monitor Lambda run in (they need a route to the database and to AWS APIs). */
  readonly vpc: ec2.IVpc;
  /**
   * Subnets for the streamer task and the monitor Lambda.
   * @default - the VPC's private subnets with egress
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * The database of a single-source relay. Give either `database` + `tables` or `sources`.
   * @default - none: `sources` must be given
   */
  readonly database?: PgRelayDatabase;
  /**
   * Tables of a single-source relay.
   * @default - none: `sources` must be given
   */
  readonly tables?: TableEntryInput[];
  /**
   * Source id of a single-source relay.
   * @default 'default'
   */
  readonly sourceId?: string;
  /**
   * Key columns of a single-source relay's tables without a primary key.
   * @default {}
   */
  readonly tableKeys?: Record<string, string[]>;
  /**
   * Logical decoding messages of a single-source relay to deliver, by prefix.
   * @default - none
   */
  readonly messages?: PgRelayMessages;
  /**
   * Several databases in one relay, each with its own slot, streamer and queues.
   * @default - one source from `database` and `tables`
   */
  readonly sources?: PgRelaySourceProps[];
  /** @default { eventBridge: true, nodesQueue: true } */
  readonly outputs?: PgRelayOutputs;
  /** @default - the defaults of each threshold, no notification topic */
  readonly alarms?: PgRelayAlarms;
  /** @default - the defaults of each setting */
  readonly monitor?: PgRelayMonitorProps;
  /** @default - the defaults of each setting */
  readonly streamer?: PgRelayStreamerProps;
  /**
   * A bucket for the payload bucket's server access logs.
   * @default - no access logs (payloads are short-lived claim checks; use CloudTrail data events to audit reads)
   */
  readonly accessLogsBucket?: s3.IBucket;
  /**
   * How long the task's and functions' logs are kept.
   * @default one month
   */
  readonly logRetention?: Duration;
}

/** A source with every default applied. */
export interface ResolvedSource {
  sourceId: string;
  database: PgRelayDatabase & { port: number; sslMode: NonNullable<PgRelayDatabase['sslMode']> };
  tables: TableEntryInput[];
  tableKeys: Record<string, string[]>;
  messages: PgRelayMessages;
  slotName: string;
  publicationName: string;
}

/**
 * Which slot a source streams from: equal strings, the same slot. A host given as a token
 * compares as its placeholder, so the same token (one database's endpoint) matches itself.
 */
export function slotIdentity(s: { database: { host: string; port: number; name: string }; slotName: string }): string {
  return `${s.database.host}:${s.database.port}/${s.database.name}/${s.slotName}`;
}

const SOURCE_ID = /^[a-z0-9][a-z0-9-]{0,39}$/;

const range = (from: number, to: number) => Array.from({ length: (to - from) / 1024 + 1 }, (_, i) => from + i * 1024);
/** The CPU/memory pairs Fargate accepts for Linux tasks (MiB). */
const FARGATE_MEMORY: Record<number, number[]> = {
  256: [512, 1024, 2048],
  512: range(1024, 4096),
  1024: range(2048, 8192),
  2048: range(4096, 16_384),
  4096: range(8192, 30_720),
};

/** Memory when only CPU is given: 1 GiB for the default 512 units, else twice the units. */
export function defaultStreamerMemory(cpu: number): number {
  return Math.max(1024, cpu * 2);
}
const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

function derivedName(sourceId: string): string {
  return `pgrelay_${sourceId.replaceAll('-', '_')}`;
}

/** A concrete number check that lets CDK tokens through (they resolve at deploy). */
function checkRange(problems: string[], path: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) problems.push(`${path}: must be an integer from ${min} to ${max}, got ${value}`);
}

/** Validates the props; throws one Error listing every problem. Returns the sources with defaults applied. */
export function validatePgRelayProps(props: PgRelayProps): ResolvedSource[] {
  const problems: string[] = [];
  const single = props.database !== undefined || props.tables !== undefined;
  if (single && props.sources !== undefined) problems.push('give either database + tables (one source) or sources (several), not both');
  if (!single && (props.sources === undefined || props.sources.length === 0)) problems.push('database and tables: required (or sources, for several databases)');
  if (props.vpc === undefined) problems.push('vpc: required (the streamer and the monitor run in it)');

  if (!single && props.sources !== undefined) {
    if (props.sourceId !== undefined) problems.push('sourceId: belongs in each of sources[]; with sources the top-level sourceId is not used');
    if (props.tableKeys !== undefined) problems.push('tableKeys: belongs in each of sources[]; with sources the top-level tableKeys is not used');
    if (props.messages !== undefined) problems.push('messages: belongs in each of sources[]; with sources the top-level messages is not used');
  }

  // Both forms given: check both, so the one error lists everything wrong in either.
  const raw: { path: string; source: Partial<PgRelaySourceProps> }[] = [
    ...(single ? [{ path: '', source: { sourceId: props.sourceId, database: props.database as PgRelayDatabase, tables: props.tables as TableEntryInput[], ...(props.tableKeys ? { tableKeys: props.tableKeys } : {}), ...(props.messages ? { messages: props.messages } : {}) } }] : []),
    ...(props.sources ?? []).map((source, i) => ({ path: `sources[${i}].`, source })),
  ];

  const resolved: ResolvedSource[] = [];
  const seenIds = new Map<string, string>();
  const seenSlots = new Map<string, string>();
  for (const { path, source } of raw) {
    const sourceId = source.sourceId ?? 'default';
    if (!SOURCE_ID.test(sourceId)) problems.push(`${path}sourceId: "${sourceId}" must be lower-case letters, digits and -, at most 40`);
    if (seenIds.has(sourceId)) problems.push(`${path}sourceId: "${sourceId}" is used by ${seenIds.get(sourceId)} too; each source needs its own`);
    seenIds.set(sourceId, `${path || 'the relay'}`.replace(/\.$/, ''));
    const db = source.database;
    if (db === undefined) {
      problems.push(`${path}database: required`);
    } else {
      if (typeof db.host !== 'string' || (!Token.isUnresolved(db.host) && db.host.trim() === '')) problems.push(`${path}database.host: required`);
      if (typeof db.name !== 'string' || (!Token.isUnresolved(db.name) && db.name.trim() === '')) problems.push(`${path}database.name: required`);
      if (db.secret === undefined) problems.push(`${path}database.secret: required (a Secrets Manager secret with username and password)`);
      checkRange(problems, `${path}database.port`, db.port, 1, 65535);
      if ((db.sslMode === 'verify-ca' || db.sslMode === 'verify-full') && db.caBundle === undefined) problems.push(`${path}database.caBundle: required with sslMode ${db.sslMode}`);
    }
    const tables = source.tables ?? [];
    if (!Array.isArray(source.tables) || tables.length === 0) problems.push(`${path}tables: list at least one table (schema.table)`);
    const keys = new Map<string, number>();
    for (const [i, t] of tables.entries()) {
      // The streamer's own entry schema: what synth accepts, the task accepts.
      const entry = tableEntrySchema.safeParse(t);
      if (!entry.success) {
        problems.push(...zodProblems(entry.error, `${path}tables[${i}].`));
        continue;
      }
      const parsed = parseTableName(entry.data.table);
      if (typeof parsed === 'string') {
        problems.push(`${path}tables[${i}]: ${parsed}`);
        continue;
      }
      const key = tableKey(parsed);
      // The streamer and the monitor refuse a table named twice; say so before a task crash-loops on it.
      if (keys.has(key)) problems.push(`${path}tables[${i}]: ${key} is listed twice (also tables[${keys.get(key)}])`);
      else keys.set(key, i);
    }
    for (const [name, columns] of Object.entries(source.tableKeys ?? {})) {
      const parsed = parseTableName(name);
      if (typeof parsed === 'string') problems.push(`${path}tableKeys.${name}: ${parsed}`);
      else if (!keys.has(tableKey(parsed))) problems.push(`${path}tableKeys.${name}: not in tables`);
      if (!Array.isArray(columns) || columns.length === 0 || columns.some((c) => typeof c !== 'string' || c.length === 0)) {
        problems.push(`${path}tableKeys.${name}: list one or more key column names`);
      }
    }
    const messages = messagesSchema.safeParse(source.messages ?? { prefixes: [] });
    if (!messages.success) problems.push(...zodProblems(messages.error, `${path}messages.`));
    const slotName = source.slotName ?? derivedName(sourceId);
    if (!SLOT_NAME.test(slotName)) problems.push(`${path}slotName: "${slotName}" must be lower-case letters, digits and _, at most 63`);
    const key = db === undefined ? undefined : slotIdentity({ database: { ...db, port: db.port ?? 5432 }, slotName });
    if (key !== undefined && seenSlots.has(key)) problems.push(`${path}slotName: ${slotName} on the same database is used by ${seenSlots.get(key)}; two streamers cannot share a slot`);
    if (key !== undefined) seenSlots.set(key, path.replace(/\.$/, '') || 'the relay');
    const publicationName = source.publicationName ?? derivedName(sourceId);
    if (publicationName.length === 0 || publicationName.length > 63) problems.push(`${path}publicationName: 1 to 63 characters`);
    if (db !== undefined) {
      resolved.push({
        sourceId,
        database: { ...db, port: db.port ?? 5432, sslMode: db.sslMode ?? 'require' },
        tables,
        tableKeys: source.tableKeys ?? {},
        messages: { prefixes: messages.data?.prefixes ?? [] },
        slotName,
        publicationName,
      });
    }
  }

  const outputs = props.outputs ?? {};
  if (outputs.eventBridge === false && outputs.nodesQueue === false) problems.push('outputs: enable eventBridge, nodesQueue or both (events need somewhere to go)');
  if (typeof outputs.eventBridge === 'object' && outputs.eventBridge.bus === undefined) problems.push('outputs.eventBridge.bus: required when eventBridge is an object');
  if (typeof outputs.nodesQueue === 'object') {
    if (outputs.nodesQueue.queue === undefined) problems.push('outputs.nodesQueue.queue: required when nodesQueue is an object');
    else {
      const fifo = fifoProblem('outputs.nodesQueue.queue', outputs.nodesQueue.queue);
      if (fifo !== undefined) problems.push(fifo);
    }
  }

  const alarms = props.alarms ?? {};
  checkRange(problems, 'alarms.slotLagBytes', alarms.slotLagBytes, 1, Number.MAX_SAFE_INTEGER);
  checkRange(problems, 'alarms.slotInactiveSeconds', alarms.slotInactiveSeconds, 60, 86_400);
  checkRange(problems, 'alarms.slotAckAgeSeconds', alarms.slotAckAgeSeconds, 60, 86_400);
  const liveness = props.monitor?.liveness ?? {};
  checkRange(problems, 'monitor.liveness.inactiveSeconds', liveness.inactiveSeconds, 60, 86_400);
  checkRange(problems, 'monitor.liveness.stalledSeconds', liveness.stalledSeconds, 60, 86_400);
  checkRange(problems, 'monitor.liveness.cooldownSeconds', liveness.cooldownSeconds, 60, 86_400);
  const streamer = props.streamer ?? {};
  const cpu = streamer.cpu ?? 512;
  const memory = streamer.memoryLimitMiB ?? defaultStreamerMemory(cpu);
  const sizes = FARGATE_MEMORY[cpu];
  if (sizes === undefined) problems.push(`streamer.cpu: one of ${Object.keys(FARGATE_MEMORY).join(', ')} (Fargate), got ${cpu}`);
  else if (!sizes.includes(memory)) {
    problems.push(`streamer.memoryLimitMiB: ${memory} MiB is not a Fargate size for ${cpu} CPU units; use one of ${sizes[0]}–${sizes[sizes.length - 1]} (${sizes.length > 3 ? 'in 1024 MiB steps' : sizes.join(', ')})`);
  }
  checkRange(problems, 'streamer.partitions', streamer.partitions, 1, 4096);

  if (problems.length > 0) throw new Error(`invalid PgRelay props:\n  - ${problems.join('\n  - ')}`);
  return resolved;
}

/** A queue given where pgrelay needs FIFO order: say so at synth rather than fail at deploy. */
export function fifoProblem(path: string, queue: sqs.IQueue): string | undefined {
  return queue.fifo ? undefined : `${path}: ${queue.node.path} is a standard queue; pgrelay needs a FIFO queue (its name ends in .fifo) to keep each node's order`;
}
