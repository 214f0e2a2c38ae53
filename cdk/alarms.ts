/**
 * What pgrelay is watched by: per source the CloudWatch alarms on the slot, the changes DLQ,
 * the monitor and the streamer's own metrics; once per relay the nodes-DLQ alarm
 * (`NodesDlqAlarm`, when pgrelay created that queue) and the dashboard (`Dashboard`). With an
 * alarm topic, every alarm notifies it on ALARM and on OK.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { DEFAULTS } from './defaults.ts';
import type { PgRelayAlarms, ResolvedSource } from './props.ts';
import { pgrelayMetric, sourceMetrics } from './source-metrics.ts';

export interface SourceAlarmsOptions {
  readonly source: ResolvedSource;
  readonly alarms: PgRelayAlarms;
  readonly changesDeadLetterQueue: sqs.IQueue;
  readonly monitorFunction: lambda.IFunction;
  readonly transformFunction: lambda.IFunction;
  /** The relay's nodes DLQ, when pgrelay created it: its alarm goes with the first source's. */
  readonly nodesDeadLetterQueue: sqs.IQueue | undefined;
}

/**
 * Creates the source's alarms in `sourceScope`, and `NodesDlqAlarm` in `relayScope` the first
 * time (it is returned with that source's alarms).
 */
export function createSourceAlarms(relayScope: Construct, sourceScope: Construct, opts: SourceAlarmsOptions): cloudwatch.Alarm[] {
  const { source, alarms: a } = opts;
  const handles = { sourceId: source.sourceId, slotName: source.slotName, changesDeadLetterQueue: opts.changesDeadLetterQueue, monitorFunction: opts.monitorFunction, transformFunction: opts.transformFunction };
  const m = sourceMetrics;
  const name = (what: string) => `pgrelay ${source.sourceId}: ${what}`;
  const GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD;
  const GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD;
  const lagBytes = a.slotLagBytes ?? DEFAULTS.alarmSlotLagBytes;
  // [id, what it means, metric, threshold, comparison, periods]; missing data is healthy
  // except for the streamer's own heartbeat of metrics, whose silence is the signal.
  const specs: [string, string, cloudwatch.IMetric, number, cloudwatch.ComparisonOperator, number][] = [
    ['SlotLagAlarm', `the slot holds more than ${lagBytes} bytes of unacknowledged WAL`, m.slotLag(handles), lagBytes, GT, 5],
    ['SlotInactiveAlarm', 'no streamer has been connected to the slot for too long', m.slotInactive(handles), a.slotInactiveSeconds ?? DEFAULTS.alarmSlotInactiveSeconds, GTE, 1],
    ['SlotStalledAlarm', 'the acknowledged position has not moved for too long', m.ackAge(handles), a.slotAckAgeSeconds ?? DEFAULTS.alarmSlotAckAgeSeconds, GTE, 1],
    ['SlotLostAlarm', 'the replication slot was invalidated or dropped: changes were lost', m.slotLost(handles), 1, GTE, 1],
    ['ChangesDlqAlarm', 'changes the transform could not handle are in the dead-letter queue', m.changesDeadLettered(handles), 1, GTE, 1],
    ['MonitorFailingAlarm', 'the slot guardian has failed three runs in a row', m.monitorErrors(handles), 1, GTE, 3],
  ];
  const alarms = specs.map(
    ([id, what, m, threshold, comparisonOperator, evaluationPeriods]) =>
      new cloudwatch.Alarm(sourceScope, id, { alarmDescription: name(what), metric: m, threshold, comparisonOperator, evaluationPeriods, treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING }),
  );
  alarms.push(
    new cloudwatch.Alarm(sourceScope, 'StreamerDownAlarm', {
      alarmDescription: name('the streamer has printed no metrics for 5 minutes (not running, or stuck)'),
      // The streamer prints its metrics every minute from its event loop; silence is the signal.
      metric: m.streamerReports(handles),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    }),
  );
  if (opts.nodesDeadLetterQueue !== undefined && relayScope.node.tryFindChild('NodesDlqAlarm') === undefined) {
    alarms.push(
      new cloudwatch.Alarm(relayScope, 'NodesDlqAlarm', {
        alarmDescription: 'pgrelay: node events a nodes-queue consumer could not handle are in the dead-letter queue',
        metric: opts.nodesDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
  }
  if (a.topic !== undefined) {
    const action = new cwActions.SnsAction(a.topic);
    for (const alarm of alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
  }
  return alarms;
}

/** What the dashboard shows of one source (a PgRelaySource). */
export interface DashboardSource {
  readonly sourceId: string;
  readonly slotName: string;
  readonly changesQueue: sqs.IQueue;
  readonly changesDeadLetterQueue: sqs.IQueue;
  readonly transformFunction: lambda.IFunction;
  readonly alarms: cloudwatch.IAlarm[];
}

/** Creates `Dashboard` in the relay's scope: per source, the slot, the streamer's throughput, the queues, the transform and the alarms. */
export function createDashboard(scope: Construct, sources: readonly DashboardSource[]): cloudwatch.Dashboard {
  const dashboard = new cloudwatch.Dashboard(scope, 'Dashboard');
  for (const s of sources) {
    const m = (metricName: string, statistic = 'Maximum') => pgrelayMetric(s, metricName, { statistic });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: `${s.sourceId}: slot lag and retained WAL (bytes)`, left: [m('SlotLagBytes'), m('SlotRetainedWalBytes')], width: 8 }),
      new cloudwatch.GraphWidget({ title: `${s.sourceId}: changes streamed / sent`, left: [m('ChangesStreamed', 'Sum'), m('MessagesSent', 'Sum')], width: 8 }),
      new cloudwatch.GraphWidget({
        title: `${s.sourceId}: acknowledgement age and inactivity (s)`,
        left: [m('SlotLastAckAgeSeconds'), m('SlotInactiveSeconds')],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: `${s.sourceId}: queues`,
        left: [s.changesQueue.metricApproximateNumberOfMessagesVisible(), s.changesDeadLetterQueue.metricApproximateNumberOfMessagesVisible()],
        width: 12,
      }),
      new cloudwatch.GraphWidget({ title: `${s.sourceId}: transform`, left: [s.transformFunction.metricInvocations(), s.transformFunction.metricErrors()], right: [s.transformFunction.metricDuration()], width: 12 }),
      new cloudwatch.AlarmStatusWidget({ title: `${s.sourceId}: alarms`, alarms: s.alarms, width: 24 }),
    );
  }
  return dashboard;
}
