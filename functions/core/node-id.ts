/**
 * Node identity: a table is a label, a row is a node whose id is `{label}:{key}`, composite
 * keys joined with ':' in key order. Labels are table names, schema-qualified only where two
 * configured tables share a name, so ids stay short and readable for the usual case.
 */
import type { JsonValue } from './change-event.ts';
import { tableKey, type TableName } from './identifiers.ts';
import { stringifyLossless } from './values/lossless-json.ts';

/** `schema.table` → label, for every configured table. */
export function labelsFor(tables: TableName[]): Map<string, string> {
  const count = new Map<string, number>();
  for (const t of tables) count.set(t.table, (count.get(t.table) ?? 0) + 1);
  return new Map(tables.map((t) => [tableKey(t), (count.get(t.table) ?? 0) > 1 ? tableKey(t) : t.table]));
}

/** One key value as id text: strings as they are, others as their JSON; '%' and ':' escaped. */
function keyPart(value: JsonValue | undefined): string {
  const text = typeof value === 'string' ? value : stringifyLossless(value ?? null);
  return text.includes('%') || text.includes(':') ? text.replaceAll('%', '%25').replaceAll(':', '%3A') : text;
}

/** `{label}:{v1}[:{v2}…]`, values in key order (the order of `key`'s properties). */
export function nodeId(label: string, key: Record<string, JsonValue>): string {
  let id = label;
  for (const k in key) id += `:${keyPart(key[k])}`;
  return id;
}
