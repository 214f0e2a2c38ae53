/**
 * The monitor's ECS control against the loopback ECS fake, through the real SDK client and HTTP;
 * then the fake on its own, fed raw requests (no SDK, whose client-side checks would hide what
 * the fake rejects).
 */
import { ClusterNotFoundException, ECSClient, ListTasksCommand } from '@aws-sdk/client-ecs';
import { afterEach, describe, expect, it } from 'vitest';
import { PgRelayError } from '#core/errors.ts';
import { ecsServiceControl, STOP_REASON_MAX_CHARS, type EcsServiceRef, type ServiceControl } from '#monitor/ecs.ts';
import {
  FAKE_ECS_TARGET_PREFIX,
  FAKE_MAX_DESCRIBE_SERVICES,
  FAKE_MAX_STOP_REASON_CHARS,
  startFakeEcs,
  type FakeEcs,
  type FakeEcsOptions,
} from '#test/helpers/fake-ecs.ts';

const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };
const REF: EcsServiceRef = { cluster: 'pgrelay', service: 'streamer' };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fake(opts: FakeEcsOptions = {}): Promise<FakeEcs> {
  const ecs = await startFakeEcs(opts);
  cleanups.push(() => ecs.close());
  return ecs;
}

function control(ecs: FakeEcs, ref: EcsServiceRef = REF, listTasksPageSize?: number): ServiceControl {
  return ecsServiceControl(ref, { region: ecs.region, endpoint: ecs.endpoint, credentials: CREDENTIALS, ...(listTasksPageSize ? { listTasksPageSize } : {}) });
}

/** The PgRelayError `promise` rejects with (fails the test when it resolves or throws something else). */
async function pgRelayErrorOf(promise: Promise<unknown>): Promise<PgRelayError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PgRelayError);
  return err as PgRelayError;
}

const bodiesOf = (ecs: FakeEcs, action: string) => ecs.calls.filter((c) => c.action === action).map((c) => c.body as Record<string, unknown>);

/** A lone UTF-16 surrogate, i.e. a string cut in the middle of a character. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

describe('ecsServiceControl against the ECS fake', () => {
  it('reads the state of a running service with DescribeServices and ListTasks', async () => {
    const ecs = await fake();
    const { taskArns } = ecs.addService({ cluster: 'pgrelay', name: 'streamer', desiredCount: 1 });

    const state = await control(ecs).state();

    expect(state).toEqual({ desiredCount: 1, runningCount: 1, pendingCount: 0, status: 'ACTIVE', runningTaskArns: taskArns });
    expect(bodiesOf(ecs, 'DescribeServices')).toEqual([{ cluster: 'pgrelay', services: ['streamer'] }]);
    expect(bodiesOf(ecs, 'ListTasks')).toEqual([{ cluster: 'pgrelay', serviceName: 'streamer', desiredStatus: 'RUNNING', maxResults: 100 }]);
    expect(ecs.calls.every((c) => c.status === 200)).toBe(true);
  });

  it('accepts the cluster and service as ARNs, and reports a service short of its desired count', async () => {
    const ecs = await fake();
    const { serviceArn, clusterArn, taskArns } = ecs.addService({ cluster: 'pgrelay', name: 'streamer', desiredCount: 2, running: 1 });

    const state = await control(ecs, { cluster: clusterArn, service: serviceArn }).state();

    expect(state).toMatchObject({ desiredCount: 2, runningCount: 1, runningTaskArns: taskArns });
  });

  it('stops a task with its reason, and the scheduler replacement shows in the next state', async () => {
    const ecs = await fake();
    const [stuck] = ecs.addService({ cluster: 'pgrelay', name: 'streamer' }).taskArns;
    const ctl = control(ecs);

    await ctl.stopTask(stuck!, 'pgrelay monitor: no checkpoint progress for 900 s');

    expect(ecs.tasks({ lastStatus: 'STOPPED' })).toEqual([
      expect.objectContaining({ taskArn: stuck, desiredStatus: 'STOPPED', stoppedReason: 'pgrelay monitor: no checkpoint progress for 900 s' }),
    ]);
    expect(bodiesOf(ecs, 'StopTask')).toEqual([{ cluster: 'pgrelay', task: stuck, reason: 'pgrelay monitor: no checkpoint progress for 900 s' }]);
    const state = await ctl.state();
    expect(state.runningCount).toBe(1);
    expect(state.runningTaskArns).toHaveLength(1);
    expect(state.runningTaskArns[0]).not.toBe(stuck);
    expect(state.runningTaskArns[0]).toMatch(/^arn:aws:ecs:us-east-1:123456789012:task\/pgrelay\/[0-9a-f]{32}$/);
  });

  it('without a replacing scheduler, a stopped task leaves the service with nothing running', async () => {
    const ecs = await fake({ replaceStoppedTasks: false });
    const [only] = ecs.addService({ cluster: 'pgrelay', name: 'streamer' }).taskArns;
    const ctl = control(ecs);

    await ctl.stopTask(only!, 'stuck');

    expect(await ctl.state()).toMatchObject({ desiredCount: 1, runningCount: 0, runningTaskArns: [] });
  });

  it('cuts an over-long stop reason to what StopTask accepts, never inside a character', async () => {
    const ecs = await fake();
    const [first, second] = ecs.addService({ cluster: 'pgrelay', name: 'streamer', desiredCount: 2 }).taskArns;
    const ctl = control(ecs);

    await ctl.stopTask(first!, `stuck: ${'x'.repeat(5_000)}`);
    await ctl.stopTask(second!, '🐘'.repeat(1_000)); // two UTF-16 units each

    const reasons = bodiesOf(ecs, 'StopTask').map((b) => b.reason as string);
    for (const reason of reasons) {
      expect(Array.from(reason)).toHaveLength(STOP_REASON_MAX_CHARS);
      expect(reason.endsWith('…')).toBe(true);
      expect(reason).not.toMatch(LONE_SURROGATE);
    }
    expect(reasons[0]!.startsWith('stuck: xxx')).toBe(true);
    expect(ecs.calls.map((c) => c.status)).toEqual([200, 200]);
  });

  it('follows ListTasks nextToken until every task of the service is listed', async () => {
    const ecs = await fake();
    const { taskArns } = ecs.addService({ cluster: 'pgrelay', name: 'streamer', desiredCount: 5 });
    ecs.addService({ cluster: 'pgrelay', name: 'other', desiredCount: 3 });

    const state = await control(ecs, REF, 2).state();

    expect(state.runningTaskArns).toEqual(taskArns);
    const pages = ecs.calls.filter((c) => c.action === 'ListTasks');
    expect(pages).toHaveLength(3);
    expect(pages.map((c) => (c.body as { nextToken?: string }).nextToken === undefined)).toEqual([true, false, false]);
    expect(pages.map((c) => c.status)).toEqual([200, 200, 200]);
  });

  it('an unknown cluster is an ECS_CLUSTER_NOT_FOUND error naming the cluster, the action and the region', async () => {
    const ecs = await fake();
    ecs.addService({ cluster: 'pgrelay', name: 'streamer' });

    const err = await pgRelayErrorOf(control(ecs, { cluster: 'pgrelay-typo', service: 'streamer' }).state());

    expect(err.code).toBe('PGRELAY_ECS_CLUSTER_NOT_FOUND');
    expect(err.message).toBe('ECS DescribeServices failed: cluster "pgrelay-typo" does not exist in region us-east-1.');
    expect((err.cause as Error).name).toBe('ClusterNotFoundException');
  });

  it('a service DescribeServices reports MISSING, or INACTIVE, is an ECS_SERVICE_NOT_FOUND error naming cluster and service', async () => {
    const ecs = await fake();
    ecs.addService({ cluster: 'pgrelay', name: 'streamer' });
    ecs.addService({ cluster: 'pgrelay', name: 'deleted', status: 'INACTIVE', running: 0 });

    const missing = await pgRelayErrorOf(control(ecs, { cluster: 'pgrelay', service: 'streamr' }).state());
    const inactive = await pgRelayErrorOf(control(ecs, { cluster: 'pgrelay', service: 'deleted' }).state());

    expect(missing.code).toBe('PGRELAY_ECS_SERVICE_NOT_FOUND');
    expect(missing.message).toContain('service "streamr" in cluster "pgrelay"');
    expect(missing.message).toContain('MISSING');
    expect(inactive.code).toBe('PGRELAY_ECS_SERVICE_NOT_FOUND');
    expect(inactive.message).toContain('service "deleted" in cluster "pgrelay"');
    expect(inactive.message).toContain('INACTIVE');
    // Neither went on to list tasks.
    expect(ecs.calls.map((c) => c.action)).toEqual(['DescribeServices', 'DescribeServices']);
  });

  it('a denied StopTask is an ECS_ACCESS_DENIED error naming the IAM action, and the task keeps running', async () => {
    const ecs = await fake();
    const [task] = ecs.addService({ cluster: 'pgrelay', name: 'streamer' }).taskArns;
    ecs.failNext('StopTask', { type: 'AccessDeniedException' });

    const err = await pgRelayErrorOf(control(ecs).stopTask(task!, 'stuck'));

    expect(err.code).toBe('PGRELAY_ECS_ACCESS_DENIED');
    expect(err.message).toBe(`ECS StopTask on service "streamer" in cluster "pgrelay" was denied: grant the monitor's role the IAM action ecs:StopTask.`);
    expect((err.cause as Error).name).toBe('AccessDeniedException');
    expect(ecs.tasks({ lastStatus: 'RUNNING' }).map((t) => t.taskArn)).toEqual([task]);
    // The injection was one-off: the same call now goes through.
    await control(ecs).stopTask(task!, 'stuck');
    expect(ecs.tasks({ lastStatus: 'STOPPED' }).map((t) => t.taskArn)).toEqual([task]);
  });

  it('a denied DescribeServices or ListTasks names its own IAM action', async () => {
    const ecs = await fake();
    ecs.addService({ cluster: 'pgrelay', name: 'streamer' });
    ecs.failNext('DescribeServices', { type: 'AccessDeniedException' });
    const describe = await pgRelayErrorOf(control(ecs).state());
    ecs.failNext('ListTasks', { type: 'AccessDeniedException' });
    const list = await pgRelayErrorOf(control(ecs).state());

    expect([describe.code, list.code]).toEqual(['PGRELAY_ECS_ACCESS_DENIED', 'PGRELAY_ECS_ACCESS_DENIED']);
    expect(describe.message).toContain('ecs:DescribeServices');
    expect(list.message).toContain('ecs:ListTasks');
  });

  it('stopping a task of another cluster is an ECS_INVALID_PARAMETER error and stops nothing', async () => {
    const ecs = await fake();
    ecs.addService({ cluster: 'pgrelay', name: 'streamer' });
    const [foreign] = ecs.addService({ cluster: 'elsewhere', name: 'streamer' }).taskArns;

    const err = await pgRelayErrorOf(control(ecs).stopTask(foreign!, 'stuck'));

    expect(err.code).toBe('PGRELAY_ECS_INVALID_PARAMETER');
    expect(err.message).toContain('StopTask');
    expect(err.message).toContain('The referenced task was not found.');
    expect(ecs.tasks({ lastStatus: 'STOPPED' })).toEqual([]);
  });

  it('any other AWS error is ECS_REQUEST_FAILED with its type', async () => {
    const ecs = await fake();
    ecs.addService({ cluster: 'pgrelay', name: 'streamer' });
    ecs.failNext('ListTasks', { type: 'ClientException', message: 'These errors are usually caused by a client action.' });

    const err = await pgRelayErrorOf(control(ecs).state());

    expect(err.code).toBe('PGRELAY_ECS_REQUEST_FAILED');
    expect(err.message).toContain('ECS ListTasks on service "streamer" in cluster "pgrelay" failed with ClientException');
  });

  it('answers errors in the JSON 1.1 shape the SDK turns into its named exception classes', async () => {
    const ecs = await fake();
    const client = new ECSClient({ region: ecs.region, endpoint: ecs.endpoint, credentials: CREDENTIALS });
    cleanups.push(() => client.destroy());

    await expect(client.send(new ListTasksCommand({ cluster: 'nope' }))).rejects.toBeInstanceOf(ClusterNotFoundException);
    expect(ecs.calls).toEqual([{ action: 'ListTasks', body: { cluster: 'nope' }, status: 400, errorType: 'ClusterNotFoundException', message: 'Cluster not found.' }]);
  });
});

/** A header of SigV4's shape: the fake checks the shape and the scope, not the signature. */
const SIGV4 = (scope = 'us-east-1/ecs') =>
  `AWS4-HMAC-SHA256 Credential=test/20260301/${scope}/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=${'0'.repeat(64)}`;

/** POSTs `body` (JSON-encoded unless a string) to the fake as `action`, bypassing the SDK. */
async function raw(ecs: FakeEcs, action: string, body: unknown, headers: Record<string, string | undefined> = {}): Promise<{ status: number; body: { __type?: string; message?: string } & Record<string, unknown> }> {
  const all: Record<string, string | undefined> = {
    'content-type': 'application/x-amz-json-1.1',
    'x-amz-target': `${FAKE_ECS_TARGET_PREFIX}${action}`,
    'x-amz-date': '20260301T100000Z',
    authorization: SIGV4(),
    ...headers,
  };
  const sent = Object.fromEntries(Object.entries(all).filter((e): e is [string, string] => e[1] !== undefined));
  const res = await fetch(ecs.endpoint, { method: 'POST', headers: sent, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { __type?: string } & Record<string, unknown> };
}

describe('the ECS fake rejects requests ECS would', () => {
  async function withService(): Promise<{ ecs: FakeEcs; task: string }> {
    const ecs = await fake();
    const [task] = ecs.addService({ cluster: 'pgrelay', name: 'streamer' }).taskArns;
    return { ecs, task: task! };
  }

  it('takes a well-formed raw request (the baseline the rejections below differ from)', async () => {
    const { ecs, task } = await withService();

    const res = await raw(ecs, 'ListTasks', { cluster: 'pgrelay', serviceName: 'streamer' });

    expect(res).toEqual({ status: 200, body: { taskArns: [task] } });
  });

  it('StopTask without task: InvalidParameterException, nothing stopped', async () => {
    const { ecs } = await withService();

    const res = await raw(ecs, 'StopTask', { cluster: 'pgrelay', reason: 'stuck' });

    expect(res.status).toBe(400);
    expect(res.body.__type).toBe('InvalidParameterException');
    expect(ecs.tasks({ lastStatus: 'STOPPED' })).toEqual([]);
  });

  it(`StopTask with a reason over ${FAKE_MAX_STOP_REASON_CHARS} characters: InvalidParameterException; at the limit it stops the task`, async () => {
    const { ecs, task } = await withService();

    const tooLong = await raw(ecs, 'StopTask', { cluster: 'pgrelay', task, reason: 'r'.repeat(1025) });
    const oneOver = await raw(ecs, 'StopTask', { cluster: 'pgrelay', task, reason: 'r'.repeat(FAKE_MAX_STOP_REASON_CHARS + 1) });
    expect([tooLong.status, tooLong.body.__type]).toEqual([400, 'InvalidParameterException']);
    expect([oneOver.status, oneOver.body.__type]).toEqual([400, 'InvalidParameterException']);
    expect(ecs.tasks({ lastStatus: 'STOPPED' })).toEqual([]);

    const atLimit = await raw(ecs, 'StopTask', { cluster: 'pgrelay', task, reason: 'r'.repeat(FAKE_MAX_STOP_REASON_CHARS) });
    expect(atLimit.status).toBe(200);
    expect(atLimit.body.task).toMatchObject({ taskArn: task, lastStatus: 'STOPPED', desiredStatus: 'STOPPED' });
  });

  it(`DescribeServices with 0 or more than ${FAKE_MAX_DESCRIBE_SERVICES} services: InvalidParameterException`, async () => {
    const { ecs } = await withService();
    const names = (n: number) => Array.from({ length: n }, (_, i) => `svc-${i}`);

    const eleven = await raw(ecs, 'DescribeServices', { cluster: 'pgrelay', services: names(11) });
    const none = await raw(ecs, 'DescribeServices', { cluster: 'pgrelay', services: [] });
    const ten = await raw(ecs, 'DescribeServices', { cluster: 'pgrelay', services: ['streamer', ...names(9)] });

    expect([eleven.status, eleven.body.__type]).toEqual([400, 'InvalidParameterException']);
    expect([none.status, none.body.__type]).toEqual([400, 'InvalidParameterException']);
    expect(ten.status).toBe(200);
    expect((ten.body.services as unknown[]).length).toBe(1);
    expect((ten.body.failures as { reason: string }[]).map((f) => f.reason)).toEqual(Array(9).fill('MISSING'));
  });

  it('an unknown member or a member of the wrong type: SerializationException', async () => {
    const { ecs } = await withService();

    const misspelled = await raw(ecs, 'ListTasks', { cluster: 'pgrelay', serviceNme: 'streamer' });
    const notAList = await raw(ecs, 'DescribeServices', { cluster: 'pgrelay', services: 'streamer' });
    const notAnInteger = await raw(ecs, 'ListTasks', { cluster: 'pgrelay', maxResults: '2' });
    const notJson = await raw(ecs, 'ListTasks', '{"cluster": ');

    for (const res of [misspelled, notAList, notAnInteger, notJson]) expect([res.status, res.body.__type]).toEqual([400, 'SerializationException']);
    expect(misspelled.body.message).toContain('serviceNme');
  });

  it('ListTasks: desiredStatus outside its enum, maxResults outside 1..100, a foreign nextToken: InvalidParameterException', async () => {
    const ecs = await fake();
    ecs.addService({ cluster: 'pgrelay', name: 'streamer', desiredCount: 3 });
    ecs.addService({ cluster: 'pgrelay', name: 'other', desiredCount: 3 });

    const badStatus = await raw(ecs, 'ListTasks', { cluster: 'pgrelay', desiredStatus: 'DONE' });
    const tooMany = await raw(ecs, 'ListTasks', { cluster: 'pgrelay', maxResults: 101 });
    const zero = await raw(ecs, 'ListTasks', { cluster: 'pgrelay', maxResults: 0 });
    const first = await raw(ecs, 'ListTasks', { cluster: 'pgrelay', serviceName: 'streamer', maxResults: 1 });
    const foreignToken = await raw(ecs, 'ListTasks', { cluster: 'pgrelay', serviceName: 'other', nextToken: first.body.nextToken });

    for (const res of [badStatus, tooMany, zero, foreignToken]) expect([res.status, res.body.__type]).toEqual([400, 'InvalidParameterException']);
    expect(first.status).toBe(200);
    expect(typeof first.body.nextToken).toBe('string');
  });

  it('an unknown cluster, a cluster ARN of another account, or an unknown serviceName: the NotFound exceptions', async () => {
    const { ecs } = await withService();

    const noCluster = await raw(ecs, 'ListTasks', { cluster: 'nope' });
    const otherAccount = await raw(ecs, 'ListTasks', { cluster: 'arn:aws:ecs:us-east-1:210987654321:cluster/pgrelay' });
    const byArn = await raw(ecs, 'ListTasks', { cluster: ecs.clusterArn('pgrelay') });
    const noService = await raw(ecs, 'ListTasks', { cluster: 'pgrelay', serviceName: 'streamr' });

    expect([noCluster.status, noCluster.body.__type]).toEqual([400, 'ClusterNotFoundException']);
    expect([otherAccount.status, otherAccount.body.__type]).toEqual([400, 'ClusterNotFoundException']);
    expect(byArn.status).toBe(200);
    expect([noService.status, noService.body.__type]).toEqual([400, 'ServiceNotFoundException']);
  });

  it('an unsigned request: 403 MissingAuthenticationTokenException; a malformed or misscoped signature: 403', async () => {
    const { ecs, task } = await withService();

    const unsigned = await raw(ecs, 'StopTask', { cluster: 'pgrelay', task }, { authorization: undefined });
    const notSigV4 = await raw(ecs, 'StopTask', { cluster: 'pgrelay', task }, { authorization: 'Bearer abc' });
    const noDate = await raw(ecs, 'StopTask', { cluster: 'pgrelay', task }, { 'x-amz-date': undefined });
    const wrongService = await raw(ecs, 'StopTask', { cluster: 'pgrelay', task }, { authorization: SIGV4('us-east-1/sqs') });
    const wrongRegion = await raw(ecs, 'StopTask', { cluster: 'pgrelay', task }, { authorization: SIGV4('eu-west-1/ecs') });

    expect([unsigned.status, unsigned.body.__type]).toEqual([403, 'MissingAuthenticationTokenException']);
    expect([notSigV4.status, notSigV4.body.__type]).toEqual([403, 'IncompleteSignatureException']);
    expect([noDate.status, noDate.body.__type]).toEqual([403, 'IncompleteSignatureException']);
    expect([wrongService.status, wrongService.body.__type]).toEqual([403, 'InvalidSignatureException']);
    expect([wrongRegion.status, wrongRegion.body.__type]).toEqual([403, 'InvalidSignatureException']);
    expect(ecs.tasks({ lastStatus: 'STOPPED' })).toEqual([]);
  });

  it('an action it does not serve, or the wrong content type: rejected and recorded', async () => {
    const { ecs } = await withService();

    const runTask = await raw(ecs, 'RunTask', { cluster: 'pgrelay', taskDefinition: 'x' });
    const plainJson = await raw(ecs, 'ListTasks', { cluster: 'pgrelay' }, { 'content-type': 'application/json' });

    expect([runTask.status, runTask.body.__type]).toEqual([400, 'UnknownOperationException']);
    expect([plainJson.status, plainJson.body.__type]).toEqual([400, 'SerializationException']);
    expect(ecs.calls.map((c) => [c.action, c.status, c.errorType])).toEqual([
      ['RunTask', 400, 'UnknownOperationException'],
      ['ListTasks', 400, 'SerializationException'],
    ]);
  });
});
