/**
 * The construct's fixed choices and defaults, with the reason for each where it is not obvious.
 */
import { Duration } from 'aws-cdk-lib';

export const DEFAULTS = {
  partitions: 16,
  streamerCpu: 512,
  transformTimeout: Duration.seconds(60),
  /** Receives before a message goes to its dead-letter queue. */
  maxReceiveCount: 5,
  /** Every source writes under `pgrelay/<sourceId>/`; consumers read under `pgrelay/`. */
  payloadPrefix: 'pgrelay/',
  alarmSlotLagBytes: 1024 * 1024 * 1024,
  alarmSlotInactiveSeconds: 600,
  alarmSlotAckAgeSeconds: 900,
} as const;

export const CHANGES_RETENTION = Duration.days(4);
export const CHANGES_DLQ_RETENTION = Duration.days(14);
export const NODES_RETENTION = Duration.days(4);
export const NODES_DLQ_RETENTION = Duration.days(14);

/**
 * Payload objects must outlive every message that can point at them. A change's object is
 * referenced from the changes queue, then (FIFO resets a message's age when it moves) its
 * DLQ; an event's object, written while a change is handled, from the nodes queue and its DLQ.
 * The longest chain plus a day.
 */
export function payloadExpiry(): Duration {
  const days = [CHANGES_RETENTION, CHANGES_DLQ_RETENTION, NODES_RETENTION, NODES_DLQ_RETENTION].reduce((sum, d) => sum + d.toDays(), 0);
  return Duration.days(days + 1);
}
