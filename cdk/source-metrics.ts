/**
 * The CloudWatch metrics of one source, as the alarms watch them: what the monitor and the
 * streamer publish (namespace `PgRelay`, dimensions `Source` and `Slot`) and the AWS metrics of
 * the source's dead-letter queue and functions. `PgRelay.metric*` hands these to users and
 * cdk/alarms.ts builds its alarms from them, so an alarm and the metric a user graphs or alarms
 * on are the same by construction.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';

/** The namespace the monitor and the streamer publish in. */
export const METRIC_NAMESPACE = 'PgRelay';

export interface SourceMetricHandles {
  readonly sourceId: string;
  readonly slotName: string;
  readonly changesDeadLetterQueue: sqs.IQueue;
  readonly transformFunction: lambda.IFunction;
  readonly monitorFunction: lambda.IFunction;
}

const ONE_MINUTE = Duration.minutes(1);

/** A metric pgrelay publishes for the source, with the alarm's statistic and period unless overridden. */
export function pgrelayMetric(source: Pick<SourceMetricHandles, 'sourceId' | 'slotName'>, metricName: string, defaults: { statistic: string; period?: Duration }, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRIC_NAMESPACE,
    metricName,
    dimensionsMap: { Source: source.sourceId, Slot: source.slotName },
    statistic: defaults.statistic,
    period: defaults.period ?? ONE_MINUTE,
    ...props,
  });
}

/** Each metric an alarm of the source watches, by what it measures. */
export const sourceMetrics = {
  /** Bytes of WAL the slot holds that no streamer acknowledged (Maximum per minute). */
  slotLag: (s: SourceMetricHandles, props?: cloudwatch.MetricOptions) => pgrelayMetric(s, 'SlotLagBytes', { statistic: 'Maximum' }, props),
  /** Seconds the acknowledged position has not moved: how far behind delivery is (Maximum per minute). */
  ackAge: (s: SourceMetricHandles, props?: cloudwatch.MetricOptions) => pgrelayMetric(s, 'SlotLastAckAgeSeconds', { statistic: 'Maximum' }, props),
  /** Seconds no streamer has been connected to the slot (Maximum per minute). */
  slotInactive: (s: SourceMetricHandles, props?: cloudwatch.MetricOptions) => pgrelayMetric(s, 'SlotInactiveSeconds', { statistic: 'Maximum' }, props),
  /** 1 when the slot was invalidated or dropped, changes lost (Maximum per minute). */
  slotLost: (s: SourceMetricHandles, props?: cloudwatch.MetricOptions) => pgrelayMetric(s, 'SlotLost', { statistic: 'Maximum' }, props),
  /** How many metric reports the streamer printed (SampleCount per 5 minutes): 0 means it is not running. */
  streamerReports: (s: SourceMetricHandles, props?: cloudwatch.MetricOptions) => pgrelayMetric(s, 'InFlightBytes', { statistic: 'SampleCount', period: Duration.minutes(5) }, props),
  /** Changes in the dead-letter queue: batches the transform could not handle (Maximum per minute). */
  changesDeadLettered: (s: SourceMetricHandles, props?: cloudwatch.MetricOptions) => s.changesDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: ONE_MINUTE, statistic: 'Maximum', ...props }),
  /** Failed runs of the slot guardian (Sum per minute). */
  monitorErrors: (s: SourceMetricHandles, props?: cloudwatch.MetricOptions) => s.monitorFunction.metricErrors({ period: ONE_MINUTE, statistic: 'Sum', ...props }),
  /** Failed invocations of the transform (Sum per minute). */
  transformErrors: (s: SourceMetricHandles, props?: cloudwatch.MetricOptions) => s.transformFunction.metricErrors({ period: ONE_MINUTE, statistic: 'Sum', ...props }),
} as const;
