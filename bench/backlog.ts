/**
 * The bench's tables and the WAL it drains: an orders-like table changed by inserts, updates and
 * deletes in 100-row transactions, and a narrow table filled by one huge transaction. Both are
 * generated server-side (generate_series in a procedure that commits every batch), so building
 * 200k changes takes seconds, not a client round trip per row. The transform bench's input comes
 * from a third, interleaved workload on the same table (`generateMixedWorkload`).
 */
import type pg from 'pg';

export const ROWS_PER_TX = 100;
export const ORDERS_PUBLICATION = 'bench_orders';
export const BIG_PUBLICATION = 'bench_big';

/** The columns of order `g` (a bigint), for `INSERT INTO orders SELECT … FROM generate_series(…) AS g`. */
const ORDER_ROW = `g, g % 5000 + 1, 'new', ((g * 37) % 100000) / 100.0 + 1,
    CASE WHEN g % 3 = 0 THEN 'USD' ELSE 'EUR' END,
    timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
    timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
    CASE WHEN g % 4 = 0 THEN NULL ELSE 'order ' || g || ': leave at the door' END`;

/** What shipping an order changes. */
const ORDER_UPDATE = `status = 'shipped', total = total + 1, updated_at = updated_at + interval '1 day'`;

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
    INSERT INTO orders SELECT ${ORDER_ROW} FROM generate_series(i * rows_per_tx + 1, (i + 1) * rows_per_tx) AS g;
    COMMIT;
  END LOOP;
  FOR i IN 0 .. update_txs - 1 LOOP
    UPDATE orders SET ${ORDER_UPDATE} WHERE id BETWEEN i * rows_per_tx + 1 AND (i + 1) * rows_per_tx;
    COMMIT;
  END LOOP;
  FOR i IN 0 .. delete_txs - 1 LOOP
    DELETE FROM orders
    WHERE id BETWEEN (first_deleted + i) * rows_per_tx + 1 AND (first_deleted + i + 1) * rows_per_tx;
    COMMIT;
  END LOOP;
END $$;

-- Cycles of ten 100-row transactions, in the backlog's proportions but interleaved: five of
-- inserts, three of updates and two of deletes of the rows just inserted. Every other cycle
-- runs under REPLICA IDENTITY FULL, so half the updates and deletes carry the old row.
CREATE PROCEDURE bench_mixed(cycles int, rows_per_tx int, first_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  c int;
  t int;
  base bigint;
BEGIN
  FOR c IN 0 .. cycles - 1 LOOP
    EXECUTE format('ALTER TABLE orders REPLICA IDENTITY %s', CASE WHEN c % 2 = 1 THEN 'FULL' ELSE 'DEFAULT' END);
    COMMIT;
    base := first_id + c::bigint * 5 * rows_per_tx;
    FOR t IN 0 .. 4 LOOP
      INSERT INTO orders SELECT ${ORDER_ROW} FROM generate_series(base + t * rows_per_tx + 1, base + (t + 1) * rows_per_tx) AS g;
      COMMIT;
    END LOOP;
    FOR t IN 0 .. 2 LOOP
      UPDATE orders SET ${ORDER_UPDATE} WHERE id BETWEEN base + t * rows_per_tx + 1 AND base + (t + 1) * rows_per_tx;
      COMMIT;
    END LOOP;
    FOR t IN 3 .. 4 LOOP
      DELETE FROM orders WHERE id BETWEEN base + t * rows_per_tx + 1 AND base + (t + 1) * rows_per_tx;
      COMMIT;
    END LOOP;
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

/** Changes of one `bench_mixed` cycle. */
export const MIXED_CYCLE_CHANGES = 10 * ROWS_PER_TX;
/** Ids of the mixed workload start above any the backlog uses. */
const MIXED_FIRST_ID = 100_000_000;

/** `cycles` × 1,000 changes: inserts, updates with and without the old row, deletes (see bench_mixed). */
export async function generateMixedWorkload(client: pg.Client, cycles: number): Promise<number> {
  await client.query('CALL bench_mixed($1, $2, $3)', [cycles, ROWS_PER_TX, MIXED_FIRST_ID]);
  return cycles * MIXED_CYCLE_CHANGES;
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

// --- bootstrap scenario ---------------------------------------------------------------------

export const BOOT_PUBLICATION = 'bench_boot';
/** The loaded table: the orders row shape, filled once. */
export const BOOT_TABLE = 'boot_orders';
/** The live table written during a load: the orders row plus the time each row was written. */
export const LIVE_TABLE = 'live_orders';
/** The live rows' clock column; the measuring sink looks for this name in the bodies it accepts. */
export const LIVE_CLOCK_COLUMN = 'live_written_at';

const ORDERS_COLUMNS = `id bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  status text NOT NULL,
  total numeric(12,2) NOT NULL,
  currency char(3) NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  note text`;

/**
 * `boot_orders` with `rows` orders rows (ids 1..rows, the backlog's values), frozen and analyzed
 * (so neither reader pays for hint bits, and pg_class has the row estimate), and the empty
 * `live_orders`; one publication for both.
 */
export async function createBootstrapTables(client: pg.Client, rows: number): Promise<void> {
  await client.query(`CREATE TABLE ${BOOT_TABLE} (${ORDERS_COLUMNS})`);
  await client.query(`CREATE TABLE ${LIVE_TABLE} (${ORDERS_COLUMNS}, ${LIVE_CLOCK_COLUMN} timestamptz NOT NULL)`);
  await client.query(`CREATE PUBLICATION ${BOOT_PUBLICATION} FOR TABLE ${BOOT_TABLE}, ${LIVE_TABLE}`);
  // In 100k-row statements, so no single transaction holds the whole table's WAL.
  for (let from = 1; from <= rows; from += 100_000) {
    const to = Math.min(rows, from + 99_999);
    await client.query(`INSERT INTO ${BOOT_TABLE} SELECT ${ORDER_ROW} FROM generate_series($1::bigint, $2::bigint) AS g`, [from, to]);
  }
  await client.query(`VACUUM (FREEZE, ANALYZE) ${BOOT_TABLE}`);
}

/** Inserts live rows `from`..`to` in one transaction; each row's clock column is the time it was written. */
export async function insertLiveRows(client: pg.Client, from: number, to: number): Promise<void> {
  await client.query(`INSERT INTO ${LIVE_TABLE} SELECT ${ORDER_ROW}, clock_timestamp() FROM generate_series($1::bigint, $2::bigint) AS g`, [from, to]);
}
