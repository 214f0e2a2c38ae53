import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { waitFor } from '#test/helpers/wait.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** PIDs whose `ps` field (`pgid`, `sid`) equals `value`. */
function processesWith(field: 'pgid' | 'sid', value: number): number[] {
  const out = execFileSync('ps', ['-eo', `pid=,${field}=`], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter(([pid, v]) => v === value && pid !== undefined)
    .map(([pid]) => pid as number);
}

/** PIDs in a process group (what Ctrl-C in a terminal signals). */
const groupMembers = (pgid: number): number[] => processesWith('pgid', pgid);

/** PIDs of a session (a terminal's jobs share it). */
const sessionMembers = (sid: number): number[] => processesWith('sid', sid);

/** The session `script` made for the command it runs in the pseudo-terminal. */
function ptySession(scriptPid: number): number | undefined {
  const out = execFileSync('ps', ['-eo', 'pid=,ppid=,sid='], { encoding: 'utf8' });
  const row = out
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .find(([, ppid]) => ppid === scriptPid);
  return row?.[2];
}

function postgresProcessesOf(pids: number[]): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out.split('\n').filter((l) => pids.includes(Number(l.trim().split(/\s+/)[0])) && l.includes('postgres'));
}

/** How long the pipeline stays frozen after Ctrl-C: well past the 60 ms the tsx wrapper allowed. */
const FROZEN_MS = 500;

/** The process running the pipeline (`dev/start.ts`) in a job: the one whose parent is not also one. */
function pipelineProcess(pgid: number): number {
  const out = execFileSync('ps', ['-eo', 'pid=,ppid=,pgid=,args='], { encoding: 'utf8' });
  const rows = out
    .split('\n')
    .map((l) => l.trim().match(/^(\d+)\s+(\d+)\s+(\d+)\s+(.*)$/))
    .filter((m): m is RegExpMatchArray => m !== null && Number(m[3]) === pgid && /^(\S*\/)?node\s.*dev\/start\.ts/.test(m[4] as string))
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]) }));
  const pids = new Set(rows.map((r) => r.pid));
  const leaves = rows.filter((r) => !rows.some((o) => o.ppid === r.pid && pids.has(o.pid)));
  expect(leaves, out).toHaveLength(1);
  return (leaves[0] as { pid: number }).pid;
}

/** Signals pending at a process (its own and its thread group's), from /proc. */
function pendingSignals(pid: number): Set<string> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const names = new Map(Object.entries(osConstants.signals).map(([name, n]) => [n, name]));
  const pending = new Set<string>();
  for (const field of ['SigPnd', 'ShdPnd']) {
    const mask = BigInt(`0x${status.match(new RegExp(`^${field}:\\s*([0-9a-f]+)`, 'm'))?.[1] ?? '0'}`);
    for (let n = 1; n <= 64; n++) if ((mask >> BigInt(n - 1)) & 1n) pending.add(names.get(n) ?? `signal ${n}`);
  }
  return pending;
}

/** A process's state letter (R, S, T, Z, ...), or 'gone'. */
function processState(pid: number): string {
  if (!existsSync(`/proc/${pid}/stat`)) return 'gone';
  return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] as string;
}

describe('npm start', () => {
  it('runs the demo pipeline, prints node events, and stops cleanly on Ctrl-C with nothing left running', async () => {
    // A new process group, as a terminal gives a foreground job; Ctrl-C signals the whole group.
    const child = spawn('npm', ['start'], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const pgid = child.pid as number;
    try {
      await waitFor(() => (out.match(/^node\.(inserted|updated|deleted)/gm) ?? []).length >= 8, { timeoutMs: 90_000, message: () => `node events from the demo; output so far:\n${out}` });
      // The demo wrote its history before the slot existed: live rows come after it.
      expect(out).toMatch(/^demo shop: 1,000 customers, 5,000 orders and [\d,]+ order items written before the slot exists/m);
      expect(out).toMatch(/^node\.inserted\s+customers customers:\d+ /m);
      expect(out).toMatch(/^node\.inserted\s+order_items order_items:\d+:1 /m);
      expect(out).toMatch(/^node\.updated\s+orders orders:\d+\s+total: "0\.00" → "\d+\.\d\d"/m);
      // The slot guardian ran on the demo database and said what it did.
      await waitFor(() => out.includes('guardian: requested the initial load of public.customers, public.order_items, public.orders, public.products'), {
        timeoutMs: 30_000,
        message: () => `the guardian's first run; output so far:\n${out.slice(-2000)}`,
      });
      // The streamer loads them while the workload goes on: a line when each table's load starts
      // and when it completes, then a summary; the snapshot rows are counted, not printed.
      const demoLabels = ['customers', 'order_items', 'orders', 'products'];
      await waitFor(() => /^bootstrap done: 4 tables, [\d,]+ rows in [\d.]+ s, alongside [\d,]+ live events$/m.test(out), {
        timeoutMs: 60_000,
        message: () => `the bootstrap of the demo's history; output so far:\n${out.slice(-3000)}`,
      });
      const loaded = new Map<string, number>();
      for (const label of demoLabels) {
        expect(out).toMatch(new RegExp(`^snapshot ▶ ${label} \\(initial\\)$`, 'm'));
        const done = out.match(new RegExp(`^snapshot ✓ ${label}: ([\\d,]+) rows? in [\\d.]+ s$`, 'm'));
        expect(done, `the completion line of ${label}`).not.toBeNull();
        loaded.set(label, Number((done?.[1] ?? '').replaceAll(',', '')));
      }
      // Each load read at least what the demo wrote before the slot (the live workload adds some).
      expect(loaded.get('customers')).toBeGreaterThanOrEqual(1_000);
      expect(loaded.get('orders')).toBeGreaterThanOrEqual(5_000);
      expect(loaded.get('order_items')).toBeGreaterThanOrEqual(10_000);
      expect(loaded.get('products')).toBe(3);
      const loadedRows = [...loaded.values()].reduce((a, b) => a + b, 0);
      expect(out).toContain(`bootstrap done: 4 tables, ${loadedRows.toLocaleString('en-US')} rows in `);
      // Without a terminal a status line comes every 10 s, so the few seconds of loading may fall
      // between two (the terminal test below sees it): any progress shown names a demo table and
      // at most the rows its load ended with. The status line counts every snapshot row received.
      for (const [, table, read] of out.matchAll(/^status: .* \| loading (\w+) ([\d,]+)(?:\/[\d,]+| rows)/gm)) {
        expect(demoLabels).toContain(table);
        expect(Number((read as string).replaceAll(',', ''))).toBeLessThanOrEqual(loaded.get(table as string) as number);
      }
      const snapshotRowsOnStatus = () => Math.max(0, ...[...out.matchAll(/^status: [\d,]+ events \(([\d,]+) snapshot rows\)/gm)].map((m) => Number((m[1] as string).replaceAll(',', ''))));
      await waitFor(() => snapshotRowsOnStatus() >= loadedRows, { timeoutMs: 30_000, message: () => `a status line counting ${loadedRows} snapshot rows; output:\n${out.slice(-2000)}` });
      const printedEvents = (out.match(/^node\.(inserted|updated|deleted)/gm) ?? []).length;
      expect(printedEvents).toBeLessThan(loadedRows / 10); // one line per live event, none per snapshot row
      const runningPostgres = postgresProcessesOf(groupMembers(pgid));
      expect(runningPostgres.length).toBeGreaterThan(0); // the embedded server is part of the job

      process.kill(-pgid, 'SIGINT');
      // npm itself ends on the SIGINT (as it does in a terminal); pgrelay finishes its shutdown
      // and says so on the same output.
      const npmExit = await exited;
      expect(npmExit.code === 0 || npmExit.signal === 'SIGINT').toBe(true);
      await waitFor(() => /stopped cleanly after \d+ s: [\d,]+ node events/.test(out), { timeoutMs: 30_000, message: () => `a clean stop; output:\n${out.slice(-2000)}` });
      expect(out).not.toMatch(/\n\s+at .+:\d+:\d+/); // no stack trace
      await waitFor(() => groupMembers(pgid).length === 0, { timeoutMs: 15_000, message: 'every process of the job exited' });
    } finally {
      if (groupMembers(pgid).length > 0) process.kill(-pgid, 'SIGKILL');
    }
  }, 150_000);

  it('a Ctrl-C the pipeline is slow to see still ends in a clean stop (regression: the tsx wrapper SIGKILLed it after 60 ms)', async () => {
    const child = spawn('npm', ['start'], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const pgid = child.pid as number;
    try {
      await waitFor(() => /^node\.inserted/m.test(out), { timeoutMs: 90_000, message: () => `node events from the demo; output so far:\n${out}` });
      const pipeline = pipelineProcess(pgid);
      // A busy machine, made deterministic: the pipeline is frozen when Ctrl-C reaches the job
      // and for a while after, as a process starved of CPU would be. The `tsx` command's wrapper
      // gave its child 2 × 30 ms to report the signal, then killed it.
      process.kill(pipeline, 'SIGSTOP');
      try {
        // Stopped first: a SIGINT sent alongside would be taken before the (higher-numbered) SIGSTOP.
        await waitFor(() => processState(pipeline) === 'T', { message: 'the pipeline frozen' });
        process.kill(-pgid, 'SIGINT');
        await waitFor(() => pendingSignals(pipeline).has('SIGINT'), { message: 'SIGINT pending at the frozen pipeline' });
        await delay(FROZEN_MS);
        expect(processState(pipeline)).toBe('T'); // still there, still frozen: nothing killed it
      } finally {
        if (processState(pipeline) !== 'gone') process.kill(pipeline, 'SIGCONT');
      }
      await waitFor(() => /stopped cleanly after \d+ s: [\d,]+ node events/.test(out), { timeoutMs: 60_000, message: () => `a clean stop; output:\n${out.slice(-3000)}` });
      await waitFor(() => groupMembers(pgid).length === 0, { timeoutMs: 15_000, message: 'every process of the job exited' });
    } finally {
      if (groupMembers(pgid).length > 0) process.kill(-pgid, 'SIGKILL');
    }
  }, 150_000);

  it('in a terminal: coloured event lines and a live status line with events/s, slot lag and the acknowledged LSN', async () => {
    // `script` runs the command in a pseudo-terminal, as a user's shell would.
    const child = spawn('script', ['-qfec', 'npm start', '/dev/null'], { cwd: root, detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '', TERM: 'xterm' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const pgid = child.pid as number;
    try {
      await waitFor(() => /[\d,]+ events( \([\d,]+ snapshot rows\))?, [\d.]+\/s( \| (loading|bootstrap:) [^|\x1b]+)? \| slot lag [\d.]+ (bytes|KiB|MiB) \| acknowledged [0-9A-F]+\/[0-9A-F]+/.test(out) && out.includes('\x1b[32mnode.inserted'), {
        timeoutMs: 90_000,
        message: () => `status line and coloured events in the terminal; output:\n${out.slice(-3000)}`,
      });
      // The status line (redrawn every second) shows the load under way, or the load was quicker
      // than that and its summary line came.
      await waitFor(() => /\| (loading \w+ [\d,]+(\/[\d,]+| rows)|bootstrap: \d+ tables? queued)/.test(out) || /bootstrap done: 4 tables, [\d,]+ rows/.test(out), {
        timeoutMs: 60_000,
        message: () => `loading progress or the bootstrap's summary in the terminal; output:\n${out.slice(-3000)}`,
      });
      const sid = ptySession(pgid);
      expect(sid).toBeDefined();
      expect(postgresProcessesOf(sessionMembers(sid as number)).length).toBeGreaterThan(0);
      child.stdin.write('\x03'); // Ctrl-C typed into the terminal: its line discipline signals the job
      await waitFor(() => out.includes('stopped cleanly'), { timeoutMs: 30_000, message: () => `a clean stop in the terminal; output:\n${out.slice(-3000)}` });
      await waitFor(() => sessionMembers(sid as number).length === 0 && groupMembers(pgid).length === 0, { timeoutMs: 15_000, message: 'every process of the terminal job exited' });
    } finally {
      if (groupMembers(pgid).length > 0) process.kill(-pgid, 'SIGKILL');
    }
  }, 150_000);

  it('with --database-url streams the user\'s own tables and writes nothing to them', async () => {
    const db = await testDatabase('npmstart');
    await withClient(db.url, (c) => c.query('CREATE TABLE notes (id int PRIMARY KEY, body text)'));
    const child = spawn('npm', ['start', '--', '--database-url', db.url, '--tables', 'public.notes'], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const pgid = child.pid as number;
    try {
      await waitFor(() => out.includes('watching your tables'), { timeoutMs: 60_000, message: () => `startup; output:\n${out}` });
      await withClient(db.url, (c) => c.query(`INSERT INTO notes VALUES (1, 'hello')`));
      await waitFor(() => /^node\.inserted\s+notes notes:1\s+id: 1, body: "hello"/m.test(out), { timeoutMs: 30_000, message: () => `the user's change as a node event; output:\n${out}` });
      const tables = await withClient(db.url, (c) => c.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`));
      expect(tables.rows.map((r) => r.t)).toEqual(['notes']); // no demo schema, no demo writes
      // Nor the guardian's state schema: it runs on the demo database only.
      expect((await withClient(db.url, (c) => c.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgrelay'`))).rows).toEqual([]);
      expect(out).not.toContain('guardian');
      process.kill(-pgid, 'SIGINT');
      await waitFor(() => out.includes('stopped cleanly'), { timeoutMs: 30_000 });
      await waitFor(() => groupMembers(pgid).length === 0, { timeoutMs: 15_000 });
      // The run created the slot and publication, so it removed them: no WAL retained for it.
      const left = await withClient(db.url, (c) =>
        c.query<{ n: number }>(`SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database())::int + (SELECT count(*) FROM pg_publication)::int AS n`),
      );
      expect(left.rows[0]!.n).toBe(0);
      expect(out).toContain('dropped replication slot pgrelay_local (created by this run)');
    } finally {
      if (groupMembers(pgid).length > 0) process.kill(-pgid, 'SIGKILL');
      await db.drop();
    }
  }, 120_000);

  it('names a missing table and the fix in one sentence', async () => {
    const db = await testDatabase('npmstartmissing');
    try {
      const child = spawn('npm', ['start', '--', '--database-url', db.url, '--tables', 'public.nope'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      expect(code).not.toBe(0);
      expect(out).toContain('pgrelay: table public.nope does not exist');
      expect(out).not.toMatch(/\n\s+at .+:\d+:\d+/);
    } finally {
      await db.drop();
    }
  }, 60_000);

  it('says in one sentence what is wrong when the database cannot be reached', async () => {
    const child = spawn('npm', ['start', '--', '--database-url', 'postgres://nobody:secret@127.0.0.1:1/nowhere', '--tables', 'public.orders'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).not.toBe(0);
    expect(out).toContain('pgrelay: nothing accepts connections at 127.0.0.1:1/nowhere: start PostgreSQL or fix the host and port');
    expect(out).not.toContain('secret');
    expect(out).not.toMatch(/\n\s+at .+:\d+:\d+/);
  }, 60_000);
});
