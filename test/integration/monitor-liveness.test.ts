/**
 * The monitor's liveness rule against the real PostgreSQL, real streamer processes and the SQS
 * emulator, with ECS played by the loopback stand-in (test/helpers/fake-ecs.ts) and reached
 * through the production wrapper (ecsServiceControl → SDK → HTTP), so every stop the monitor
 * asks for passes the stand-in's request checks. The monitor's clock is `deps.now`: a test
 * moves it forward between runs instead of waiting.
 */
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { PgRelayError } from '#core/errors.ts';
import { parseLsn } from '#core/position.ts';
import { ConnectionProvider } from '#shared/connection.ts';
import { parseMonitorConfig, type MonitorConfig, type MonitorConfigInput } from '#monitor/config.ts';
import { ecsServiceControl, truncateReason } from '#monitor/ecs.ts';
import type { Action, StreamerService } from '#monitor/guardian.ts';
import { runMonitor, type MonitorSummary } from '#monitor/handler.ts';
import { emfProblems } from '#test/helpers/emf.ts';
import { startFakeEcs, type FakeEcs } from '#test/helpers/fake-ecs.ts';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { confirmedLsn, currentLsn, onCleanup, runCleanups, runStreamer, setupDbAndQueue, type Db } from '#test/helpers/scenario.ts';
import { receiveUntil, type ReceivedMessage } from '#test/helpers/sqs.ts';
import { changesOf, slotNameFor, spawnStreamer, streamerConfig } from '#test/helpers/streamer.ts';
import { waitFor, waitForValue } from '#test/helpers/wait.ts';

afterEach(runCleanups);

const CLUSTER = 'pgrelay';
const SERVICE = 'streamer';
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };
/** The monitor's clock at the first run of each test (epoch ms). */
const T0 = 1_900_000_000_000;
const at = (seconds: number) => T0 + seconds * 1000;
const iso = (seconds: number) => new Date(at(seconds)).toISOString();

async function fakeEcs(): Promise<FakeEcs> {
  const ecs = await startFakeEcs();
  onCleanup(() => ecs.close());
  return ecs;
}

/** A fresh database with table `items`, its publication and a pgoutput slot nobody consumes. */
async function idleSlot(hint: string): Promise<{ db: Db; slot: string }> {
  const db = await testDatabase(hint);
  onCleanup(() => db.drop());
  const slot = slotNameFor(db.url);
  await withClient(db.url, async (c) => {
    await c.query('CREATE TABLE items (id int PRIMARY KEY, body text)');
    await c.query(`CREATE PUBLICATION ${slot} FOR TABLE items`);
    await c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  });
  return { db, slot };
}

function monitorConfig(db: Db, slot: string, ecs?: FakeEcs, extra: Partial<MonitorConfigInput> = {}): MonitorConfig {
  return parseMonitorConfig({
    sourceId: 'liveness',
    database: { url: db.url },
    slotName: slot,
    publicationName: slot,
    tables: ['public.items'],
    ...(ecs !== undefined ? { ecs: { cluster: CLUSTER, service: SERVICE }, region: ecs.region, ecsEndpoint: ecs.endpoint } : {}),
    ...extra,
  });
}

/** The production wrapper, pointed at the stand-in the config names (as handler() builds it). */
function serviceFor(cfg: MonitorConfig): StreamerService {
  if (cfg.ecs === undefined || cfg.ecsEndpoint === undefined) throw new Error('config names no ECS service');
  return ecsServiceControl(cfg.ecs, { region: cfg.region, endpoint: cfg.ecsEndpoint, credentials: CREDENTIALS });
}

/** One monitor run at `nowMs`, with the lines it printed and what it threw, if it did. */
async function attempt(cfg: MonitorConfig, nowMs: number, service?: StreamerService) {
  const lines: string[] = [];
  let summary: MonitorSummary | undefined;
  let error: unknown;
  try {
    summary = await runMonitor(cfg, {
      connections: new ConnectionProvider(cfg.database),
      write: (line) => void lines.push(line),
      now: () => nowMs,
      ...(service !== undefined ? { service } : {}),
    });
  } catch (err) {
    error = err;
  }
  expect(lines, 'one EMF document per run').toHaveLength(1);
  const doc = JSON.parse(lines[0] as string) as Record<string, unknown>;
  expect(emfProblems(doc)).toEqual([]);
  expect((doc._aws as { Timestamp: number }).Timestamp).toBe(nowMs);
  return { summary, error, doc };
}

/** A run that must succeed. */
async function monitor(cfg: MonitorConfig, nowMs: number, service?: StreamerService) {
  const r = await attempt(cfg, nowMs, service);
  if (r.error !== undefined) throw r.error;
  return { summary: r.summary as MonitorSummary, doc: r.doc };
}

const stops = (actions: Action[]) => actions.filter((a) => a.kind === 'stop-task');
const codes = (summary: MonitorSummary) => summary.findings.map((f) => f.code);
const finding = (summary: MonitorSummary, code: string) => summary.findings.find((f) => f.code === code);
const stopCalls = (ecs: FakeEcs) => ecs.calls.filter((c) => c.action === 'StopTask').map((c) => ({ status: c.status, body: c.body, ...(c.errorType ? { errorType: c.errorType } : {}) }));
const serviceTasks = (ecs: FakeEcs) => ecs.tasks({ cluster: CLUSTER, service: SERVICE });
const runningTask = (ecs: FakeEcs) => {
  const running = ecs.tasks({ cluster: CLUSTER, service: SERVICE, lastStatus: 'RUNNING' });
  expect(running).toHaveLength(1);
  return (running[0] as { taskArn: string }).taskArn;
};

describe('monitor liveness: stopping a streamer task that does not stream', () => {
  it('stops the running task when the slot has had no streamer for inactiveSeconds, then once per cool-down', async () => {
    const { db, slot } = await idleSlot('liveness_inactive');
    const ecs = await fakeEcs();
    const { taskArns } = ecs.addService({ cluster: CLUSTER, name: SERVICE, desiredCount: 1 });
    const first = taskArns[0] as string;
    const cfg = monitorConfig(db, slot, ecs);
    expect(cfg.liveness).toEqual({ inactiveSeconds: 300, stalledSeconds: 600, cooldownSeconds: 900 });
    const service = serviceFor(cfg);

    // t0: the slot is found inactive now, so it has been inactive 0 s; ECS is not even asked.
    const r0 = await monitor(cfg, at(0), service);
    expect(r0.summary.inactiveSeconds).toBe(0);
    expect(r0.doc).toMatchObject({ SlotActive: 0, SlotInactiveSeconds: 0, StreamerTasksStopped: 0 });
    expect(stops(r0.summary.actions)).toEqual([]);
    expect(codes(r0.summary).filter((c) => c.startsWith('STREAMER_'))).toEqual([]);
    expect(ecs.calls).toEqual([]);

    // t0 + 301 s: past the 300 s limit while ECS says the service runs: its task is stopped.
    const reason1 = `replication slot ${slot} has had no streamer connected for 301 s (limit 300 s)`;
    const r1 = await monitor(cfg, at(301), service);
    expect(r1.summary.inactiveSeconds).toBe(301);
    expect(r1.summary.actions.filter((a) => a.kind !== 'heartbeat')).toEqual([{ kind: 'stop-task', taskArn: first, reason: `pgrelay monitor: ${reason1}` }]);
    expect(stopCalls(ecs)).toEqual([{ status: 200, body: { cluster: CLUSTER, task: first, reason: `pgrelay monitor: ${reason1}` } }]);
    // The state was read first, with the request shapes the stand-in accepts.
    expect(ecs.calls.map((c) => [c.action, c.status])).toEqual([
      ['DescribeServices', 200],
      ['ListTasks', 200],
      ['StopTask', 200],
    ]);
    expect(finding(r1.summary, 'STREAMER_STOPPED')).toEqual({
      code: 'STREAMER_STOPPED',
      severity: 'warning',
      message: `${reason1}; stopped ${first} so ECS service ${SERVICE} in cluster ${CLUSTER} starts a fresh task`,
    });
    expect(r1.doc).toMatchObject({ StreamerTasksStopped: 1, SlotInactiveSeconds: 301, SlotActive: 0 });
    // In the stand-in: the task is STOPPED with that reason, and the scheduler's replacement runs.
    const afterFirstStop = serviceTasks(ecs);
    expect(afterFirstStop).toHaveLength(2);
    expect(afterFirstStop[0]).toMatchObject({ taskArn: first, lastStatus: 'STOPPED', desiredStatus: 'STOPPED', stoppedReason: `pgrelay monitor: ${reason1}` });
    expect(afterFirstStop[1]).toMatchObject({ lastStatus: 'RUNNING', desiredStatus: 'RUNNING' });
    const replacement = runningTask(ecs);
    expect(replacement).not.toBe(first);
    // The stop is remembered in the source database, where the cool-down counts from.
    const [watch] = await withClient(db.url, async (c) => (await c.query<{ last_stop_at: Date; last_stop_reason: string }>('SELECT last_stop_at, last_stop_reason FROM pgrelay.slot_watch WHERE slot_name = $1', [slot])).rows);
    expect(watch?.last_stop_at.getTime()).toBe(at(301));
    expect(watch?.last_stop_reason).toBe(reason1);

    // t0 + 400 s: still no streamer, but within the 900 s cool-down: nothing stopped, and it says until when.
    const callsBefore = ecs.calls.length;
    const r2 = await monitor(cfg, at(400), service);
    expect(stops(r2.summary.actions)).toEqual([]);
    expect(r2.doc.StreamerTasksStopped).toBe(0);
    expect(stopCalls(ecs)).toHaveLength(1);
    expect(ecs.calls.slice(callsBefore).map((c) => c.action)).toEqual(['DescribeServices', 'ListTasks']);
    const coolDown = finding(r2.summary, 'STREAMER_STUCK');
    expect(coolDown?.severity).toBe('critical');
    expect(coolDown?.message).toContain(`no streamer connected for 400 s (limit 300 s)`);
    expect(coolDown?.message).toContain(`a task was already stopped at ${iso(301)}`);
    expect(coolDown?.message).toContain(`the next stop waits for the cool-down until ${iso(301 + 900)}`);
    expect(runningTask(ecs)).toBe(replacement);

    // t0 + 301 + 901 s: the cool-down is over and the slot still has no streamer: the replacement goes too.
    const reason2 = `replication slot ${slot} has had no streamer connected for ${301 + 901} s (limit 300 s)`;
    const r3 = await monitor(cfg, at(301 + 901), service);
    expect(stops(r3.summary.actions)).toEqual([{ kind: 'stop-task', taskArn: replacement, reason: `pgrelay monitor: ${reason2}` }]);
    expect(stopCalls(ecs)).toHaveLength(2);
    expect(stopCalls(ecs)[1]).toEqual({ status: 200, body: { cluster: CLUSTER, task: replacement, reason: `pgrelay monitor: ${reason2}` } });
    expect(r3.doc.StreamerTasksStopped).toBe(1);
    expect(codes(r3.summary)).toContain('STREAMER_STOPPED');
    const afterSecondStop = serviceTasks(ecs);
    expect(afterSecondStop.map((t) => t.lastStatus)).toEqual(['STOPPED', 'STOPPED', 'RUNNING']);
    expect(afterSecondStop[1]).toMatchObject({ taskArn: replacement, stoppedReason: `pgrelay monitor: ${reason2}` });
  });

  it('stops a streamer that holds the slot but acknowledges nothing while WAL grows; its replacement loses no row', async () => {
    const { db, queue } = await setupDbAndQueue('liveness_stuck', 'CREATE TABLE items (id int PRIMARY KEY, body text)');
    const slot = slotNameFor(db.url);
    const streamerCfg = streamerConfig({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['items'], partitions: 2, publicationName: slot });
    const ecs = await fakeEcs();
    const cfg = monitorConfig(db, slot, ecs);
    const service = serviceFor(cfg);

    // Each ECS task of the service is a real streamer process.
    const processes = new Map<string, ReturnType<typeof spawnStreamer>>();
    const launch = async (taskArn: string) => {
      const p = spawnStreamer(streamerCfg);
      processes.set(taskArn, p);
      onCleanup(async () => {
        // A stopped process still holds its connection: wake it so nothing lingers, then kill it.
        p.child.kill('SIGCONT');
        p.child.kill('SIGKILL');
        await p.exited;
      });
      await waitFor(() => p.output().includes('"msg":"streaming"'), { timeoutMs: 30_000, message: `streamer of ${taskArn} streaming` });
      return p;
    };
    const { taskArns } = ecs.addService({ cluster: CLUSTER, name: SERVICE, desiredCount: 1 });
    const firstTask = taskArns[0] as string;
    const first = await launch(firstTask);

    const received: ReceivedMessage[] = [];
    const receivedIds = () => new Set(changesOf(received).map((c) => c.key?.id as number));
    const receiveIds = async (upTo: number) => {
      received.push(...(await receiveUntil(queue.client, queue.queueUrl, (ms) => new Set([...receivedIds(), ...changesOf(ms).map((c) => c.key?.id as number)]).size >= upTo, 30_000)));
    };
    const insert = (from: number, to: number) => withClient(db.url, (c) => c.query(`INSERT INTO items SELECT g, repeat('x', 100) FROM generate_series($1::int, $2::int) g`, [from, to]));

    await insert(1, 50);
    await receiveIds(50);

    // Freeze it: the process keeps its connection (the slot stays active) but reads and acknowledges nothing.
    // The monitor's clock is simulated, so two runs are milliseconds apart in real time, when even a
    // healthy streamer may not have acknowledged yet: that the streamer is frozen is checked here, on
    // the process itself (state T, "stopped by a signal").
    const pid = first.child.pid as number;
    const processState = async () => (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '').charAt(0);
    expect(first.child.kill('SIGSTOP')).toBe(true);
    await waitFor(async () => (await processState()) === 'T', { message: 'streamer process stopped (state T)' });
    const sentLsn = async () => {
      const rows = await withClient(db.url, async (c) =>
        (await c.query<{ sent: string | null }>(`SELECT r.sent_lsn::text AS sent FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1`, [slot])).rows,
      );
      return rows[0]?.sent != null ? parseLsn(rows[0].sent) : 0n;
    };
    const beforeStuckWrites = await currentLsn(db.url);
    await insert(51, 100);
    // The walsender has decoded WAL written after the freeze, so it has also taken in any reply
    // the streamer sent before it: from here on, the acknowledged position cannot move.
    await waitFor(async () => (await sentLsn()) > beforeStuckWrites, { timeoutMs: 20_000, message: 'walsender decoding past the freeze' });

    // t0: the monitor records the position (first look: no age yet), the slot is active.
    const r0 = await monitor(cfg, at(0), service);
    expect(r0.summary.slotState).toBe('ok');
    expect(r0.doc.SlotActive).toBe(1);
    expect(r0.summary.lastAckAgeSeconds).toBeNull();
    expect(r0.summary.lagBytes).toBeGreaterThan(0);
    expect(ecs.calls).toEqual([]);

    // The t0 heartbeat went down the streamer's connection too, and nothing came back for it.
    const heartbeat = parseLsn((r0.summary.actions.find((a) => a.kind === 'heartbeat') as { lsn: string }).lsn);
    await waitFor(async () => (await sentLsn()) >= heartbeat, { timeoutMs: 20_000, message: 'walsender sent the heartbeat' });
    expect(await processState()).toBe('T');
    expect(await confirmedLsn(db.url)).toBe(parseLsn(r0.doc.confirmedFlushLsn as string));

    // t0 + 601 s: position unchanged for 601 s while WAL waits after it: the task is stopped.
    const r1 = await monitor(cfg, at(601), service);
    expect(r1.doc.confirmedFlushLsn).toBe(r0.doc.confirmedFlushLsn);
    expect(r1.summary.lastAckAgeSeconds).toBe(601);
    expect(r1.doc).toMatchObject({ SlotActive: 1, SlotLastAckAgeSeconds: 601, StreamerTasksStopped: 1 });
    expect(r1.summary.lagBytes).toBeGreaterThan(r0.summary.lagBytes as number);
    const [action] = stops(r1.summary.actions);
    expect(stops(r1.summary.actions)).toHaveLength(1);
    expect(action).toMatchObject({ kind: 'stop-task', taskArn: firstTask });
    const reason = (action as { reason: string }).reason;
    expect(reason).toContain(`pgrelay monitor: the streamer (pid ${String(r0.doc.activePid)}) holds replication slot ${slot} but has acknowledged nothing for 601 s (limit 600 s)`);
    expect(reason).toContain(`bytes of WAL wait after ${String(r0.doc.confirmedFlushLsn)}`);
    expect(finding(r1.summary, 'STREAMER_STOPPED')?.message).toContain(`stopped ${firstTask} so ECS service ${SERVICE} in cluster ${CLUSTER} starts a fresh task`);

    // ECS's part: when the stand-in has taken the StopTask, the task's process is killed (a frozen
    // process never handles SIGTERM, so it is the SIGKILL after the stop timeout) and the
    // scheduler's replacement starts.
    const stopCall = await waitForValue(() => ecs.calls.find((c) => c.action === 'StopTask'), { message: 'StopTask at the stand-in' });
    expect(stopCall).toMatchObject({ status: 200, body: { cluster: CLUSTER, task: firstTask, reason: truncateReason(reason) } });
    expect(ecs.tasks({ cluster: CLUSTER, service: SERVICE, lastStatus: 'STOPPED' }).map((t) => [t.taskArn, t.stoppedReason])).toEqual([[firstTask, truncateReason(reason)]]);
    const stopped = processes.get((stopCall.body as { task: string }).task);
    expect(stopped).toBe(first);
    stopped?.child.kill('SIGKILL');
    await stopped?.exited;
    expect(first.child.signalCode).toBe('SIGKILL');

    const replacementTask = runningTask(ecs);
    expect(replacementTask).not.toBe(firstTask);
    await launch(replacementTask);
    await insert(101, 150);
    const end = await currentLsn(db.url);

    // Nothing lost: the rows the frozen streamer never acknowledged come from the replacement.
    await receiveIds(150);
    expect([...receivedIds()].sort((a, b) => a - b)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));

    // Once the replacement acknowledges, the monitor sees a healthy slot and stops nothing more.
    await waitFor(async () => (await confirmedLsn(db.url)) >= end, { timeoutMs: 20_000, message: 'replacement acknowledged the new rows' });
    const r2 = await monitor(cfg, at(700), service);
    expect(r2.summary.lastAckAgeSeconds).toBe(0);
    expect(r2.doc).toMatchObject({ SlotActive: 1, SlotLastAckAgeSeconds: 0, StreamerTasksStopped: 0 });
    expect(codes(r2.summary).filter((c) => c.startsWith('STREAMER_'))).toEqual([]);
    expect(stopCalls(ecs)).toHaveLength(1);
  });

  it('leaves a healthy streamer alone: its position moves every run (the heartbeat), so the ack age stays 0', async () => {
    const { db, queue } = await setupDbAndQueue('liveness_healthy', 'CREATE TABLE items (id int PRIMARY KEY, body text)');
    const slot = slotNameFor(db.url);
    const streamer = runStreamer({ dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['items'], partitions: 1, publicationName: slot });
    await streamer.ready;
    const ecs = await fakeEcs();
    const { taskArns } = ecs.addService({ cluster: CLUSTER, name: SERVICE, desiredCount: 1 });
    const cfg = monitorConfig(db, slot, ecs);
    const service = serviceFor(cfg);

    const heartbeatOf = (actions: Action[]) => {
      const hb = actions.find((a): a is Extract<Action, { kind: 'heartbeat' }> => a.kind === 'heartbeat');
      expect(hb).toBeDefined();
      return parseLsn((hb as { lsn: string }).lsn);
    };

    const r0 = await monitor(cfg, at(0), service);
    expect(r0.doc.SlotActive).toBe(1);
    expect(r0.summary.lastAckAgeSeconds).toBeNull();
    expect(r0.doc).not.toHaveProperty('SlotLastAckAgeSeconds');
    let heartbeat = heartbeatOf(r0.summary.actions);

    for (const seconds of [700, 1400]) {
      // The streamer acknowledges the heartbeat the last run wrote, though no published row changed.
      await waitFor(async () => (await confirmedLsn(db.url)) >= heartbeat, { timeoutMs: 20_000, message: `heartbeat ${heartbeat} acknowledged` });
      const r = await monitor(cfg, at(seconds), service);
      expect(r.summary.lastAckAgeSeconds).toBe(0);
      expect(r.doc).toMatchObject({ SlotActive: 1, SlotLastAckAgeSeconds: 0, SlotInactiveSeconds: 0, StreamerTasksStopped: 0 });
      expect(stops(r.summary.actions)).toEqual([]);
      expect(codes(r.summary).filter((c) => c.startsWith('STREAMER_'))).toEqual([]);
      heartbeat = heartbeatOf(r.summary.actions);
    }
    // Nothing called for ECS at all, and the task still runs.
    expect(ecs.calls).toEqual([]);
    expect(serviceTasks(ecs).map((t) => [t.taskArn, t.lastStatus])).toEqual([[taskArns[0], 'RUNNING']]);
    expect(streamer.streamer.stats().changes).toBe(0);
  });

  it('does not stop anything when the service is scaled to 0, and says so', async () => {
    const { db, slot } = await idleSlot('liveness_scaled_down');
    const ecs = await fakeEcs();
    ecs.addService({ cluster: CLUSTER, name: SERVICE, desiredCount: 0 });
    const cfg = monitorConfig(db, slot, ecs);
    const service = serviceFor(cfg);

    await monitor(cfg, at(0), service);
    const r = await monitor(cfg, at(301), service);
    const scaled = finding(r.summary, 'STREAMER_SCALED_DOWN');
    expect(scaled?.severity).toBe('critical');
    expect(scaled?.message).toBe(
      `replication slot ${slot} has had no streamer connected for 301 s (limit 300 s); ECS service ${SERVICE} in cluster ${CLUSTER} is scaled to 0 tasks, so nothing was stopped: PostgreSQL keeps WAL for the slot until a streamer runs again`,
    );
    expect(stops(r.summary.actions)).toEqual([]);
    expect(r.doc.StreamerTasksStopped).toBe(0);
    expect(ecs.calls.map((c) => [c.action, c.status])).toEqual([
      ['DescribeServices', 200],
      ['ListTasks', 200],
    ]);
    expect(serviceTasks(ecs)).toEqual([]);
  });

  it('without an ECS service configured, reports the streamer stuck and that it cannot restart it', async () => {
    const { db, slot } = await idleSlot('liveness_no_ecs');
    const cfg = monitorConfig(db, slot);
    expect(cfg.ecs).toBeUndefined();

    const r0 = await monitor(cfg, at(0));
    expect(codes(r0.summary)).not.toContain('STREAMER_STUCK');
    const r = await monitor(cfg, at(301));
    expect(finding(r.summary, 'STREAMER_STUCK')).toEqual({
      code: 'STREAMER_STUCK',
      severity: 'critical',
      message: `replication slot ${slot} has had no streamer connected for 301 s (limit 300 s); no ECS service is configured, so the monitor cannot restart it`,
    });
    expect(stops(r.summary.actions)).toEqual([]);
    expect(r.doc).toMatchObject({ StreamerTasksStopped: 0, SlotInactiveSeconds: 301 });
  });

  it('fails the run, naming ecs:StopTask, when ECS denies the stop, and prints MonitorRunFailed = 1', async () => {
    const { db, slot } = await idleSlot('liveness_denied');
    const ecs = await fakeEcs();
    const { taskArns } = ecs.addService({ cluster: CLUSTER, name: SERVICE, desiredCount: 1 });
    const task = taskArns[0] as string;
    const cfg = monitorConfig(db, slot, ecs);
    const service = serviceFor(cfg);

    await monitor(cfg, at(0), service);
    ecs.failNext('StopTask', { type: 'AccessDeniedException' });
    const denied = await attempt(cfg, at(301), service);

    expect(denied.summary).toBeUndefined();
    expect(denied.error).toBeInstanceOf(PgRelayError);
    expect(denied.error).toMatchObject({ code: 'PGRELAY_ECS_ACCESS_DENIED' });
    expect((denied.error as Error).message).toBe(
      `ECS StopTask on service "${SERVICE}" in cluster "${CLUSTER}" was denied: grant the monitor's role the IAM action ecs:StopTask.`,
    );
    // The failure document: only MonitorRunFailed, with the error that ended the run.
    expect(denied.doc).toMatchObject({
      Source: 'liveness',
      Slot: slot,
      MonitorRunFailed: 1,
      error: { code: 'PGRELAY_ECS_ACCESS_DENIED', message: expect.stringContaining('ecs:StopTask') },
    });
    expect(denied.doc).not.toHaveProperty('StreamerTasksStopped');
    // The request reached the stand-in well-formed and was refused there; the task still runs.
    expect(stopCalls(ecs)).toEqual([{ status: 400, errorType: 'AccessDeniedException', body: { cluster: CLUSTER, task, reason: expect.stringContaining('for 301 s (limit 300 s)') } }]);
    expect(serviceTasks(ecs).map((t) => [t.taskArn, t.lastStatus])).toEqual([[task, 'RUNNING']]);

    // Nothing was stopped, so no cool-down started: once the grant is there, the next run stops the task.
    const retry = await monitor(cfg, at(302), service);
    expect(stops(retry.summary.actions)).toEqual([{ kind: 'stop-task', taskArn: task, reason: `pgrelay monitor: replication slot ${slot} has had no streamer connected for 302 s (limit 300 s)` }]);
    expect(retry.doc).toMatchObject({ StreamerTasksStopped: 1, MonitorRunFailed: 0 });
    expect(stopCalls(ecs).map((c) => c.status)).toEqual([400, 200]);
  });
});
