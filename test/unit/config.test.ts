import { describe, expect, it } from 'vitest';
import { parseStreamerConfig, parseStreamerEnv } from '#core/config.ts';
import { ConfigError } from '#core/errors.ts';
import { parseTableName } from '#core/identifiers.ts';

const valid = {
  database: { url: 'postgres://u:p@localhost:5432/app' },
  tables: ['orders', 'sales.Customers', '"Sales"."Line Items"'],
  queueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/changes.fifo',
};

function problemsOf(input: unknown): string[] {
  try {
    parseStreamerConfig(input);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('applies defaults and parses table names the way PostgreSQL folds them', () => {
    const c = parseStreamerConfig(valid);
    expect(c.tables).toEqual([
      { schema: 'public', table: 'orders', bootstrap: 'auto' },
      { schema: 'sales', table: 'customers', bootstrap: 'auto' },
      { schema: 'Sales', table: 'Line Items', bootstrap: 'auto' },
    ]);
    expect(c.slotName).toBe('pgrelay_default');
    expect(c.publicationName).toBe('pgrelay_default');
    expect(c.partitions).toBe(16);
    expect(c.batch).toEqual({ maxBytes: 256 * 1024, maxChanges: 5000, lingerMs: 50 });
  });

  it('a table entry is a name or an object with its settings; bootstrap is auto unless off; a bad entry is named', () => {
    const c = parseStreamerConfig({ ...valid, tables: ['orders', { table: 'sales.customers', bootstrap: 'off' }, { table: 'audit' }] });
    expect(c.tables.map((t) => [t.schema, t.table, t.bootstrap])).toEqual([
      ['public', 'orders', 'auto'],
      ['sales', 'customers', 'off'],
      ['public', 'audit', 'auto'],
    ]);
    expect(c.bootstrap).toMatchObject({ concurrency: 1, chunkMinRows: 1000, pollIntervalMs: 5000 });
    const problems = problemsOf({ ...valid, tables: [{ table: 'x', bootstrap: 'sometimes' }, { name: 'y' }, { table: 'bad name' }, 'orders', { table: 'public.orders' }] });
    expect(problems.join('\n')).toMatch(/tables\.0\.bootstrap/);
    expect(problems.join('\n')).toMatch(/tables\.1/);
    expect(problems).toContain('tables.2.table: "bad name" is not a valid table name: use schema.table with letters, digits, _ and $, or double-quote a part (at most 63 characters each)');
    expect(problems).toContain('tables.4.table: public.orders is listed twice');
  });

  it('messages: none by default; prefixes of pgrelay\'s own, empty or repeated ones are refused by name', () => {
    expect(parseStreamerConfig(valid).messages).toEqual({ prefixes: [] });
    expect(parseStreamerConfig({ ...valid, messages: { prefixes: ['outbox', 'audit.v1'] } }).messages.prefixes).toEqual(['outbox', 'audit.v1']);
    const problems = problemsOf({ ...valid, messages: { prefixes: ['pgrelay.heartbeat', '', 'outbox', 'outbox'], prefix: 'x' } });
    expect(problems).toEqual(
      expect.arrayContaining([
        'messages.prefixes.0: prefixes starting with "pgrelay." are pgrelay\'s own',
        'messages.prefixes.1: a prefix is at least one character',
        'messages.prefixes: a prefix is listed twice',
        expect.stringMatching(/^messages: .*prefix/),
      ]),
    );
  });

  it('lists every problem at once, each by its setting', () => {
    const problems = problemsOf({
      database: { host: 'db', sslMode: 'verify-full' },
      tables: ['ok', 'bad name', 'a.b.c', 'ok'],
      queueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/changes',
      partitions: 0,
      batch: { maxBytes: 2 * 1024 * 1024 },
      tableKeys: { missing: ['id'] },
      surprise: true,
    });
    const text = problems.join('\n');
    expect(text).toContain('queueUrl: must be a FIFO queue');
    expect(text).toContain('partitions:');
    expect(text).toContain('batch.maxBytes:');
    expect(text).toContain('tables.1: "bad name" is not a valid table name');
    expect(text).toContain('tables.2: "a.b.c" is not a table name');
    expect(text).toContain('tables.3: public.ok is listed twice');
    expect(text).toContain('tableKeys.missing: public.missing is not in tables');
    expect(text).toContain('database.name: required');
    expect(text).toContain('database.secretArn: required');
    expect(text).toContain('database.caBundle: required with sslMode verify-full');
    expect(text).toMatch(/surprise/);
    expect(problems.length).toBeGreaterThanOrEqual(11);
  });

  it('rejects a URL and a secret together, and a non-postgres URL', () => {
    expect(problemsOf({ ...valid, database: { url: 'postgres://x/y', secretArn: 'arn:aws:secretsmanager:eu-west-1:1:secret:x' } }).join()).toContain('either url');
    expect(problemsOf({ ...valid, database: { url: 'mysql://x/y' } }).join()).toContain('postgres://');
  });

  it('accepts host + name + secret ARN for AWS', () => {
    const c = parseStreamerConfig({
      ...valid,
      database: { host: 'db.internal', name: 'app', secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf' },
    });
    expect(c.database.port).toBe(5432);
  });

  it('builds from environment variables over a JSON document, and reports bad JSON by name', () => {
    const c = parseStreamerEnv({
      PGRELAY_CONFIG: JSON.stringify({ ...valid, partitions: 8 }),
      PGRELAY_QUEUE_URL: 'http://localhost:4566/000000000000/other.fifo',
      PGRELAY_TABLES: 'a, b',
    });
    expect(c.partitions).toBe(8);
    expect(c.queueUrl).toBe('http://localhost:4566/000000000000/other.fifo');
    expect(c.tables.map((t) => t.table)).toEqual(['a', 'b']);
    expect(() => parseStreamerEnv({ PGRELAY_CONFIG: '{not json' })).toThrow(/PGRELAY_CONFIG: not valid JSON/);
    expect(() => parseStreamerEnv({ PGRELAY_CONFIG_FILE: '/nonexistent/pgrelay.json' })).toThrow(/cannot read \/nonexistent/);
  });

  it('parses quoted identifiers with doubled quotes and rejects unbalanced ones', () => {
    expect(parseTableName('"we""ird"."t.1"')).toEqual({ schema: 'we"ird', table: 't.1' });
    expect(typeof parseTableName('"open.t')).toBe('string');
    expect(typeof parseTableName(`x; DROP TABLE y`)).toBe('string');
  });
});
