/**
 * Run a catalog query that always answers with exactly one row, and say which query it was when
 * it does not (the status reader and the doctor's fact readers use it).
 */
import type pg from 'pg';
import { PgRelayError } from '#core/errors.ts';

export async function singleRow<T extends pg.QueryResultRow>(client: pg.Client, sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await client.query<T>(sql, params);
  const row = rows[0];
  if (row === undefined) throw new PgRelayError('INTERNAL', `no row from: ${sql.trim().split('\n')[0]}`);
  return row;
}
