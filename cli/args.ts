/**
 * Arguments the operator commands share (doctor, status, bootstrap, slot drop): where the
 * database is and which slot/publication/tables pgrelay uses there. Any of these may come
 * from a config document (--config file, or PGRELAY_CONFIG) and be overridden by flags.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError } from '#core/errors.ts';
import { parseTableName, type TableName } from '#core/identifiers.ts';
import { DEFAULT_STATE_SCHEMA } from '#shared/source-state.ts';
import { ConnectionProvider, secretsManagerSource } from '#shared/connection.ts';

export interface OperatorTarget {
  connections: ConnectionProvider;
  slotName: string;
  publicationName: string;
  /** pgrelay's bookkeeping schema in the database (the config's stateSchema, default pgrelay). */
  stateSchema: string;
  /** Configured tables, when known (from --tables or the config). */
  tables: TableName[];
  json: boolean;
  yes: boolean;
  /** Positional arguments after the command. */
  positionals: string[];
}

/** One option of the operator commands: how parseArgs reads it and how --help shows it. */
interface OptionSpec {
  type: 'string' | 'boolean';
  /** The value's placeholder in the help, for a string option. */
  value?: string;
  help: string;
}

/** The options every operator command takes, written once for the parser and the help. */
export const OPERATOR_OPTIONS = {
  'database-url': { type: 'string', value: 'URL', help: 'postgres://user:pass@host:5432/db (or PGRELAY_DATABASE_URL)' },
  'secret-arn': { type: 'string', value: 'ARN', help: 'a Secrets Manager secret with username and password, used with:' },
  host: { type: 'string', value: 'HOST', help: '  the database host (with --secret-arn)' },
  port: { type: 'string', value: 'PORT', help: '  its port (default 5432)' },
  dbname: { type: 'string', value: 'NAME', help: '  the database name' },
  region: { type: 'string', value: 'REGION', help: "  the secret's region (default AWS_REGION)" },
  'ssl-mode': { type: 'string', value: 'MODE', help: 'disable | require | verify-ca | verify-full' },
  'ca-bundle': { type: 'string', value: 'FILE', help: 'the CA certificates for verify-ca and verify-full (PEM)' },
  config: { type: 'string', value: 'FILE', help: 'a pgrelay config document, as the streamer reads (or PGRELAY_CONFIG)' },
  slot: { type: 'string', value: 'NAME', help: 'the replication slot (default from the config: pgrelay_<sourceId>)' },
  publication: { type: 'string', value: 'NAME', help: 'the publication (default as the slot)' },
  tables: { type: 'string', value: 'a,b', help: 'the tables pgrelay streams (default from the config)' },
  json: { type: 'boolean', help: 'machine-readable output' },
  yes: { type: 'boolean', help: 'do not ask for confirmation' },
} as const satisfies Record<string, OptionSpec>;

/** Help lines for `options`, one per option: `  --name VALUE   text`. */
export function formatOptions(options: Readonly<Record<string, OptionSpec>>): string {
  return Object.entries(options)
    .map(([name, o]) => `  ${`--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`.padEnd(24)}  ${o.help}`)
    .join('\n');
}

export const OPERATOR_USAGE = `connection and target options:\n${formatOptions(OPERATOR_OPTIONS)}`;

export function parseOperatorArgs(argv: string[], env: Record<string, string | undefined>): OperatorTarget {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: Object.fromEntries(Object.entries(OPERATOR_OPTIONS).map(([name, o]) => [name, { type: o.type }])),
  }) as { values: Partial<Record<Exclude<keyof typeof OPERATOR_OPTIONS, 'json' | 'yes'>, string>> & { json?: boolean; yes?: boolean }; positionals: string[] };
  const problems: string[] = [];
  let doc: Record<string, unknown> = {};
  const text = values.config !== undefined ? readText(values.config, problems) : env.PGRELAY_CONFIG;
  if (text !== undefined) {
    try {
      doc = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      problems.push(`--config: not valid JSON (${(err as Error).message})`);
    }
  }
  const db = { ...((doc.database as Record<string, unknown>) ?? {}) };
  const url = values['database-url'] ?? env.PGRELAY_DATABASE_URL;
  if (url !== undefined) {
    db.url = url;
    delete db.secretArn;
  }
  if (values['secret-arn'] !== undefined) {
    db.secretArn = values['secret-arn'];
    delete db.url;
  }
  if (values.host !== undefined) db.host = values.host;
  if (values.port !== undefined) db.port = Number(values.port);
  if (values.dbname !== undefined) db.name = values.dbname;
  if (values['ssl-mode'] !== undefined) db.sslMode = values['ssl-mode'];
  if (values['ca-bundle'] !== undefined) db.caBundle = values['ca-bundle'];
  if (db.url === undefined && db.secretArn === undefined) problems.push('say where the database is: --database-url URL, or --secret-arn ARN with --host and --dbname');
  if (db.secretArn !== undefined && (db.host === undefined || db.name === undefined)) problems.push('--secret-arn needs --host and --dbname');
  const sourceId = typeof doc.sourceId === 'string' ? doc.sourceId : 'default';
  const defaultName = `pgrelay_${sourceId.replaceAll('-', '_')}`;
  const tables: TableName[] = [];
  // A config entry is a name, or an object with one in `table` (and the table's own settings).
  const entryName = (t: unknown) => String(typeof t === 'object' && t !== null && 'table' in t ? t.table : t);
  const tableList = values.tables !== undefined ? values.tables.split(',').map((t) => t.trim()).filter(Boolean) : Array.isArray(doc.tables) ? doc.tables.map(entryName) : [];
  for (const t of tableList) {
    const parsed = parseTableName(t);
    if (typeof parsed === 'string') problems.push(parsed);
    else tables.push(parsed);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const region = values.region ?? (typeof doc.region === 'string' ? doc.region : undefined) ?? env.AWS_REGION ?? 'us-east-1';
  const database = {
    port: 5432,
    connectTimeoutMs: 10_000,
    ...db,
  } as ConstructorParameters<typeof ConnectionProvider>[0];
  return {
    connections: new ConnectionProvider(database, database.secretArn ? secretsManagerSource(region) : undefined),
    slotName: values.slot ?? (typeof doc.slotName === 'string' ? doc.slotName : defaultName),
    publicationName: values.publication ?? (typeof doc.publicationName === 'string' ? doc.publicationName : defaultName),
    stateSchema: typeof doc.stateSchema === 'string' ? doc.stateSchema : DEFAULT_STATE_SCHEMA,
    tables,
    json: values.json ?? false,
    yes: values.yes ?? false,
    positionals,
  };
}

function readText(path: string, problems: string[]): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`--config: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return undefined;
  }
}
