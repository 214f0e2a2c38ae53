/**
 * The monitor's hand on the streamer's ECS service: read how many tasks run, and stop a stuck
 * one so the service scheduler starts a fresh task. The only importer of @aws-sdk/client-ecs.
 * Every AWS failure leaves here as a PgRelayError whose message names the ECS action, the
 * cluster and service, and, for a denial, the IAM action the monitor's role lacks.
 */
import {
  DescribeServicesCommand,
  ECSClient,
  ListTasksCommand,
  StopTaskCommand,
  type ECSClientConfig,
} from '@aws-sdk/client-ecs';
import { PgRelayError } from '#core/errors.ts';

/** The streamer's service. Either part may be a name or a full ARN, as ECS accepts both. */
export interface EcsServiceRef {
  cluster: string;
  service: string;
}

export interface ServiceState {
  desiredCount: number;
  runningCount: number;
  pendingCount: number;
  /** ECS's service status: `ACTIVE` or `DRAINING` (an `INACTIVE` service is reported as an error). */
  status: string;
  /** Tasks of the service ECS wants running (desiredStatus RUNNING), including ones still starting. */
  runningTaskArns: string[];
}

export interface ServiceControl {
  state(): Promise<ServiceState>;
  /** Stop one task; `reason` is shown as the task's stoppedReason (cut to {@link STOP_REASON_MAX_CHARS}). */
  stopTask(taskArn: string, reason: string): Promise<void>;
}

export interface EcsControlOptions {
  region: string;
  /** Another endpoint than the region's (tests: the loopback fake). @default the regional ECS endpoint */
  endpoint?: string;
  /** @default the SDK's default credential chain (the Lambda's role) */
  credentials?: ECSClientConfig['credentials'];
  /** `maxResults` of each ListTasks page. @default 100 (the API's maximum) */
  listTasksPageSize?: number;
}

/** Failure codes of this module, on `err.code`. */
export type EcsControlErrorCode =
  /** The role may not call the action; the message names the IAM action to grant. */
  | 'ECS_ACCESS_DENIED'
  | 'ECS_CLUSTER_NOT_FOUND'
  /** Absent from the cluster, or INACTIVE (deleted). */
  | 'ECS_SERVICE_NOT_FOUND'
  /** ECS rejected a parameter; for StopTask usually a task that is not in the cluster. */
  | 'ECS_INVALID_PARAMETER'
  /** Anything else AWS answered (throttling after the SDK's retries, server errors, network). */
  | 'ECS_REQUEST_FAILED';

/**
 * The longest stop reason sent. Older ECS API references document "Up to 255 characters" for
 * StopTask's reason and the current one documents no limit; 255 is accepted under either.
 */
export const STOP_REASON_MAX_CHARS = 255;

type EcsAction = 'DescribeServices' | 'ListTasks' | 'StopTask';

export function ecsServiceControl(ref: EcsServiceRef, opts: EcsControlOptions): ServiceControl {
  const client = new ECSClient({
    region: opts.region,
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
  });
  const pageSize = opts.listTasksPageSize ?? 100;
  const where = `service "${ref.service}" in cluster "${ref.cluster}"`;

  const send = async <T>(action: EcsAction, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      throw translate(err, action, ref, opts.region);
    }
  };

  return {
    async state() {
      const described = await send('DescribeServices', () =>
        client.send(new DescribeServicesCommand({ cluster: ref.cluster, services: [ref.service] })),
      );
      const service = described.services?.[0];
      if (!service || service.status === 'INACTIVE') {
        const failure = described.failures?.[0];
        const why = service ? 'is INACTIVE (deleted)' : `was reported ${failure?.reason ?? 'absent'}${failure?.detail ? ` (${failure.detail})` : ''}`;
        throw new PgRelayError('ECS_SERVICE_NOT_FOUND', `ECS DescribeServices found no usable ${where}: it ${why}.`);
      }

      const runningTaskArns: string[] = [];
      let nextToken: string | undefined;
      do {
        const page = await send('ListTasks', () =>
          client.send(
            new ListTasksCommand({ cluster: ref.cluster, serviceName: ref.service, desiredStatus: 'RUNNING', maxResults: pageSize, nextToken }),
          ),
        );
        runningTaskArns.push(...(page.taskArns ?? []));
        nextToken = page.nextToken;
      } while (nextToken);

      return {
        desiredCount: service.desiredCount ?? 0,
        runningCount: service.runningCount ?? 0,
        pendingCount: service.pendingCount ?? 0,
        status: service.status ?? 'UNKNOWN',
        runningTaskArns,
      };
    },

    async stopTask(taskArn, reason) {
      await send('StopTask', () => client.send(new StopTaskCommand({ cluster: ref.cluster, task: taskArn, reason: truncateReason(reason) })));
    },
  };
}

/** Cut to STOP_REASON_MAX_CHARS code points (never half a surrogate pair), marking the cut with "…". */
export function truncateReason(reason: string): string {
  const chars = Array.from(reason);
  return chars.length <= STOP_REASON_MAX_CHARS ? reason : `${chars.slice(0, STOP_REASON_MAX_CHARS - 1).join('')}…`;
}

function translate(err: unknown, action: EcsAction, ref: EcsServiceRef, region: string): PgRelayError {
  const name = err instanceof Error ? err.name : 'Error';
  const detail = err instanceof Error ? err.message : String(err);
  const where = `service "${ref.service}" in cluster "${ref.cluster}"`;
  switch (name) {
    case 'AccessDeniedException':
      return new PgRelayError('ECS_ACCESS_DENIED', `ECS ${action} on ${where} was denied: grant the monitor's role the IAM action ecs:${action}.`, { cause: err });
    case 'ClusterNotFoundException':
      return new PgRelayError('ECS_CLUSTER_NOT_FOUND', `ECS ${action} failed: cluster "${ref.cluster}" does not exist in region ${region}.`, { cause: err });
    case 'ServiceNotFoundException':
      return new PgRelayError('ECS_SERVICE_NOT_FOUND', `ECS ${action} failed: ${where} does not exist.`, { cause: err });
    case 'InvalidParameterException':
      return new PgRelayError('ECS_INVALID_PARAMETER', `ECS ${action} on ${where} was rejected: ${detail}`, { cause: err });
    default:
      return new PgRelayError('ECS_REQUEST_FAILED', `ECS ${action} on ${where} failed with ${name}: ${detail}`, { cause: err });
  }
}
