import type { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLsn } from '#core/position.ts';
import type { OperatorIo } from '#cli/operator.ts';
import { slotCommand } from '#cli/slot.ts';
import type { SourceStatus, StatusProblem } from '#shared/source-status.ts';
import { freePort } from '#dev/postgres/server.ts';
import { expectOneSentence, pgrelay, type Run } from '#test/helpers/operator-cli.ts';
import { databaseUrl, testDatabase, testPgUrl, withClient } from '#test/helpers/postgres.ts';
import { testFifoQueue } from '#test/helpers/sqs.ts';
import { slotNameFor, startStreamer, streamerConfig, type RunningStreamer } from '#test/helpers/streamer.ts';
import { waitFor, waitForValue } from '#test/helpers/wait.ts';

type StatusDoc = SourceStatus & { target: string; problems: StatusProblem[] };

interface SlotRow {
  active: boolean;
  active_pid: number | null;
  confirmed_flush_lsn: string;
  database: string;
}

describe('pgrelay status, slot drop', () => {
  let db: Awaited<ReturnType<typeof testDatabase>>;
  let queue: { endpoint: string; queueUrl: string; client: SQSClient };
  let running: RunningStreamer;
  let slot: string;
  const slotRow = (name: string) =>
    withClient(db.url, async (c) => {
      const { rows } = await c.query<SlotRow>('SELECT active, active_pid, confirmed_flush_lsn::text, database::text FROM pg_replication_slots WHERE slot_name = $1', [name]);
      return rows[0];
    });
  const currentLsn = () => withClient(db.url, async (c) => (await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn as string);
  const createSlot = (url: string, name: string) => withClient(url, (c) => c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [name]));

  beforeAll(async () => {
    db = await testDatabase('ops');
    queue = await testFifoQueue('ops');
    slot = slotNameFor(db.url);
    await withClient(db.url, (c) => c.query('CREATE TABLE items (id bigint PRIMARY KEY, name text)'));
    running = startStreamer(streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['items'] }));
    await running.ready;
  });

  afterAll(async () => {
    await running?.stop();
    queue?.client.destroy();
    await db?.drop();
  });

  describe('while a streamer holds the slot', () => {
    it('status reports it active, with the acknowledged position of the slot and the lag from it', async () => {
      await withClient(db.url, (c) => c.query(`INSERT INTO items VALUES (1, 'apple')`));
      const written = parseLsn(await currentLsn());
      // The streamer has acknowledged everything up to and including our insert.
      await waitFor(async () => parseLsn((await slotRow(slot))?.confirmed_flush_lsn ?? '0/0') >= written, { message: 'the insert to be acknowledged' });
      const held = (await slotRow(slot)) as SlotRow;

      const run = await pgrelay('status', '--database-url', db.url, '--slot', slot, '--tables', 'items', '--json');
      const after = await slotRow(slot);
      const now = parseLsn(await currentLsn());

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const doc = JSON.parse(run.stdout) as StatusDoc;
      if (doc.slot.state === 'missing') throw new Error('slot reported missing');
      expect(doc.slot).toMatchObject({ name: slot, state: 'ok', active: true, activePid: held.active_pid, walStatus: 'reserved' });
      // The acknowledged position may move while the command runs (keepalives), never past what the slot said after.
      const confirmed = parseLsn(doc.slot.confirmedFlushLsn as string);
      expect(confirmed).toBeGreaterThanOrEqual(parseLsn(held.confirmed_flush_lsn));
      expect(confirmed).toBeLessThanOrEqual(parseLsn((after as SlotRow).confirmed_flush_lsn));
      // Lag is measured from that position to the reported current one; near zero means no more
      // than the WAL the cluster wrote since our insert was acknowledged (other files write too).
      const reportedNow = parseLsn(doc.currentWalLsn as string);
      expect(doc.slot.lagBytes).toBe(Number(reportedNow - confirmed));
      expect(doc.slot.lagBytes).toBeGreaterThanOrEqual(0);
      expect(doc.slot.lagBytes).toBeLessThanOrEqual(Number(now - written));
      expect(doc.publication).toMatchObject({ name: 'pgrelay_default', exists: true, tables: ['public.items'], missingTables: [] });
      expect(doc.tables).toEqual([
        { table: 'public.items', configured: true, exists: true, inPublication: true, bootstrap: { state: 'untracked', detail: 'not tracked (no pgrelay state schema yet: the monitor creates it on its first run)' } },
      ]);
      expect(doc.problems).toEqual([]);
    });

    it('slot drop refuses, naming the process that holds the slot', async () => {
      const held = (await slotRow(slot)) as SlotRow;
      const run = await pgrelay('slot', 'drop', '--database-url', db.url, '--slot', slot, '--yes');
      expect(run.code).toBe(2);
      expectOneSentence(run);
      expect(run.stderr).toContain(`replication slot ${slot} is in use by process ${held.active_pid}`);
      expect(run.stderr).toContain('--force');
      expect(await slotRow(slot)).toMatchObject({ active: true });
    });
  });

  describe('after the streamer stopped, while writes go on', () => {
    let confirmed: string;
    let before: bigint;
    let after: bigint;
    let doc: StatusDoc;
    let run: Run;

    beforeAll(async () => {
      await running.stop();
      await waitFor(async () => (await slotRow(slot))?.active === false, { message: 'the slot to be released' });
      confirmed = ((await slotRow(slot)) as SlotRow).confirmed_flush_lsn;
      await withClient(db.url, (c) => c.query(`INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(2, 500) g`));
      before = parseLsn(await currentLsn());
      run = await pgrelay('status', '--database-url', db.url, '--slot', slot, '--tables', 'items,missing_tbl', '--json');
      after = parseLsn(await currentLsn());
      doc = JSON.parse(run.stdout) as StatusDoc;
    });

    it('status says inactive, keeps the acknowledged position, and lag is pg_wal_lsn_diff at the reported position', async () => {
      expect(run.code).toBe(0);
      if (doc.slot.state === 'missing') throw new Error('slot reported missing');
      expect(doc.slot).toMatchObject({ state: 'ok', active: false, activePid: null, confirmedFlushLsn: confirmed });
      const lsnDiff = await withClient(db.url, async (c) => (await c.query<{ d: string }>('SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::text AS d', [doc.currentWalLsn, confirmed])).rows[0]?.d);
      expect(doc.slot.lagBytes).toBe(Number(lsnDiff));
      // The reported position lies between what we read just before and just after the command.
      const start = parseLsn(confirmed);
      expect(Number(before - start)).toBeGreaterThan(0);
      expect(doc.slot.lagBytes).toBeGreaterThanOrEqual(Number(before - start));
      expect(doc.slot.lagBytes).toBeLessThanOrEqual(Number(after - start));
      expect(doc.slot.retainedWalBytes).toBeGreaterThanOrEqual(doc.slot.lagBytes as number);
      expect(doc.problems).toEqual([expect.objectContaining({ severity: 'warning', message: expect.stringContaining(`no streamer is connected to replication slot ${slot}`) }), expect.objectContaining({ message: expect.stringContaining('lacks public.missing_tbl') }), expect.objectContaining({ message: expect.stringContaining('configured table public.missing_tbl does not exist') })]);
      expect(doc.publication.missingTables).toEqual(['public.missing_tbl']);
      expect(doc.tables.map((t) => [t.table, t.exists, t.inPublication])).toEqual([
        ['public.items', true, true],
        ['public.missing_tbl', false, false],
      ]);
    });

    it('status prints a compact block for people', async () => {
      const human = await pgrelay('status', '--database-url', db.url, '--slot', slot, '--tables', 'items');
      expect(human.code).toBe(0);
      expect(human.stdout).toContain(`slot          ${slot}: inactive (no streamer connected), wal_status reserved`);
      expect(human.stdout).toContain(`acknowledged  ${confirmed}`);
      expect(human.stdout).toMatch(/\nlag {11}\d+(\.\d)? (KiB|MiB|GiB) \(WAL written since the acknowledged position; now at [0-9A-F]+\/[0-9A-F]+\)\n/);
      expect(human.stdout).toMatch(/\nretained WAL {2}\d+(\.\d)? (KiB|MiB|GiB) /);
      expect(human.stdout).toContain('publication   pgrelay_default: 1 table\n');
      expect(human.stdout).toContain('table         public.items  published      bootstrap not tracked (no pgrelay state schema yet: the monitor creates it on its first run)');
      expect(human.stdout).toContain('warning: no streamer is connected');
    });
  });

  it('status of a slot that does not exist exits 1 and says how to get one', async () => {
    const [human, json] = await Promise.all([
      pgrelay('status', '--database-url', db.url, '--slot', 'no_such_slot'),
      pgrelay('status', '--database-url', db.url, '--slot', 'no_such_slot', '--json'),
    ]);
    expect(human.code).toBe(1);
    expect(human.stdout).toContain('slot          no_such_slot: MISSING');
    expect(human.stdout).toContain(`blocked: replication slot no_such_slot does not exist in ${db.name}: start the streamer to create it`);
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.stdout) as StatusDoc;
    expect(doc.slot).toEqual({ name: 'no_such_slot', state: 'missing' });
    expect(doc.problems[0]).toMatchObject({ severity: 'blocked' });
  });

  describe('slot drop', () => {
    it('without a terminal and without --yes refuses and keeps the slot', async () => {
      const name = `${slot}_a`;
      await createSlot(db.url, name);
      const run = await pgrelay('slot', 'drop', '--database-url', db.url, '--slot', name);
      expect(run.code).toBe(2);
      expectOneSentence(run);
      expect(run.stderr).toContain(`refusing to drop replication slot ${name} without confirmation: stdin is not a terminal, so pass --yes`);
      expect(await slotRow(name)).toBeDefined();
    });

    it('with --yes drops the slot; a second drop finds nothing and exits 1', async () => {
      const name = `${slot}_a`;
      const run = await pgrelay('slot', 'drop', '--database-url', db.url, '--slot', name, '--yes');
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`dropped replication slot ${name} on `);
      expect(await slotRow(name)).toBeUndefined();
      const again = await pgrelay('slot', 'drop', '--database-url', db.url, '--slot', name, '--yes');
      expect(again.code).toBe(1);
      expectOneSentence(again);
      expect(again.stderr).toContain(`replication slot ${name} does not exist`);
    });

    it('on a terminal drops only once the exact slot name is typed', async () => {
      const name = `${slot}_b`;
      await createSlot(db.url, name);
      const questions: string[] = [];
      const io = (answer: string): OperatorIo & { output: string } => {
        const io = {
          output: '',
          out: (t: string) => void (io.output += t),
          err: (t: string) => void (io.output += t),
          env: {},
          ask: async (q: string) => {
            questions.push(q);
            return answer;
          },
        };
        return io;
      };
      const wrong = io('yes');
      expect(await slotCommand(['drop', '--database-url', db.url, '--slot', name], wrong)).toBe(2);
      expect(wrong.output).toContain(`the answer did not match ${name}: nothing was dropped`);
      expect(await slotRow(name)).toBeDefined();
      const right = io(`${name}\n`);
      expect(await slotCommand(['drop', '--database-url', db.url, '--slot', name], right)).toBe(0);
      expect(await slotRow(name)).toBeUndefined();
      expect(questions[0]).toMatch(new RegExp(`^Drop replication slot ${name} on .+/${db.name}\\? PostgreSQL will stop retaining WAL for it and pgrelay will need a bootstrap to resume\\. Type the slot name to confirm: $`));
    });

    it('never drops a slot of another database', async () => {
      const other = await testDatabase('ops_other');
      try {
        const name = slotNameFor(other.url);
        await createSlot(other.url, name);
        const [drop, status] = await Promise.all([
          pgrelay('slot', 'drop', '--database-url', db.url, '--slot', name, '--yes'),
          pgrelay('status', '--database-url', db.url, '--slot', name, '--json'),
        ]);
        expect(drop.code).toBe(2);
        expectOneSentence(drop);
        expect(drop.stderr).toContain(`replication slot ${name} belongs to database ${other.name}, not ${db.name}: nothing was dropped`);
        expect(await slotRow(name)).toMatchObject({ database: other.name });
        expect(status.code).toBe(1);
        expect((JSON.parse(status.stdout) as StatusDoc).slot).toMatchObject({ state: 'foreign', database: other.name });
      } finally {
        await other.drop();
      }
    });

    it('with --force ends the session of the streamer holding the slot and drops it, and no other session (regression: it ended every slot holder on the server)', async () => {
      const name = `${slot}_f`;
      const neighbour = `${slot}_g`;
      const other = await testDatabase('ops_force_other');
      await withClient(other.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY)'));
      const holders = [
        startStreamer(streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['items'], slotName: name })),
        // Another slot of the same database, and a slot of another database, each held by a streamer.
        startStreamer(streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['items'], slotName: neighbour })),
        startStreamer(streamerConfig({ dbUrl: other.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['t'] })),
      ];
      const holderOf = (slotName: string) =>
        withClient(db.url, async (c) => (await c.query<{ pid: number | null }>('SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1', [slotName])).rows[0]?.pid ?? null);
      try {
        await Promise.all(holders.map((h) => h.ready));
        const names = [name, neighbour, slotNameFor(other.url)];
        const pids = await waitForValue(
          async () => {
            const found = await Promise.all(names.map(holderOf));
            return found.every((p) => p !== null) ? (found as number[]) : undefined;
          },
          { message: 'the three streamers to hold their slots' },
        );
        const run = await pgrelay('slot', 'drop', '--database-url', db.url, '--slot', name, '--yes', '--force');
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
        expect(run.stdout).toContain(`dropped replication slot ${name} on `);
        expect(run.stdout).toContain(`after ending the session of process ${pids[0]}`);
        expect(await slotRow(name)).toBeUndefined();
        // The other slots are held by the same sessions as before: neither was ended.
        expect([await holderOf(neighbour), await holderOf(names[2] as string)]).toEqual([pids[1], pids[2]]);
        expect(holders.slice(1).map((h) => h.streamer.stats().sessions), JSON.stringify(holders.slice(1).map((h) => h.logs.filter((l) => l.level !== 'info' && l.level !== 'debug')))).toEqual([1, 1]);
      } finally {
        await Promise.all(holders.map((h) => h.stop()));
        await other.drop();
      }
    });
  });

  it('an unreachable port, a wrong password or a missing database: exit 2, one sentence with the fix, no stack trace', async () => {
    const port = await freePort();
    const wrongPassword = new URL(db.url);
    wrongPassword.password = 'not-the-password';
    const host = new URL(db.url).hostname;
    const [unreachable, unreachableJson, password, database] = await Promise.all([
      pgrelay('status', '--database-url', `postgres://postgres:x@127.0.0.1:${port}/app`),
      pgrelay('status', '--database-url', `postgres://postgres:x@127.0.0.1:${port}/app`, '--json'),
      pgrelay('status', '--database-url', wrongPassword.toString()),
      pgrelay('slot', 'drop', '--yes', '--database-url', databaseUrl(await testPgUrl(), 'no_such_database')),
    ]);
    for (const run of [unreachable, unreachableJson, password, database]) {
      expect(run.code).toBe(2);
      expectOneSentence(run);
      expect(run.stderr).not.toContain('not-the-password');
    }
    expect(unreachable.stdout).toBe('');
    expect(unreachable.stderr).toMatch(new RegExp(`^pgrelay status: nothing accepts connections at 127\\.0\\.0\\.1:${port}/\\w+: start PostgreSQL or fix the host and port\\n$`));
    expect(JSON.parse(unreachableJson.stdout)).toEqual({ error: { code: 'PGRELAY_UNREACHABLE', message: expect.stringContaining(`127.0.0.1:${port}`) } });
    expect(password.stderr).toContain(`rejected the password of user ${decodeURIComponent(wrongPassword.username)}: check the credentials`);
    expect(database.stderr).toContain(`pgrelay slot: database no_such_database does not exist on ${host}:`);
  });
});
