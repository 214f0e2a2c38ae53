import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  changeBatch,
  changeEvent,
  graphNodeEvent,
  graphNodeEventRef,
  payloadRef,
  type ChangeEvent,
  type RowChangeEvent,
} from '#core/change-event.ts';
import { labelsFor } from '#core/node-id.ts';
import { toGraphEvent } from '#core/row-to-node.ts';
import { SCHEMAS_DIR, SCHEMA_BASE_URL, renderSchemas } from '../../scripts/generate-schemas.ts';

// ---------------------------------------------------------------------------------------
// A validator for the subset of JSON Schema 2020-12 the generated files use. There is no
// validator among the dependencies; this one throws on any keyword it does not know, so a
// zod upgrade that emits something new fails here instead of being silently ignored.

type JsonSchema = boolean | { [keyword: string]: unknown };

const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', '$defs']);
const ASSERTIONS = new Set([
  '$ref',
  'type',
  'const',
  'enum',
  'anyOf',
  'oneOf',
  'properties',
  'required',
  'additionalProperties',
  'propertyNames',
  'items',
  'pattern',
  'minimum',
  'maximum',
]);

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case 'integer':
      return Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    default:
      return typeOf(value) === type;
  }
}

/** Every violation as `path: problem`; empty when `value` is valid. */
function validate(root: JsonSchema, value: unknown): string[] {
  const defs = (typeof root === 'object' ? root.$defs : undefined) as Record<string, JsonSchema> | undefined;

  function check(schema: JsonSchema, v: unknown, path: string, errors: string[]): void {
    if (schema === true) return;
    if (schema === false) {
      errors.push(`${path}: not allowed`);
      return;
    }
    for (const keyword of Object.keys(schema)) {
      if (!ANNOTATIONS.has(keyword) && !ASSERTIONS.has(keyword)) throw new Error(`unsupported keyword ${keyword} at ${path}`);
    }
    if (typeof schema.$ref === 'string') {
      const name = /^#\/\$defs\/(.+)$/.exec(schema.$ref)?.[1];
      const target = name === undefined ? undefined : defs?.[name];
      if (target === undefined) throw new Error(`unresolved $ref ${schema.$ref} at ${path}`);
      check(target, v, path, errors);
    }
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
      if (!types.some((t) => hasType(v, t))) {
        errors.push(`${path}: expected ${types.join(' or ')}, got ${typeOf(v)}`);
        return;
      }
    }
    if ('const' in schema && !isDeepStrictEqual(v, schema.const)) errors.push(`${path}: must be ${JSON.stringify(schema.const)}`);
    if (Array.isArray(schema.enum) && !schema.enum.some((e) => isDeepStrictEqual(v, e))) {
      errors.push(`${path}: must be one of ${JSON.stringify(schema.enum)}`);
    }
    if (Array.isArray(schema.anyOf)) {
      const matches = (schema.anyOf as JsonSchema[]).some((branch) => {
        const branchErrors: string[] = [];
        check(branch, v, path, branchErrors);
        return branchErrors.length === 0;
      });
      if (!matches) errors.push(`${path}: matches none of anyOf`);
    }
    if (Array.isArray(schema.oneOf)) {
      const results = (schema.oneOf as JsonSchema[]).map((branch) => {
        const branchErrors: string[] = [];
        check(branch, v, path, branchErrors);
        return branchErrors;
      });
      const passing = results.filter((r) => r.length === 0).length;
      if (passing > 1) errors.push(`${path}: matches more than one of oneOf`);
      // None matches: the closest branch (fewest problems) says what is wrong, as a reader would.
      else if (passing === 0) errors.push(...(results.sort((a, b) => a.length - b.length)[0] ?? []));
    }
    if (typeof v === 'string' && typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(v)) {
      errors.push(`${path}: does not match ${schema.pattern}`);
    }
    if (typeof v === 'number') {
      if (typeof schema.minimum === 'number' && v < schema.minimum) errors.push(`${path}: below ${schema.minimum}`);
      if (typeof schema.maximum === 'number' && v > schema.maximum) errors.push(`${path}: above ${schema.maximum}`);
    }
    if (Array.isArray(v) && schema.items !== undefined) {
      v.forEach((item, i) => check(schema.items as JsonSchema, item, `${path}/${i}`, errors));
    }
    if (typeOf(v) === 'object') {
      const obj = v as Record<string, unknown>;
      const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
      for (const name of (schema.required ?? []) as string[]) {
        if (!Object.hasOwn(obj, name)) errors.push(`${path}: missing required ${name}`);
      }
      for (const [name, item] of Object.entries(obj)) {
        if (schema.propertyNames !== undefined) check(schema.propertyNames as JsonSchema, name, `${path}/${name} (name)`, errors);
        if (Object.hasOwn(properties, name)) check(properties[name] as JsonSchema, item, `${path}/${name}`, errors);
        else if (schema.additionalProperties !== undefined) check(schema.additionalProperties as JsonSchema, item, `${path}/${name}`, errors);
      }
    }
  }

  const errors: string[] = [];
  check(root, value, '', errors);
  return errors;
}

function published(file: string): JsonSchema {
  return JSON.parse(readFileSync(join(SCHEMAS_DIR, file), 'utf8')) as JsonSchema;
}

// ---------------------------------------------------------------------------------------
// Samples: the README's batch, and events the transform really produces from it.

const readmeBatch = {
  v: 1,
  partition: 3,
  changes: [
    {
      v: 1,
      op: 'update',
      schema: 'public',
      table: 'orders',
      key: { id: '42' },
      after: { id: '42', status: 'paid', total: '1299.90', updated_at: '2026-11-21T10:22:37.670754Z' },
      before: null,
      position: { commitLsn: '0/1B862A0', seq: 0 },
      tx: { xid: 7311, commitLsn: '0/1B862A0', commitTime: '2026-11-21T10:22:37.671002Z' },
    },
  ],
};
const readmeChange = readmeBatch.changes[0] as RowChangeEvent;
// A key change 41 → 42: the delete of the old key, then the insert of the new one.
const keyRemoval: RowChangeEvent = {
  ...readmeChange,
  op: 'delete',
  key: { id: '41' },
  newKey: { id: '42' },
  after: null,
  before: { id: '41', status: 'paid', doc: null, tags: ['a', 'b'], meta: { n: 1.5, deep: [{ x: null }] } },
  jsonNulls: { before: ['doc'] },
  position: { commitLsn: '0/1B862A0', seq: 1 },
};
const keyArrival: RowChangeEvent = {
  ...readmeChange,
  op: 'insert',
  oldKey: { id: '41' },
  unchanged: ['notes'],
  position: { commitLsn: '0/1B862A0', seq: 2 },
};
const truncateChange: RowChangeEvent = {
  ...readmeChange,
  op: 'truncate',
  key: null,
  after: null,
  truncate: { cascade: false, restartIdentity: true },
  position: { commitLsn: '0/1B862A0', seq: 3 },
};
const messageChange: ChangeEvent = {
  v: 1,
  op: 'message',
  message: { prefix: 'outbox', content: '{"order":42}', encoding: 'utf8', transactional: true },
  position: { commitLsn: '0/1B862A0', seq: 4 },
  tx: readmeChange.tx,
};
const nonTransactionalMessage: ChangeEvent = {
  v: 1,
  op: 'message',
  message: { prefix: 'audit', content: '3q2+7w==', encoding: 'base64', transactional: false },
  position: { commitLsn: '0/1B86400', seq: 0 },
  tx: null,
};
const sampleChanges: ChangeEvent[] = [readmeChange, keyRemoval, keyArrival, truncateChange, messageChange, nonTransactionalMessage];
const ctx = { source: 'shop', labels: labelsFor([{ schema: 'public', table: 'orders' }]), partition: 0 };
const nodeEvents = sampleChanges.map((c) => toGraphEvent(c, ctx)).filter((e) => e !== null);
const samplePayloadRef = { bucket: 'pgrelay-large', key: 'pgrelay/shop/0-1B862A0.0.json', bytes: 2_000_000, sha256: 'ab'.repeat(32) };
const sampleEventRef = {
  v: 1,
  type: 'node.updated',
  source: 'shop',
  node: { id: 'orders:42', label: 'orders' },
  position: readmeChange.position,
  tx: readmeChange.tx,
  payloadRef: samplePayloadRef,
};

const SCHEMA_OF: Record<string, z.ZodType> = {
  'change-event.v1.json': changeEvent,
  'change-batch.v1.json': changeBatch,
  'graph-node-event.v1.json': graphNodeEvent,
  'graph-node-event-ref.v1.json': graphNodeEventRef,
  'payload-ref.v1.json': payloadRef,
};

describe('published JSON Schemas', () => {
  it('match what the zod contracts generate today', () => {
    const generated = renderSchemas();
    expect([...generated.keys()].sort()).toEqual(Object.keys(SCHEMA_OF).sort());
    const onDisk = readdirSync(SCHEMAS_DIR).filter((f) => f.endsWith('.json')).sort();
    expect(onDisk, 'run npm run schemas').toEqual([...generated.keys()].sort());
    for (const [file, text] of generated) {
      expect(readFileSync(join(SCHEMAS_DIR, file), 'utf8'), `schemas/${file} is stale: run npm run schemas`).toBe(text);
    }
  });

  it('each names itself with an $id and a title, and ends with a newline', () => {
    for (const [file, text] of renderSchemas()) {
      const schema = JSON.parse(text) as Record<string, unknown>;
      expect(schema.$id).toBe(`${SCHEMA_BASE_URL}${file}`);
      expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(schema.title).toMatch(/^pgrelay \w+ v1$/);
      expect(text.endsWith('}\n')).toBe(true);
    }
  });

  it('accept the real samples', () => {
    expect(nodeEvents.map((e) => e.type)).toEqual(['node.updated', 'node.deleted', 'node.inserted', 'label.truncated', 'message.emitted', 'message.emitted']);
    expect(validate(published('change-batch.v1.json'), readmeBatch)).toEqual([]);
    for (const c of sampleChanges) expect(validate(published('change-event.v1.json'), c)).toEqual([]);
    for (const e of nodeEvents) expect(validate(published('graph-node-event.v1.json'), e)).toEqual([]);
    expect(validate(published('graph-node-event-ref.v1.json'), sampleEventRef)).toEqual([]);
    expect(validate(published('payload-ref.v1.json'), samplePayloadRef)).toEqual([]);
  });

  it('reject broken events, naming where and why', () => {
    const schema = published('graph-node-event.v1.json');
    const event = nodeEvents[0] as Record<string, unknown>;
    const { tx: _tx, ...withoutTx } = event;
    expect(validate(schema, { ...event, type: 'node.upserted' })).toEqual([expect.stringMatching(/^\/type: must be one of/)]);
    expect(validate(schema, { ...event, v: 2 })).toEqual(['/v: must be 1']);
    expect(validate(schema, withoutTx)).toEqual([': missing required tx']);
    expect(validate(schema, { ...event, position: { commitLsn: '0/1', seq: 1.5 } })).toEqual(['/position/seq: expected integer, got number']);
    expect(validate(schema, { ...event, position: { commitLsn: '0/1', seq: -1 } })).toEqual(['/position/seq: below 0']);
    expect(validate(schema, { ...event, node: { id: 42, label: 'orders', properties: {} } })).toEqual([
      '/node/id: expected string or null, got number',
    ]);
    // A property value must be a JSON value, however deep (JsonValue is recursive).
    expect(validate(schema, { ...event, node: { id: 'orders:42', label: 'orders', properties: { a: [{ b: 1n }] } } })).toEqual([
      '/node/properties/a: matches none of anyOf',
    ]);
    expect(validate(published('payload-ref.v1.json'), { ...samplePayloadRef, sha256: 'AB'.repeat(32) })).toEqual([
      '/sha256: does not match ^[0-9a-f]{64}$',
    ]);
  });

  it('agree with zod on valid and invalid samples', () => {
    const cases: [string, unknown][] = [
      ['change-batch.v1.json', readmeBatch],
      ['change-batch.v1.json', { ...readmeBatch, partition: -1 }],
      ['change-batch.v1.json', { ...readmeBatch, changes: [{ ...readmeChange, op: 'upsert' }] }],
      ['change-event.v1.json', keyRemoval],
      ['change-event.v1.json', keyArrival],
      ['change-event.v1.json', messageChange],
      ['change-event.v1.json', nonTransactionalMessage],
      ['change-event.v1.json', { ...messageChange, message: { ...messageChange.message, encoding: 'hex' } }],
      ['change-event.v1.json', { ...readmeChange, tx: null }],
      ['change-event.v1.json', { ...readmeChange, key: undefined }],
      ['change-event.v1.json', { ...readmeChange, jsonNulls: { after: [1] } }],
      ['change-event.v1.json', { ...truncateChange, truncate: { cascade: false } }],
      // Unknown properties are accepted by both (zod strips them): v1 readers tolerate additions.
      ['change-event.v1.json', { ...readmeChange, addedLater: true }],
      ['graph-node-event.v1.json', nodeEvents[1]],
      ['graph-node-event.v1.json', { ...nodeEvents[1], snapshot: false }],
      ['graph-node-event.v1.json', { ...nodeEvents[1], changed: 'status' }],
      ['graph-node-event.v1.json', nodeEvents[4]],
      ['graph-node-event.v1.json', { ...nodeEvents[4], message: undefined }],
      ['graph-node-event-ref.v1.json', sampleEventRef],
      ['graph-node-event-ref.v1.json', { ...sampleEventRef, payloadRef: { ...samplePayloadRef, bytes: 1.5 } }],
      ['payload-ref.v1.json', { ...samplePayloadRef, bucket: undefined }],
    ];
    let invalid = 0;
    for (const [file, value] of cases) {
      // Compare on the JSON text, as consumers see it (undefined fields vanish).
      const json: unknown = JSON.parse(JSON.stringify(value));
      const zodOk = (SCHEMA_OF[file] as z.ZodType).safeParse(json).success;
      if (!zodOk) invalid++;
      expect(validate(published(file), json).length === 0, `${file} ${JSON.stringify(value)}`).toBe(zodOk);
    }
    expect(invalid).toBe(12);
  });
});

describe('the test validator itself', () => {
  it('throws on a keyword it does not implement rather than ignoring it', () => {
    expect(() => validate({ type: 'string', format: 'email' }, 'x')).toThrow('unsupported keyword format');
  });

  it('throws on a $ref it cannot resolve', () => {
    expect(() => validate({ $ref: '#/$defs/Missing' }, 'x')).toThrow('unresolved $ref');
  });

  it('applies additionalProperties false, boolean schemas and propertyNames', () => {
    expect(validate({ type: 'object', properties: { a: true }, additionalProperties: false }, { a: 1, b: 2 })).toEqual(['/b: not allowed']);
    expect(validate({ type: 'object', propertyNames: { pattern: '^[a-z]+$' } }, { ok: 1, Bad: 2 })).toEqual([
      '/Bad (name): does not match ^[a-z]+$',
    ]);
    expect(validate({ type: 'array', items: { type: 'integer', maximum: 3 } }, [1, 4])).toEqual(['/1: above 3']);
    expect(validate({ type: 'number' }, Number.NaN)).toEqual([': expected number, got number']);
  });
});
