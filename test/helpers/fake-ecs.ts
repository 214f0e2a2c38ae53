/**
 * A stand-in for Amazon ECS on loopback (there is no local ECS emulator among our dependencies),
 * for the three actions the monitor calls: DescribeServices, ListTasks and StopTask. It speaks
 * the wire protocol SDK v3 uses (AWS JSON 1.1: POST /, `X-Amz-Target:
 * AmazonEC2ContainerServiceV20141113.<Action>`, `Content-Type: application/x-amz-json-1.1`, a
 * SigV4 `Authorization` header) and answers errors in the JSON 1.1 shape (`__type`, `message`),
 * so the SDK raises its named exception classes. The rules come from the ECS API reference; the
 * error types are the ones it lists for each action, the message texts are the fake's own.
 *
 * Authentication, before anything else (403, as the Common Errors page gives for both):
 * - no Authorization header: MissingAuthenticationTokenException;
 * - not a SigV4 header (`AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`), `host`
 *   not signed, or no X-Amz-Date: IncompleteSignatureException;
 * - a credential scope for another service than `ecs` or another region than the fake's:
 *   InvalidSignatureException. The signature itself is not verified.
 *
 * Request shape (400):
 * - body not a JSON object, a member of the wrong JSON type, or a member the action does not
 *   have: SerializationException. AWS may ignore an unknown member; the fake rejects it so that a
 *   misspelled filter (`serviceNme`) cannot silently widen a ListTasks.
 * - a required member missing (DescribeServices.services, StopTask.task), DescribeServices with
 *   0 or more than 10 services, ListTasks.maxResults outside 1..100, desiredStatus outside
 *   RUNNING|PENDING|STOPPED, launchType outside the LaunchType enum, a StopTask reason over
 *   FAKE_MAX_STOP_REASON_CHARS, a nextToken the fake did not issue for this query:
 *   InvalidParameterException.
 *
 * Resources:
 * - `cluster` is a name or `arn:aws:ecs:<region>:<account>:cluster/<name>`; absent means
 *   `default`. An unknown cluster (or an ARN of another region/account): 400
 *   ClusterNotFoundException.
 * - DescribeServices answers 200 for services it cannot find, listing them under `failures`
 *   with reason MISSING; a deleted service is returned with status INACTIVE.
 * - ListTasks with a serviceName the cluster does not have: 400 ServiceNotFoundException.
 *   desiredStatus defaults to RUNNING; maxResults (default 100) and nextToken page the result.
 * - StopTask of a task (ARN or id) not in the cluster: 400 InvalidParameterException. Stopping
 *   a stopped task answers 200 with the task unchanged.
 *
 * Simplifications: a task goes straight to STOPPED (no STOPPING), and (option
 * `replaceStoppedTasks`, default true) the service scheduler's replacement starts at once as
 * RUNNING, so an ACTIVE service keeps desiredCount tasks running. All tasks are Fargate tasks.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const FAKE_ECS_TARGET_PREFIX = 'AmazonEC2ContainerServiceV20141113.';
/** "You may specify up to 10 services to describe in a single operation." */
export const FAKE_MAX_DESCRIBE_SERVICES = 10;
/** ListTasks maxResults "can be between 1 and 100"; also the page size when it is absent. */
export const FAKE_MAX_LIST_RESULTS = 100;
/**
 * StopTask's reason limit. Older API references say "Up to 255 characters are allowed in this
 * message"; the current one states no limit. The fake enforces the documented one.
 */
export const FAKE_MAX_STOP_REASON_CHARS = 255;

export type FakeEcsAction = 'DescribeServices' | 'ListTasks' | 'StopTask';
export type FakeServiceStatus = 'ACTIVE' | 'DRAINING' | 'INACTIVE';
export type FakeTaskStatus = 'PENDING' | 'RUNNING' | 'STOPPED';

export interface FakeEcsCall {
  /** The action named by X-Amz-Target (the raw header when it names none). */
  action: string;
  /** The parsed request body; undefined when it was not JSON. */
  body: unknown;
  /** HTTP status the fake answered. */
  status: number;
  /** For a rejected call: the error type (`ClusterNotFoundException`, ...). */
  errorType?: string;
  message?: string;
}

export interface FakeTask {
  taskArn: string;
  taskId: string;
  clusterName: string;
  /** `service:<name>` for a service's task. */
  group: string;
  serviceName: string;
  startedBy: string;
  family: string;
  lastStatus: FakeTaskStatus;
  desiredStatus: FakeTaskStatus;
  stoppedReason?: string;
}

export interface FakeServiceOptions {
  /** Created when it does not exist yet. */
  cluster: string;
  name: string;
  /** @default 1 */
  desiredCount?: number;
  /** Tasks started RUNNING now (fewer than desiredCount models a service that cannot start). @default desiredCount */
  running?: number;
  /** @default 'ACTIVE' */
  status?: FakeServiceStatus;
}

export interface FakeEcsOptions {
  /** @default 'us-east-1' */
  region?: string;
  /** @default '123456789012' */
  account?: string;
  /** Start a replacement when a task of an ACTIVE service is stopped, as the scheduler does. @default true */
  replaceStoppedTasks?: boolean;
}

export interface FakeEcs {
  endpoint: string;
  region: string;
  account: string;
  /** Every request received, in order of arrival. */
  calls: FakeEcsCall[];
  addCluster(name: string): string;
  addService(opts: FakeServiceOptions): { serviceArn: string; clusterArn: string; taskArns: string[] };
  setServiceStatus(cluster: string, service: string, status: FakeServiceStatus): void;
  /** Snapshots of the tasks, in the order they started. */
  tasks(filter?: { cluster?: string; service?: string; lastStatus?: FakeTaskStatus }): FakeTask[];
  clusterArn(cluster: string): string;
  serviceArn(cluster: string, service: string): string;
  /**
   * Answer the next `times` (default 1) well-formed calls of `action` with this error, before
   * any resource is looked up. AccessDeniedException gets AWS's "is not authorized to perform:
   * ecs:<Action>" message unless `message` is given.
   */
  failNext(action: FakeEcsAction, opts: { type: string; status?: number; message?: string; times?: number }): void;
  close(): Promise<void>;
}

type Member =
  | { kind: 'string' }
  | { kind: 'integer' }
  | { kind: 'stringList' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'enumList'; values: readonly string[] };

const DESIRED_STATUS = ['RUNNING', 'PENDING', 'STOPPED'] as const;
const LAUNCH_TYPE = ['EC2', 'FARGATE', 'EXTERNAL', 'MANAGED_INSTANCES'] as const;

/** Request members per action, as the API reference lists them. */
const SHAPES: Record<FakeEcsAction, { members: Record<string, Member>; required: string[] }> = {
  DescribeServices: {
    members: { cluster: { kind: 'string' }, services: { kind: 'stringList' }, include: { kind: 'enumList', values: ['TAGS'] } },
    required: ['services'],
  },
  ListTasks: {
    members: {
      cluster: { kind: 'string' },
      containerInstance: { kind: 'string' },
      family: { kind: 'string' },
      nextToken: { kind: 'string' },
      maxResults: { kind: 'integer' },
      startedBy: { kind: 'string' },
      serviceName: { kind: 'string' },
      desiredStatus: { kind: 'enum', values: DESIRED_STATUS },
      launchType: { kind: 'enum', values: LAUNCH_TYPE },
      daemonName: { kind: 'string' },
    },
    required: [],
  },
  StopTask: {
    members: { cluster: { kind: 'string' }, task: { kind: 'string' }, reason: { kind: 'string' } },
    required: ['task'],
  },
};

class Rejection extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}
const invalid = (message: string) => new Rejection(400, 'InvalidParameterException', message);
const serialization = (message: string) => new Rejection(400, 'SerializationException', message);

interface ServiceRecord {
  name: string;
  cluster: string;
  desiredCount: number;
  status: FakeServiceStatus;
  startedBy: string;
  createdAt: number;
}

interface TaskRecord extends FakeTask {
  seq: number;
  createdAt: number;
  stoppedAt?: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkMember(name: string, member: Member, value: unknown): void {
  const isString = (x: unknown) => typeof x === 'string';
  switch (member.kind) {
    case 'string':
      if (!isString(value)) throw serialization(`${name}: expected a string`);
      return;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) throw serialization(`${name}: expected an integer`);
      return;
    case 'stringList':
      if (!Array.isArray(value) || !value.every(isString)) throw serialization(`${name}: expected a list of strings`);
      return;
    case 'enum':
      if (!isString(value)) throw serialization(`${name}: expected a string`);
      if (!member.values.includes(value as string)) throw invalid(`${name} must be one of ${member.values.join(', ')}.`);
      return;
    case 'enumList':
      if (!Array.isArray(value) || !value.every(isString)) throw serialization(`${name}: expected a list of strings`);
      for (const v of value as string[]) if (!member.values.includes(v)) throw invalid(`${name} values must be one of ${member.values.join(', ')}.`);
      return;
  }
}

/** The request with JSON nulls dropped (AWS JSON treats null as absent), checked against the action's shape. */
function checkShape(action: FakeEcsAction, body: unknown): Record<string, unknown> {
  if (!isObject(body)) throw serialization('request body must be a JSON object');
  const shape = SHAPES[action];
  const request: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(body)) {
    const member = shape.members[name];
    if (!member) throw serialization(`${action}Request has no member '${name}'`);
    if (value === null) continue;
    checkMember(name, member, value);
    request[name] = value;
  }
  for (const name of shape.required) if (request[name] === undefined) throw invalid(`${name} is required.`);
  return request;
}

/** The ListTasks filters as one key, so a nextToken is only accepted for the query that issued it. */
const filterKey = (cluster: string, r: Record<string, unknown>): string =>
  JSON.stringify([cluster, r.serviceName, r.desiredStatus ?? 'RUNNING', r.family, r.startedBy, r.launchType, r.containerInstance, r.daemonName]);

export async function startFakeEcs(opts: FakeEcsOptions = {}): Promise<FakeEcs> {
  const region = opts.region ?? 'us-east-1';
  const account = opts.account ?? '123456789012';
  const replaceStoppedTasks = opts.replaceStoppedTasks ?? true;
  const clusters = new Map<string, Map<string, ServiceRecord>>();
  const taskList: TaskRecord[] = [];
  const calls: FakeEcsCall[] = [];
  const injected: { action: FakeEcsAction; type: string; status: number; message: string | undefined; remaining: number }[] = [];
  /** nextToken → [filter key, seq of the last task returned]. */
  const tokens = new Map<string, [string, number]>();
  let taskSeq = 0;
  let tokenSeq = 0;
  let serviceSeq = 0;
  let requestSeq = 0;

  const arnPrefix = `arn:aws:ecs:${region}:${account}:`;
  const clusterArn = (name: string) => `${arnPrefix}cluster/${name}`;
  const serviceArn = (cluster: string, name: string) => `${arnPrefix}service/${cluster}/${name}`;
  const nowSeconds = () => Date.now() / 1000;

  const addCluster = (name: string): string => {
    if (!clusters.has(name)) clusters.set(name, new Map());
    return clusterArn(name);
  };

  const startTask = (service: ServiceRecord, lastStatus: FakeTaskStatus = 'RUNNING'): TaskRecord => {
    const seq = ++taskSeq;
    const taskId = seq.toString(16).padStart(32, '0');
    const task: TaskRecord = {
      seq,
      taskArn: `${arnPrefix}task/${service.cluster}/${taskId}`,
      taskId,
      clusterName: service.cluster,
      group: `service:${service.name}`,
      serviceName: service.name,
      startedBy: service.startedBy,
      family: service.name,
      lastStatus,
      desiredStatus: 'RUNNING',
      createdAt: nowSeconds(),
    };
    taskList.push(task);
    return task;
  };

  /** `name` or `arn:aws:ecs:<region>:<account>:cluster/<name>`, absent meaning `default`. */
  const resolveCluster = (ref: unknown): string => {
    const value = typeof ref === 'string' && ref !== '' ? ref : 'default';
    let name = value;
    if (value.startsWith('arn:')) {
      const m = /^arn:aws[a-z-]*:ecs:([^:]+):(\d{12}):cluster\/(.+)$/.exec(value);
      name = m && m[1] === region && m[2] === account ? m[3]! : '';
    }
    if (!clusters.has(name)) throw new Rejection(400, 'ClusterNotFoundException', 'Cluster not found.');
    return name;
  };

  /** The service name a name or service ARN (`service/<cluster>/<name>` or the older `service/<name>`) refers to in `cluster`. */
  const serviceNameIn = (cluster: string, ref: string): string | undefined => {
    if (!ref.startsWith('arn:')) return ref;
    const m = /^arn:aws[a-z-]*:ecs:([^:]+):(\d{12}):service\/(?:([^/]+)\/)?([^/]+)$/.exec(ref);
    if (!m || m[1] !== region || m[2] !== account || (m[3] !== undefined && m[3] !== cluster)) return undefined;
    return m[4];
  };

  const runningOf = (cluster: string, name: string, status: FakeTaskStatus) =>
    taskList.filter((t) => t.clusterName === cluster && t.serviceName === name && t.lastStatus === status).length;

  const describeService = (s: ServiceRecord, withTags: boolean) => ({
    serviceArn: serviceArn(s.cluster, s.name),
    serviceName: s.name,
    clusterArn: clusterArn(s.cluster),
    status: s.status,
    desiredCount: s.desiredCount,
    runningCount: runningOf(s.cluster, s.name, 'RUNNING'),
    pendingCount: runningOf(s.cluster, s.name, 'PENDING'),
    launchType: 'FARGATE',
    schedulingStrategy: 'REPLICA',
    taskDefinition: `${arnPrefix}task-definition/${s.name}:1`,
    deployments: [],
    events: [],
    createdAt: s.createdAt,
    ...(withTags ? { tags: [] } : {}),
  });

  const describeTask = (t: TaskRecord) => ({
    taskArn: t.taskArn,
    clusterArn: clusterArn(t.clusterName),
    taskDefinitionArn: `${arnPrefix}task-definition/${t.family}:1`,
    group: t.group,
    startedBy: t.startedBy,
    launchType: 'FARGATE',
    lastStatus: t.lastStatus,
    desiredStatus: t.desiredStatus,
    createdAt: t.createdAt,
    containers: [],
    ...(t.stoppedReason !== undefined ? { stoppedReason: t.stoppedReason, stopCode: 'UserInitiated' } : {}),
    ...(t.stoppedAt !== undefined ? { stoppedAt: t.stoppedAt } : {}),
  });

  const describeServices = (r: Record<string, unknown>) => {
    const refs = r.services as string[];
    if (refs.length < 1) throw invalid('Services cannot be empty.');
    if (refs.length > FAKE_MAX_DESCRIBE_SERVICES) throw invalid(`Services cannot contain more than ${FAKE_MAX_DESCRIBE_SERVICES} entries.`);
    const cluster = resolveCluster(r.cluster);
    const withTags = Array.isArray(r.include) && r.include.includes('TAGS');
    const services: unknown[] = [];
    const failures: { arn: string; reason: string }[] = [];
    for (const ref of refs) {
      const name = serviceNameIn(cluster, ref);
      const record = name === undefined ? undefined : clusters.get(cluster)!.get(name);
      if (record) services.push(describeService(record, withTags));
      else failures.push({ arn: ref.startsWith('arn:') ? ref : serviceArn(cluster, ref), reason: 'MISSING' });
    }
    return { services, failures };
  };

  const listTasks = (r: Record<string, unknown>) => {
    const maxResults = (r.maxResults as number | undefined) ?? FAKE_MAX_LIST_RESULTS;
    if (maxResults < 1 || maxResults > FAKE_MAX_LIST_RESULTS) throw invalid(`maxResults must be between 1 and ${FAKE_MAX_LIST_RESULTS}.`);
    const cluster = resolveCluster(r.cluster);
    let serviceName: string | undefined;
    if (r.serviceName !== undefined) {
      serviceName = serviceNameIn(cluster, r.serviceName as string);
      if (serviceName === undefined || !clusters.get(cluster)!.has(serviceName)) throw new Rejection(400, 'ServiceNotFoundException', 'Service not found.');
    }
    const key = filterKey(cluster, r);
    let after = 0;
    if (r.nextToken !== undefined) {
      const token = tokens.get(r.nextToken as string);
      if (!token || token[0] !== key) throw invalid('Invalid nextToken.');
      after = token[1];
    }
    const desiredStatus = (r.desiredStatus as string | undefined) ?? 'RUNNING';
    const matching = taskList.filter(
      (t) =>
        t.seq > after &&
        t.clusterName === cluster &&
        t.desiredStatus === desiredStatus &&
        (serviceName === undefined || t.serviceName === serviceName) &&
        (r.family === undefined || t.family === r.family) &&
        (r.startedBy === undefined || t.startedBy === r.startedBy) &&
        (r.launchType === undefined || r.launchType === 'FARGATE') &&
        // Fargate tasks have no container instance; no daemons are modelled.
        r.containerInstance === undefined &&
        r.daemonName === undefined,
    );
    const page = matching.slice(0, maxResults);
    const response: { taskArns: string[]; nextToken?: string } = { taskArns: page.map((t) => t.taskArn) };
    if (matching.length > page.length) {
      const nextToken = Buffer.from(`fake-ecs-page-${++tokenSeq}`).toString('base64');
      tokens.set(nextToken, [key, page[page.length - 1]!.seq]);
      response.nextToken = nextToken;
    }
    return response;
  };

  const stopTask = (r: Record<string, unknown>) => {
    const reason = r.reason as string | undefined;
    if (reason !== undefined && Array.from(reason).length > FAKE_MAX_STOP_REASON_CHARS) {
      throw invalid(`Reason cannot be longer than ${FAKE_MAX_STOP_REASON_CHARS} characters.`);
    }
    const cluster = resolveCluster(r.cluster);
    const ref = r.task as string;
    const task = taskList.find((t) => t.clusterName === cluster && (t.taskArn === ref || t.taskId === ref || ref === `${arnPrefix}task/${t.taskId}`));
    if (!task) throw invalid('The referenced task was not found.');
    if (task.desiredStatus !== 'STOPPED') {
      task.desiredStatus = 'STOPPED';
      task.lastStatus = 'STOPPED';
      task.stoppedReason = reason ?? 'Task stopped by user';
      task.stoppedAt = nowSeconds();
      const service = clusters.get(cluster)!.get(task.serviceName);
      if (replaceStoppedTasks && service?.status === 'ACTIVE' && runningOf(cluster, service.name, 'RUNNING') < service.desiredCount) startTask(service);
    }
    return { task: describeTask(task) };
  };

  const deniedMessage = (action: FakeEcsAction, r: Record<string, unknown>): string => {
    const clusterName = typeof r.cluster === 'string' ? (r.cluster.split('/').pop() ?? 'default') : 'default';
    const resource =
      action === 'StopTask' ? String(r.task) : action === 'DescribeServices' ? serviceArn(clusterName, String((r.services as string[])[0])) : clusterArn(clusterName);
    return `User: arn:aws:sts::${account}:assumed-role/pgrelay-monitor/fake is not authorized to perform: ecs:${action} on resource: ${resource} because no identity-based policy allows the ecs:${action} action`;
  };

  /** Authenticates the request as AWS does before looking at it; throws a 403 Rejection. */
  const authenticate = (req: http.IncomingMessage): void => {
    const auth = req.headers.authorization;
    if (auth === undefined || auth === '') throw new Rejection(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
    const m = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(auth);
    if (!m) throw new Rejection(403, 'IncompleteSignatureException', `Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters. Authorization=${auth.split(' ')[0]}`);
    if (!m[2]!.split(';').includes('host')) throw new Rejection(403, 'IncompleteSignatureException', "'Host' must be a signed header.");
    if (req.headers['x-amz-date'] === undefined && req.headers.date === undefined) {
      throw new Rejection(403, 'IncompleteSignatureException', "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
    }
    const scope = m[1]!.split('/');
    if (scope.length !== 5 || scope[4] !== 'aws4_request') throw new Rejection(403, 'IncompleteSignatureException', 'Credential is not a valid SigV4 credential scope.');
    if (scope[3] !== 'ecs') throw new Rejection(403, 'InvalidSignatureException', "Credential should be scoped to correct service: 'ecs'.");
    if (scope[2] !== region) throw new Rejection(403, 'InvalidSignatureException', `Credential should be scoped to a valid region, not '${scope[2]}'.`);
  };

  const handle = (req: http.IncomingMessage, raw: Buffer): { status: number; body: unknown } => {
    const target = String(req.headers['x-amz-target'] ?? '');
    const call: FakeEcsCall = { action: target.startsWith(FAKE_ECS_TARGET_PREFIX) ? target.slice(FAKE_ECS_TARGET_PREFIX.length) : target, body: undefined, status: 400 };
    calls.push(call);
    try {
      try {
        call.body = JSON.parse(raw.toString('utf8'));
      } catch {
        call.body = undefined;
      }
      if (req.method !== 'POST' || req.url !== '/') throw new Rejection(404, 'UnknownOperationException', `${req.method} ${req.url}`);
      authenticate(req);
      if (!String(req.headers['content-type'] ?? '').startsWith('application/x-amz-json-1.1')) {
        throw serialization('Content-Type must be application/x-amz-json-1.1');
      }
      const action = call.action as FakeEcsAction;
      if (!target.startsWith(FAKE_ECS_TARGET_PREFIX) || !(action in SHAPES)) throw new Rejection(400, 'UnknownOperationException', `fake ECS does not serve ${target || 'a request without X-Amz-Target'}`);
      if (call.body === undefined) throw serialization('request body is not JSON');
      const request = checkShape(action, call.body);

      const fault = injected.find((f) => f.action === action);
      if (fault) {
        if (--fault.remaining <= 0) injected.splice(injected.indexOf(fault), 1);
        const message = fault.message ?? (fault.type === 'AccessDeniedException' ? deniedMessage(action, request) : `${fault.type} (injected)`);
        throw new Rejection(fault.status, fault.type, message);
      }
      const answer = action === 'DescribeServices' ? describeServices(request) : action === 'ListTasks' ? listTasks(request) : stopTask(request);
      call.status = 200;
      return { status: 200, body: answer };
    } catch (err) {
      if (!(err instanceof Rejection)) throw err;
      call.status = err.status;
      call.errorType = err.type;
      call.message = err.message;
      return { status: err.status, body: { __type: err.type, message: err.message } };
    }
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let answer: { status: number; body: unknown };
      try {
        answer = handle(req, Buffer.concat(chunks));
      } catch (err) {
        answer = { status: 500, body: { __type: 'ServerException', message: `fake ECS failed: ${String(err)}` } };
      }
      res.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': `fake-ecs-${++requestSeq}` });
      res.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    region,
    account,
    calls,
    addCluster,
    addService({ cluster, name, desiredCount = 1, running = desiredCount, status = 'ACTIVE' }) {
      addCluster(cluster);
      const services = clusters.get(cluster)!;
      if (services.has(name)) throw new Error(`fake ECS: service ${name} already exists in cluster ${cluster}`);
      const record: ServiceRecord = {
        name,
        cluster,
        desiredCount,
        status,
        startedBy: `ecs-svc/${String(++serviceSeq).padStart(19, '0')}`,
        createdAt: nowSeconds(),
      };
      services.set(name, record);
      const taskArns = Array.from({ length: running }, () => startTask(record).taskArn);
      return { serviceArn: serviceArn(cluster, name), clusterArn: clusterArn(cluster), taskArns };
    },
    setServiceStatus(cluster, service, status) {
      const record = clusters.get(cluster)?.get(service);
      if (!record) throw new Error(`fake ECS: no service ${service} in cluster ${cluster}`);
      record.status = status;
    },
    tasks(filter = {}) {
      return taskList
        .filter(
          (t) =>
            (filter.cluster === undefined || t.clusterName === filter.cluster) &&
            (filter.service === undefined || t.serviceName === filter.service) &&
            (filter.lastStatus === undefined || t.lastStatus === filter.lastStatus),
        )
        .map(({ seq: _seq, createdAt: _createdAt, stoppedAt: _stoppedAt, ...task }) => ({ ...task }));
    },
    clusterArn,
    serviceArn,
    failNext(action, { type, status = 400, message, times = 1 }) {
      injected.push({ action, type, status, message, remaining: times });
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
