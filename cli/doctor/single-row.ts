/**
 * The one query helper the doctor's fact readers share: run a catalog query that always
 * answers with exactly one row, and say which query it was when it does not.
 */
import type pg from 'pg';

export async function singleRow<T extends pg.QueryResultRow>(client: pg.Client, sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await client.query<T>(sql, params);
  const row = rows[0];
  if (row === undefined) throw new Error(`no row from: ${sql.trim().split('\n')[0]}`);
  return row;
}
