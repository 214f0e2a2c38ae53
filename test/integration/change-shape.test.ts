/**
 * What a ChangeEvent looks like for each kind of change PostgreSQL can make: keys (composite,
 * changed, from tableKeys), old rows, unchanged TOAST, truncates, tables altered mid-stream,
 * generated columns, partitioned tables, positions and transactions — and the two key
 * problems the streamer refuses to start with. Real PostgreSQL, real streamer, SQS emulator.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionOf } from '#core/partition.ts';
import { comparePositions, parseLsn } from '#core/position.ts';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { receiveUntil, testFifoQueue } from '#test/helpers/sqs.ts';
import { changesOf, startStreamer, streamerConfig, type ReceivedChange, type RunningStreamer } from '#test/helpers/streamer.ts';

type Queue = { endpoint: string; queueUrl: string; client: SQSClient };
type Database = Awaited<ReturnType<typeof testDatabase>>;

/**
 * Everything a queue delivered so far. Tests share one streamer and queue, so each waits until
 * its own tables' changes are in and picks them out; a message may also carry another test's.
 */
class Inbox {
  readonly changes: ReceivedChange[] = [];
  readonly bodies: string[] = [];

  constructor(
    private readonly queue: Queue,
    private readonly running: RunningStreamer,
  ) {}

  /** Receives until `predicate` holds on everything received; fails at once if the streamer stops. */
  async until(predicate: (changes: ReceivedChange[]) => boolean): Promise<void> {
    if (predicate(this.changes)) return;
    const messages = await Promise.race([
      receiveUntil(this.queue.client, this.queue.queueUrl, (ms) => predicate([...this.changes, ...changesOf(ms)]), 20_000),
      this.running.done.then(() => {
        throw new Error('the streamer stopped');
      }),
    ]);
    this.changes.push(...changesOf(messages));
    this.bodies.push(...messages.map((m) => m.body));
  }

  /** Receives until `table` has at least `count` changes; returns them in stream order. */
  async of(table: string, count: number): Promise<ReceivedChange[]> {
    await this.until((cs) => cs.filter((c) => c.table === table).length >= count);
    return this.changes.filter((c) => c.table === table).sort((a, b) => comparePositions(a.position, b.position));
  }
}

function sql(db: Database, text: string, values?: unknown[]): Promise<pg.QueryResult> {
  return withClient(db.url, (c) => c.query(text, values));
}

describe('change shape: one streamer, four partitions', () => {
  let db: Database;
  let queue: Queue;
  let running: RunningStreamer;
  let inbox: Inbox;
  let serverVersion: number;
  const PUBLICATION = 'shape_pub';

  beforeAll(async () => {
    db = await testDatabase('shape');
    queue = await testFifoQueue('shape');
    await sql(
      db,
      `CREATE TABLE comp_pk (a int, b text, v text, PRIMARY KEY (b, a));
       CREATE TABLE pk_change (id int PRIMARY KEY, v text);
       CREATE TABLE pk_change_full (id int PRIMARY KEY, v text);
       ALTER TABLE pk_change_full REPLICA IDENTITY FULL;
       CREATE TABLE full_rows (id int PRIMARY KEY, name text, qty int);
       ALTER TABLE full_rows REPLICA IDENTITY FULL;
       CREATE TABLE toast_default (id int PRIMARY KEY, big text, n int);
       CREATE TABLE toast_full (id int PRIMARY KEY, big text, n int);
       ALTER TABLE toast_full REPLICA IDENTITY FULL;
       -- EXTERNAL: out of line and uncompressed, whatever the value compresses to.
       ALTER TABLE toast_default ALTER COLUMN big SET STORAGE EXTERNAL;
       ALTER TABLE toast_full ALTER COLUMN big SET STORAGE EXTERNAL;
       CREATE TABLE trunc_single (id serial PRIMARY KEY);
       CREATE TABLE trunc_parent (id serial PRIMARY KEY);
       CREATE TABLE trunc_child (id serial PRIMARY KEY, parent_id int REFERENCES trunc_parent);
       CREATE TABLE evolving (id int PRIMARY KEY, qty int);
       CREATE TABLE gen (id int PRIMARY KEY, price int, qty int, total int GENERATED ALWAYS AS (price * qty) STORED);
       CREATE TABLE measurements (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
       CREATE TABLE measurements_low PARTITION OF measurements FOR VALUES FROM (MINVALUE) TO (100);
       CREATE TABLE measurements_high PARTITION OF measurements FOR VALUES FROM (100) TO (MAXVALUE);
       CREATE TABLE ident_idx (id int PRIMARY KEY, code text NOT NULL UNIQUE, v text);
       ALTER TABLE ident_idx REPLICA IDENTITY USING INDEX ident_idx_code_key;
       CREATE TABLE keyless (email text NOT NULL, name text);
       ALTER TABLE keyless REPLICA IDENTITY FULL;
       -- Only for the refusals below; never streamed.
       CREATE TABLE bare (v text);
       CREATE TABLE keyed_elsewhere (id int PRIMARY KEY, email text);`,
    );
    serverVersion = Number((await sql(db, 'SHOW server_version_num')).rows[0].server_version_num);
    running = startStreamer(
      streamerConfig({
        dbUrl: db.url,
        queueUrl: queue.queueUrl,
        sqsEndpoint: queue.endpoint,
        publicationName: PUBLICATION,
        partitions: 4,
        tables: [
          'comp_pk',
          'pk_change',
          'pk_change_full',
          'full_rows',
          'toast_default',
          'toast_full',
          'trunc_single',
          'trunc_parent',
          'trunc_child',
          'evolving',
          'gen',
          'measurements',
          'keyless',
          'ident_idx',
        ],
        tableKeys: { keyless: ['email'] },
      }),
    );
    await running.ready;
    inbox = new Inbox(queue, running);
  });

  afterAll(async () => {
    await running?.stop();
    queue?.client.destroy();
    await db?.drop();
  });

  it('a composite primary key gives `key` both columns, in key order (not table order)', async () => {
    await sql(db, `INSERT INTO comp_pk (a, b, v) VALUES (1, 'x', 'first'); DELETE FROM comp_pk WHERE a = 1 AND b = 'x'`);
    const [insert, del] = await inbox.of('comp_pk', 2);
    expect(insert).toMatchObject({ op: 'insert', key: { b: 'x', a: 1 }, after: { a: 1, b: 'x', v: 'first' } });
    expect(del).toMatchObject({ op: 'delete', key: { b: 'x', a: 1 }, after: null, before: null });
    // The order is part of the node id ({table}:{key}), so check it in the text too.
    expect(Object.keys(insert?.key ?? {})).toEqual(['b', 'a']);
    expect(Object.keys(del?.key ?? {})).toEqual(['b', 'a']);
    expect(inbox.bodies.join('\n')).toContain('"table":"comp_pk","key":{"b":"x","a":1}');
  });

  it('a primary key change is a delete of the old key (in its partition) and an insert of the new one (in its own), at consecutive positions (DEFAULT identity: no old row)', async () => {
    await sql(db, `INSERT INTO pk_change VALUES (1, 'a'); UPDATE pk_change SET v = 'b' WHERE id = 1; UPDATE pk_change SET id = 2 WHERE id = 1`);
    const [insert, sameKey, removal, arrival] = await inbox.of('pk_change', 4);
    expect(sameKey).toMatchObject({ op: 'update', key: { id: 1 }, after: { id: 1, v: 'b' }, before: null });
    expect(sameKey).not.toHaveProperty('oldKey');
    expect(removal).toMatchObject({ op: 'delete', key: { id: 1 }, newKey: { id: 2 }, after: null, before: null });
    expect(arrival).toMatchObject({ op: 'insert', key: { id: 2 }, oldKey: { id: 1 }, after: { id: 2, v: 'b' }, before: null });
    // Each half travels in its own key's message group: the old key's with the row's earlier changes.
    expect(removal?.groupId).toBe(insert?.groupId);
    expect(removal?.groupId).toBe(`p${partitionOf('public.pk_change', '{"id":1}', 4)}`);
    expect(arrival?.groupId).toBe(`p${partitionOf('public.pk_change', '{"id":2}', 4)}`);
    expect(removal?.tx).toEqual(arrival?.tx);
    // One simple query, one transaction: insert 0, update 1, the key change 2 and 3.
    expect([removal?.position.seq, arrival?.position.seq]).toEqual([2, 3]);
  });

  it('a primary key change with REPLICA IDENTITY FULL: the delete half carries the whole old row', async () => {
    await sql(db, `INSERT INTO pk_change_full VALUES (1, 'a'); UPDATE pk_change_full SET v = 'b' WHERE id = 1; UPDATE pk_change_full SET id = 2 WHERE id = 1`);
    const [, sameKey, removal, arrival] = await inbox.of('pk_change_full', 4);
    expect(sameKey).toMatchObject({ key: { id: 1 }, before: { id: 1, v: 'a' }, after: { id: 1, v: 'b' } });
    expect(sameKey).not.toHaveProperty('oldKey');
    expect(removal).toMatchObject({ op: 'delete', key: { id: 1 }, newKey: { id: 2 }, before: { id: 1, v: 'b' }, after: null });
    expect(arrival).toMatchObject({ op: 'insert', key: { id: 2 }, oldKey: { id: 1 }, before: null, after: { id: 2, v: 'b' } });
  });

  it('REPLICA IDENTITY FULL: `before` is the complete old row on update and delete', async () => {
    await sql(db, `INSERT INTO full_rows VALUES (1, 'apple', 3); UPDATE full_rows SET qty = 4 WHERE id = 1; DELETE FROM full_rows WHERE id = 1`);
    const [insert, update, del] = await inbox.of('full_rows', 3);
    expect(insert).toMatchObject({ op: 'insert', before: null, after: { id: 1, name: 'apple', qty: 3 } });
    expect(update?.op).toBe('update');
    expect(update?.before).toEqual({ id: 1, name: 'apple', qty: 3 });
    expect(update?.after).toEqual({ id: 1, name: 'apple', qty: 4 });
    expect(del?.op).toBe('delete');
    expect(del?.key).toEqual({ id: 1 });
    expect(del?.before).toEqual({ id: 1, name: 'apple', qty: 4 });
    expect(del?.after).toBeNull();
  });

  describe('an unchanged TOASTed column', () => {
    // 100 kB of hex: stored out of line (STORAGE EXTERNAL), so an UPDATE that does not touch
    // it logs only the TOAST pointer, and pgoutput sends the column as "unchanged" ('u').
    const BIG_SQL = `(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 3200) AS i)`;
    let big: string;

    beforeAll(async () => {
      big = (await sql(db, `SELECT ${BIG_SQL} AS big`)).rows[0].big as string;
      expect(big).toHaveLength(102_400);
    });

    async function insertAndUpdate(table: string): Promise<ReceivedChange> {
      await sql(db, `INSERT INTO ${table} VALUES (1, ${BIG_SQL}, 1)`);
      const outOfLine = await sql(db, `SELECT pg_column_toast_chunk_id(big) IS NOT NULL AS toasted FROM ${table} WHERE id = 1`);
      expect(outOfLine.rows[0].toasted, 'the value is stored out of line').toBe(true);
      await sql(db, `UPDATE ${table} SET n = 2 WHERE id = 1`);
      const [insert, update] = await inbox.of(table, 2);
      expect(insert?.after).toEqual({ id: 1, big, n: 1 });
      expect(update?.op).toBe('update');
      return update as ReceivedChange;
    }

    it('DEFAULT identity: absent from `after` and named in `unchanged`, never null or a placeholder', async () => {
      const update = await insertAndUpdate('toast_default');
      expect(update.after).toEqual({ id: 1, n: 2 });
      expect(update.after).not.toHaveProperty('big');
      expect(update.unchanged).toEqual(['big']);
      expect(update.before).toBeNull();
    });

    it('REPLICA IDENTITY FULL: filled from the old row, so present with its full value and no `unchanged`', async () => {
      const update = await insertAndUpdate('toast_full');
      expect(update.after).toEqual({ id: 1, big, n: 2 });
      expect(update).not.toHaveProperty('unchanged');
      expect(update.before).toEqual({ id: 1, big, n: 1 });
    });
  });

  describe('TRUNCATE', () => {
    /** Every partition (message group) must get each table's truncate once, all at one position. */
    function expectInEveryPartition(changes: ReceivedChange[], table: string): ReceivedChange {
      const ofTable = changes.filter((c) => c.table === table && c.op === 'truncate');
      expect(ofTable.map((c) => c.groupId).sort()).toEqual(['p0', 'p1', 'p2', 'p3']);
      const [first] = ofTable;
      for (const c of ofTable) {
        expect(c.position).toEqual(first?.position);
        expect(c).toMatchObject({ op: 'truncate', schema: 'public', key: null, after: null, before: null });
      }
      return first as ReceivedChange;
    }

    it('of one table: op truncate without flags, sent to every partition at one position', async () => {
      await sql(db, 'INSERT INTO trunc_single DEFAULT VALUES; TRUNCATE trunc_single');
      const changes = await inbox.of('trunc_single', 5);
      expect(changes.map((c) => c.op)).toEqual(['insert', 'truncate', 'truncate', 'truncate', 'truncate']);
      const truncate = expectInEveryPartition(changes, 'trunc_single');
      expect(truncate.truncate).toEqual({ cascade: false, restartIdentity: false });
    });

    it('RESTART IDENTITY CASCADE: one truncate per table, both flags, one transaction', async () => {
      await sql(db, 'INSERT INTO trunc_parent DEFAULT VALUES; INSERT INTO trunc_child (parent_id) VALUES (1)');
      await sql(db, 'TRUNCATE trunc_parent RESTART IDENTITY CASCADE');
      const truncatesOf = (cs: ReceivedChange[], table: string) => cs.filter((c) => c.op === 'truncate' && c.table === table).length;
      await inbox.until((cs) => truncatesOf(cs, 'trunc_parent') >= 4 && truncatesOf(cs, 'trunc_child') >= 4);
      const truncates = inbox.changes.filter((c) => c.op === 'truncate' && (c.table === 'trunc_parent' || c.table === 'trunc_child'));
      expect(truncates).toHaveLength(8);
      const parent = expectInEveryPartition(truncates, 'trunc_parent');
      const child = expectInEveryPartition(truncates, 'trunc_child');
      for (const t of [parent, child]) expect(t.truncate).toEqual({ cascade: true, restartIdentity: true });
      // One TRUNCATE statement, one transaction: two changes of it.
      expect(child.tx).toEqual(parent.tx);
      expect([parent.position.seq, child.position.seq].sort()).toEqual([0, 1]);
    });
  });

  it('a table altered mid-stream: added column present, dropped column gone, changed type converted as the new type', async () => {
    await sql(db, 'INSERT INTO evolving VALUES (1, 5)');
    await sql(db, `ALTER TABLE evolving ADD COLUMN note text DEFAULT 'n/a'`);
    await sql(db, `INSERT INTO evolving VALUES (2, 6, 'hi'); UPDATE evolving SET qty = 7 WHERE id = 1`);
    await sql(db, 'ALTER TABLE evolving DROP COLUMN note');
    await sql(db, 'INSERT INTO evolving VALUES (3, 8)');
    await sql(db, 'ALTER TABLE evolving ALTER COLUMN qty TYPE numeric(10, 2)');
    await sql(db, 'INSERT INTO evolving VALUES (4, 9); UPDATE evolving SET qty = qty + 1 WHERE id = 1');
    const changes = await inbox.of('evolving', 6);
    expect(changes.map((c) => [c.op, c.after])).toEqual([
      ['insert', { id: 1, qty: 5 }],
      ['insert', { id: 2, qty: 6, note: 'hi' }],
      // A row written before ADD COLUMN reads the column's default, and so does its update.
      ['update', { id: 1, qty: 7, note: 'n/a' }],
      ['insert', { id: 3, qty: 8 }],
      // numeric(10,2) is a decimal string with its scale, where int4 was a number.
      ['insert', { id: 4, qty: '9.00' }],
      ['update', { id: 1, qty: '8.00' }],
    ]);
  });

  it('a STORED generated column is left out unless the publication publishes generated columns', async () => {
    await sql(db, 'INSERT INTO gen (id, price, qty) VALUES (1, 3, 4)');
    const [first] = await inbox.of('gen', 1);
    // pgoutput leaves generated columns out of the Relation message and every tuple unless the
    // publication says otherwise (PostgreSQL 18: publish_generated_columns = stored; before
    // 18 they are never sent). The streamer creates its publication without it, so `total` is
    // absent, not null: a consumer can compute it, or the operator can publish it.
    expect(first?.after).toEqual({ id: 1, price: 3, qty: 4 });
    if (serverVersion >= 180000) {
      await sql(db, `ALTER PUBLICATION ${PUBLICATION} SET (publish_generated_columns = stored)`);
      await sql(db, 'INSERT INTO gen (id, price, qty) VALUES (2, 5, 6)');
      const [, second] = await inbox.of('gen', 2);
      expect(second?.after).toEqual({ id: 2, price: 5, qty: 6, total: 30 });
    } else {
      await sql(db, 'INSERT INTO gen (id, price, qty) VALUES (2, 5, 6)');
      const [, second] = await inbox.of('gen', 2);
      expect(second?.after).toEqual({ id: 2, price: 5, qty: 6 });
    }
  });

  it('a partitioned table arrives under its root name; a row moving between partitions is a delete and an insert', async () => {
    await sql(db, `INSERT INTO measurements VALUES (5, 'low'), (150, 'high')`);
    await sql(db, `UPDATE measurements SET id = 250 WHERE id = 5`); // measurements_low → measurements_high
    await sql(db, `UPDATE measurements SET v = 'still high' WHERE id = 150`); // stays in measurements_high
    const changes = await inbox.of('measurements', 5);
    expect(inbox.changes.some((c) => c.table.startsWith('measurements_'))).toBe(false);
    expect(changes.map((c) => ({ op: c.op, schema: c.schema, key: c.key, after: c.after }))).toEqual([
      { op: 'insert', schema: 'public', key: { id: 5 }, after: { id: 5, v: 'low' } },
      { op: 'insert', schema: 'public', key: { id: 150 }, after: { id: 150, v: 'high' } },
      // PostgreSQL moves the row by deleting it from one partition and inserting it into the
      // other; logical decoding sees exactly that, a plain delete and insert (no newKey/oldKey).
      { op: 'delete', schema: 'public', key: { id: 5 }, after: null },
      { op: 'insert', schema: 'public', key: { id: 250 }, after: { id: 250, v: 'low' } },
      { op: 'update', schema: 'public', key: { id: 150 }, after: { id: 150, v: 'still high' } },
    ]);
    const [, , moveDelete, moveInsert] = changes;
    expect(moveInsert?.tx).toEqual(moveDelete?.tx);
    expect([moveDelete?.position.seq, moveInsert?.position.seq]).toEqual([0, 1]);
  });

  it('a table without primary key: `tableKeys` with REPLICA IDENTITY FULL gives the key on insert, update and delete', async () => {
    await sql(
      db,
      `INSERT INTO keyless VALUES ('a@example.com', 'A');
       UPDATE keyless SET name = 'B' WHERE email = 'a@example.com';
       UPDATE keyless SET email = 'b@example.com' WHERE email = 'a@example.com';
       DELETE FROM keyless WHERE email = 'b@example.com'`,
    );
    const changes = await inbox.of('keyless', 5);
    expect(changes.map((c) => ({ op: c.op, key: c.key, oldKey: c.oldKey, newKey: c.newKey, before: c.before }))).toEqual([
      { op: 'insert', key: { email: 'a@example.com' }, oldKey: undefined, newKey: undefined, before: null },
      { op: 'update', key: { email: 'a@example.com' }, oldKey: undefined, newKey: undefined, before: { email: 'a@example.com', name: 'A' } },
      { op: 'delete', key: { email: 'a@example.com' }, oldKey: undefined, newKey: { email: 'b@example.com' }, before: { email: 'a@example.com', name: 'B' } },
      { op: 'insert', key: { email: 'b@example.com' }, oldKey: { email: 'a@example.com' }, newKey: undefined, before: null },
      { op: 'delete', key: { email: 'b@example.com' }, oldKey: undefined, newKey: undefined, before: { email: 'b@example.com', name: 'B' } },
    ]);
  });

  it('a replica identity index other than the primary key names the node: a delete carries only its columns', async () => {
    await sql(db, `INSERT INTO ident_idx VALUES (1, 'A-1', 'x'); UPDATE ident_idx SET v = 'y' WHERE id = 1; DELETE FROM ident_idx WHERE id = 1`);
    const changes = await inbox.of('ident_idx', 3);
    expect(changes.map((c) => [c.op, c.key])).toEqual([
      ['insert', { code: 'A-1' }],
      ['update', { code: 'A-1' }],
      ['delete', { code: 'A-1' }],
    ]);
  });

  describe('the streamer refuses to start', () => {
    /** A second source on the same database; it must fail before creating anything. */
    async function startFailing(name: string, config: { tables: string[]; tableKeys?: Record<string, string[]> }): Promise<unknown> {
      const failing = startStreamer(
        streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, slotName: `refuse_${name}`, publicationName: `refuse_${name}`, ...config }),
      );
      const error = await failing.done.then(
        () => new Error('the streamer ran'),
        (err: unknown) => err,
      );
      const created = await sql(
        db,
        `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1)::int AS slots,
                (SELECT count(*) FROM pg_publication WHERE pubname = $1)::int AS publications`,
        [`refuse_${name}`],
      );
      expect(created.rows[0]).toEqual({ slots: 0, publications: 0 });
      return error;
    }

    it('on a table with neither key nor tableKeys: NO_USABLE_KEY, naming the table and the fix', async () => {
      const error = await startFailing('nokey', { tables: ['bare'] });
      expect(error).toMatchObject({ name: 'SourceError', code: 'PGRELAY_NO_USABLE_KEY' });
      const message = (error as Error).message;
      expect(message).toContain('public.bare');
      expect(message).toContain('tableKeys');
      expect(message).toContain('ALTER TABLE "public"."bare" REPLICA IDENTITY FULL');
    });

    it('on tableKeys the replica identity does not cover: REPLICA_IDENTITY, naming ALTER TABLE ... REPLICA IDENTITY FULL', async () => {
      // Deletes and key changes carry only the primary key (id), so the email key could not be read.
      const error = await startFailing('identity', { tables: ['keyed_elsewhere'], tableKeys: { keyed_elsewhere: ['email'] } });
      expect(error).toMatchObject({ name: 'SourceError', code: 'PGRELAY_REPLICA_IDENTITY' });
      const message = (error as Error).message;
      expect(message).toContain('public.keyed_elsewhere');
      expect(message).toContain('ALTER TABLE "public"."keyed_elsewhere" REPLICA IDENTITY FULL');
    });
  });
});

describe('change order: one streamer, one partition', () => {
  let db: Database;
  let queue: Queue;
  let running: RunningStreamer;
  let inbox: Inbox;

  beforeAll(async () => {
    db = await testDatabase('shape_order');
    queue = await testFifoQueue('shape-order');
    await sql(db, 'CREATE TABLE pos (id int PRIMARY KEY, v text); CREATE TABLE mt_a (id int PRIMARY KEY, v text); CREATE TABLE mt_b (id int PRIMARY KEY)');
    running = startStreamer(
      streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['pos', 'mt_a', 'mt_b'], partitions: 1 }),
    );
    await running.ready;
    inbox = new Inbox(queue, running);
  });

  afterAll(async () => {
    await running?.stop();
    queue?.client.destroy();
    await db?.drop();
  });

  it('positions: seq counts 0,1,2… within a transaction; (commitLsn, seq) is unique and increases in commit order', async () => {
    // Two transactions overlap; the one that began (and got its xid) first commits last.
    await withClient(db.url, (first) =>
      withClient(db.url, async (second) => {
        await first.query(`BEGIN; INSERT INTO pos VALUES (1, 'first')`);
        await second.query(`BEGIN; INSERT INTO pos VALUES (10, 'second'); INSERT INTO pos VALUES (11, 'second'); COMMIT`);
        await first.query(`INSERT INTO pos VALUES (2, 'first'), (3, 'first'); UPDATE pos SET v = 'first!' WHERE id = 1; COMMIT`);
      }),
    );
    await sql(db, `INSERT INTO pos VALUES (20, 'third')`);
    await inbox.until((cs) => cs.filter((c) => c.table === 'pos').length >= 7);
    // One partition: the order received is the order sent.
    const changes = inbox.changes.filter((c) => c.table === 'pos');
    expect(changes.map((c) => [c.op, c.key?.id, c.position.seq])).toEqual([
      ['insert', 10, 0],
      ['insert', 11, 1],
      ['insert', 1, 0],
      ['insert', 2, 1],
      ['insert', 3, 2],
      ['update', 1, 3],
      ['insert', 20, 0],
    ]);
    // Commit order, not xid order: the first transaction's xid is the smaller one.
    const [second, , first] = changes;
    expect(first?.tx.xid).toBeLessThan(second?.tx.xid ?? 0);
    for (let i = 1; i < changes.length; i++) {
      const previous = changes[i - 1] as ReceivedChange;
      const current = changes[i] as ReceivedChange;
      const lsnOrder = parseLsn(current.position.commitLsn) - parseLsn(previous.position.commitLsn);
      if (current.tx.xid === previous.tx.xid) {
        expect(lsnOrder).toBe(0n);
        expect(current.position.seq).toBe(previous.position.seq + 1);
      } else {
        expect(lsnOrder).toBeGreaterThan(0n);
      }
      expect(comparePositions(previous.position, current.position)).toBeLessThan(0);
    }
    const keys = changes.map((c) => `${c.position.commitLsn}:${c.position.seq}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const c of changes) expect(c.position.commitLsn).toBe(c.tx.commitLsn);
  });

  it("a multi-table transaction's changes share xid, commitLsn and commitTime, numbered in statement order", async () => {
    await sql(db, `BEGIN; INSERT INTO mt_a VALUES (1, 'a'); INSERT INTO mt_b VALUES (1); UPDATE mt_a SET v = 'b' WHERE id = 1; COMMIT`);
    await inbox.until((cs) => cs.filter((c) => c.table.startsWith('mt_')).length >= 3);
    const changes = inbox.changes.filter((c) => c.table.startsWith('mt_'));
    expect(changes.map((c) => [c.table, c.op, c.position.seq])).toEqual([
      ['mt_a', 'insert', 0],
      ['mt_b', 'insert', 1],
      ['mt_a', 'update', 2],
    ]);
    const [first] = changes;
    for (const c of changes) {
      expect(c.tx).toEqual(first?.tx);
      expect(c.position.commitLsn).toBe(first?.tx.commitLsn);
    }
  });
});
