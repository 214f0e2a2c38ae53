/**
 * The bench's tables and the WAL it drains: an orders-like table changed by inserts, updates and
 * deletes in 100-row transactions, and a narrow table filled by one huge transaction. Both are
 * generated server-side (generate_series in a procedure that commits every batch), so building
 * 200k changes takes seconds, not a client round trip per row.
 */
import type pg from 'pg';

export const ROWS_PER_TX = 100;
export const ORDERS_PUBLICATION = 'bench_orders';
export const BIG_PUBLICATION = 'bench_big';

export const SCHEMA_SQL = `
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  status text NOT NULL,
  total numeric(12,2) NOT NULL,
  currency char(3) NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  note text
);
CREATE TABLE big_items (id bigint PRIMARY KEY, qty int NOT NULL, label text NOT NULL);
CREATE PUBLICATION ${ORDERS_PUBLICATION} FOR TABLE orders WITH (publish_via_partition_root = true);
CREATE PUBLICATION ${BIG_PUBLICATION} FOR TABLE big_items WITH (publish_via_partition_root = true);

CREATE PROCEDURE bench_backlog(insert_txs int, update_txs int, delete_txs int, rows_per_tx int)
LANGUAGE plpgsql AS $$
DECLARE
  i int;
  first_deleted int := insert_txs - delete_txs;
BEGIN
  FOR i IN 0 .. insert_txs - 1 LOOP
    INSERT INTO orders
    SELECT g, g % 5000 + 1, 'new', ((g * 37) % 100000) / 100.0 + 1,
           CASE WHEN g % 3 = 0 THEN 'USD' ELSE 'EUR' END,
           timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
           timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
           CASE WHEN g % 4 = 0 THEN NULL ELSE 'order ' || g || ': leave at the door' END
    FROM generate_series(i * rows_per_tx + 1, (i + 1) * rows_per_tx) AS g;
    COMMIT;
  END LOOP;
  FOR i IN 0 .. update_txs - 1 LOOP
    UPDATE orders SET status = 'shipped', total = total + 1, updated_at = updated_at + interval '1 day'
    WHERE id BETWEEN i * rows_per_tx + 1 AND (i + 1) * rows_per_tx;
    COMMIT;
  END LOOP;
  FOR i IN 0 .. delete_txs - 1 LOOP
    DELETE FROM orders
    WHERE id BETWEEN (first_deleted + i) * rows_per_tx + 1 AND (first_deleted + i + 1) * rows_per_tx;
    COMMIT;
  END LOOP;
END $$;
`;

export interface BacklogPlan {
  insertTxs: number;
  updateTxs: number;
  deleteTxs: number;
  /** Row changes the plan makes: every transaction changes exactly ROWS_PER_TX rows. */
  changes: number;
}

/** At least `changes` row changes, rounded up to whole transactions: ½ inserts, 0.3 updates, 0.2 deletes. */
export function planBacklog(changes: number): BacklogPlan {
  const txs = Math.max(1, Math.ceil(changes / ROWS_PER_TX));
  const insertTxs = Math.ceil(txs * 0.5);
  const updateTxs = Math.min(insertTxs, Math.floor(txs * 0.3));
  const deleteTxs = Math.min(insertTxs, txs - insertTxs - updateTxs);
  return { insertTxs, updateTxs, deleteTxs, changes: (insertTxs + updateTxs + deleteTxs) * ROWS_PER_TX };
}

export async function createSchema(client: pg.Client): Promise<void> {
  await client.query(SCHEMA_SQL);
}

/** pgoutput slots, made after the publications (a slot decodes with the catalog as of its start). */
export async function createSlots(client: pg.Client, names: string[]): Promise<void> {
  for (const name of names) await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [name]);
}

export async function generateBacklog(client: pg.Client, plan: BacklogPlan): Promise<void> {
  // CALL must run outside an explicit transaction for the procedure's COMMITs to be allowed.
  await client.query('CALL bench_backlog($1, $2, $3, $4)', [plan.insertTxs, plan.updateTxs, plan.deleteTxs, ROWS_PER_TX]);
}

/** One transaction inserting `rows` narrow rows. */
export async function generateBigTransaction(client: pg.Client, rows: number): Promise<void> {
  await client.query(
    `INSERT INTO big_items SELECT g, g % 1000, 'item ' || g FROM generate_series(1, $1::int) AS g`,
    [rows],
  );
}

export async function currentWalLsn(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return (rows[0] as { lsn: string }).lsn;
}
