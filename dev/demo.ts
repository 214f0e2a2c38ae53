/**
 * The demo shop `npm start` streams: four tables (one with a composite key, two with REPLICA
 * IDENTITY FULL so updates say what changed), a history written before the streamer's slot
 * exists (so only a bootstrap can deliver it), and a gentle, deterministic workload.
 */
import type pg from 'pg';

export const DEMO_TABLES = ['public.customers', 'public.products', 'public.orders', 'public.order_items'];
export const DEMO_SCHEMA = `
CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, email text NOT NULL);
CREATE TABLE products (sku text PRIMARY KEY, title text NOT NULL, price numeric(10,2) NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL DEFAULT 'new',
                     total numeric(12,2) NOT NULL DEFAULT 0, placed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE order_items (order_id bigint NOT NULL, line int NOT NULL, sku text NOT NULL, qty int NOT NULL,
                          PRIMARY KEY (order_id, line));
-- FULL old rows let updates say what changed.
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE products REPLICA IDENTITY FULL;
INSERT INTO products VALUES ('TEA-1', 'Green tea', 4.50), ('MUG-2', 'Blue mug', 12.00), ('PEN-3', 'Fountain pen', 29.90);`;

/** Rows the seed writes (and order_items: 1 to 3 lines per order). */
export const DEMO_SEED_ROWS = { customers: 1_000, orders: 5_000 };

/**
 * The shop's history, in a few statements, run before the streamer starts: the slot does not
 * exist yet, so these rows never pass through the WAL stream. The guardian's first run requests
 * their initial load. ANALYZE gives the loads their row estimates (pg_class.reltuples).
 */
export const DEMO_SEED = `
INSERT INTO customers (name, email)
  SELECT n.name, lower(n.name) || '.' || g || '@example.com'
    FROM generate_series(1, ${DEMO_SEED_ROWS.customers}) AS g,
         LATERAL (SELECT (ARRAY['Ada', 'Grace', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia'])[1 + g % 8] AS name) AS n;
INSERT INTO orders (customer_id, status, placed_at)
  SELECT 1 + (g * 7) % ${DEMO_SEED_ROWS.customers}, CASE g % 10 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' ELSE 'shipped' END,
         now() - (${DEMO_SEED_ROWS.orders} - g) * interval '1 hour'
    FROM generate_series(1, ${DEMO_SEED_ROWS.orders}) AS g;
INSERT INTO order_items
  SELECT o.id, l, (ARRAY['TEA-1', 'MUG-2', 'PEN-3'])[1 + (o.id + l) % 3], 1 + (o.id * l) % 4
    FROM orders o, generate_series(1, 1 + (o.id::int % 3)) AS l
   ORDER BY o.id, l;
UPDATE orders o SET total = t.total
  FROM (SELECT i.order_id, sum(i.qty * p.price) AS total FROM order_items i JOIN products p USING (sku) GROUP BY i.order_id) AS t
 WHERE o.id = t.order_id;
ANALYZE customers, products, orders, order_items;`;

const NAMES = ['Ada', 'Grace', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia'];
const SKUS = ['TEA-1', 'MUG-2', 'PEN-3'];

/** One gentle step of the demo shop; the step number picks what happens (no randomness). */
export async function demoStep(client: pg.Client, n: number): Promise<void> {
  if (n % 4 === 1) {
    const name = NAMES[n % NAMES.length] as string;
    await client.query('INSERT INTO customers (name, email) VALUES ($1, $2)', [name, `${name.toLowerCase()}${n}@example.com`]);
  }
  await client.query('BEGIN');
  const { rows } = await client.query<{ id: string }>(
    `INSERT INTO orders (customer_id, total) SELECT id, 0 FROM customers ORDER BY id DESC LIMIT 1 RETURNING id`,
  );
  const orderId = rows[0]?.id;
  if (orderId) {
    const lines = 1 + (n % 3);
    for (let line = 1; line <= lines; line++) {
      await client.query('INSERT INTO order_items VALUES ($1, $2, $3, $4)', [orderId, line, SKUS[(n + line) % SKUS.length], 1 + ((n * line) % 4)]);
    }
    await client.query(
      `UPDATE orders o SET total = (SELECT sum(i.qty * p.price) FROM order_items i JOIN products p USING (sku) WHERE i.order_id = o.id) WHERE o.id = $1`,
      [orderId],
    );
  }
  await client.query('COMMIT');
  if (n % 3 === 0) await client.query(`UPDATE orders SET status = CASE status WHEN 'new' THEN 'paid' ELSE 'shipped' END WHERE id = (SELECT min(id) FROM orders WHERE status <> 'shipped')`);
  if (n % 5 === 0) await client.query(`UPDATE products SET price = price + 0.10 WHERE sku = $1`, [SKUS[n % SKUS.length]]);
  if (n % 7 === 0) await client.query(`DELETE FROM order_items WHERE (order_id, line) = (SELECT order_id, max(line) FROM order_items WHERE line > 1 GROUP BY order_id ORDER BY order_id LIMIT 1)`);
}

