/**
 * Table names as users write them in config: `schema.table`, each part either a plain
 * identifier (folded to lower case, as PostgreSQL folds unquoted names) or a double-quoted
 * one kept exactly ("My Table", with "" for a quote). A bare `table` means `public.table`.
 */
export interface TableName {
  schema: string;
  table: string;
}

const PLAIN = /^[A-Za-z_][A-Za-z0-9_$]*$/;

function parsePart(part: string): string | undefined {
  if (part.startsWith('"')) {
    if (part.length < 3 || !part.endsWith('"')) return undefined;
    const inner = part.slice(1, -1);
    // Every quote inside must be doubled.
    if (inner.replaceAll('""', '').includes('"')) return undefined;
    return inner.replaceAll('""', '"');
  }
  return PLAIN.test(part) ? part.toLowerCase() : undefined;
}

/** Split on the dot that is not inside double quotes. */
function splitQualified(text: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (ch === '.' && !quoted) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

/** Parse `schema.table`; returns an error sentence instead of throwing. */
export function parseTableName(text: string): TableName | string {
  const trimmed = text.trim();
  const parts = splitQualified(trimmed);
  if (parts.length > 2 || parts.length === 0) {
    return `"${text}" is not a table name: write schema.table (quote parts with double quotes if they contain dots or capitals)`;
  }
  const names = parts.map(parsePart);
  if (names.some((n) => n === undefined || n.length === 0 || n.length > 63)) {
    return `"${text}" is not a valid table name: use schema.table with letters, digits, _ and $, or double-quote a part (at most 63 characters each)`;
  }
  return names.length === 1
    ? { schema: 'public', table: names[0] as string }
    : { schema: names[0] as string, table: names[1] as string };
}

/** Quote an identifier for SQL text (only where a parameter cannot be used). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function qualifiedName(t: TableName): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`;
}

/** The canonical text key of a table inside pgrelay: schema.table, unquoted. */
export function tableKey(t: TableName): string {
  return `${t.schema}.${t.table}`;
}
