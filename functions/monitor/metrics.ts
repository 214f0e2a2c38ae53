/**
 * The monitor's view of one source as a CloudWatch embedded-metric-format document: slot
 * health and distances, how long the streamer has been quiet, publication gaps, bootstrap
 * requests and loads under way, and what the run found and did. Pure: figures in, one document out.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { METRIC_NAMESPACE, type MetricValue } from '#core/emf.ts';
import type { SourceStatus } from '#shared/source-status.ts';

const UNITS: Record<MetricValue['unit'], (typeof MetricUnit)[keyof typeof MetricUnit]> = {
  Count: MetricUnit.Count,
  Bytes: MetricUnit.Bytes,
  'Count/Second': MetricUnit.CountPerSecond,
  Milliseconds: MetricUnit.Milliseconds,
  Seconds: MetricUnit.Seconds,
  None: MetricUnit.NoUnit,
};

/**
 * One EMF document through Powertools Metrics: namespace PgRelay, exactly the given dimensions
 * (Powertools' own `service` dimension is cleared: the alarms and dashboards watch Source and
 * Slot alone, and a metric with one more dimension is another metric), the run's timestamp,
 * and `extra` (what the run saw) beside the metrics for the log reader.
 */
function emf(dimensions: Record<string, string>, metrics: MetricValue[], timestamp: number, extra: Record<string, unknown>): Record<string, unknown> {
  const m = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: 'pgrelay-monitor' });
  m.clearDefaultDimensions();
  m.addDimensions(dimensions);
  for (const v of metrics) m.addMetric(v.name, UNITS[v.unit], v.value);
  m.setTimestamp(timestamp);
  return { ...m.serializeMetrics(), ...extra };
}

export interface SlotMetricsOptions {
  sourceId: string;
  /** Epoch milliseconds: the document's timestamp. */
  now: number;
  /** Changes were lost: the slot was invalidated, dropped after pgrelay saw it, or is not ours. Defaults to "not ok". */
  slotLost?: boolean;
  /** Seconds the acknowledged position has not moved, when the monitor has looked before. */
  lastAckAgeSeconds?: number;
  /** Seconds without a streamer connected to the slot. */
  inactiveSeconds?: number;
  /** What the run found and did, carried along for the log reader. */
  findings?: unknown[];
  actions?: { kind: string }[];
  /** 1 for the document of a run that failed before it could read the slot. */
  runFailed?: boolean;
}

/**
 * One EMF document, dimensions `Source` and `Slot`. A distance PostgreSQL cannot give (no
 * slot, a slot that is not ours, an unlimited safe_wal_size) is left out rather than sent as
 * 0, so an alarm on it sees missing data, never a healthy-looking value.
 */
export function slotMetrics(status: SourceStatus, opts: SlotMetricsOptions): Record<string, unknown> {
  const { slot, publication } = status;
  const metrics: MetricValue[] = [];
  const add = (name: string, value: number | null | undefined, unit: MetricValue['unit']) => {
    if (value !== null && value !== undefined) metrics.push({ name, value, unit });
  };
  const details = slot.state === 'missing' ? undefined : slot;
  // A foreign slot's distances describe someone else's consumer: not ours to report.
  const ours = details !== undefined && details.state !== 'foreign' ? details : undefined;
  const actions = opts.actions ?? [];
  const count = (kind: string) => actions.filter((a) => a.kind === kind).length;
  const configured = status.tables.filter((t) => t.configured);
  const pendingBootstrap = configured.filter((t) => t.bootstrap.state === 'requested' || t.bootstrap.state === 'running').length;
  // Loads under way: how many, and the rows they have read so far (a chunk counts once SQS accepted it).
  const running = configured.flatMap((t) => (t.bootstrap.state === 'running' ? [t.bootstrap] : []));

  add('SlotActive', ours?.active ? 1 : 0, 'Count');
  add('SlotLagBytes', ours?.lagBytes, 'Bytes');
  add('SlotRetainedWalBytes', ours?.retainedWalBytes, 'Bytes');
  add('SlotSafeWalSizeBytes', ours?.safeWalSizeBytes, 'Bytes');
  add('SlotLost', (opts.slotLost ?? slot.state !== 'ok') ? 1 : 0, 'Count');
  add('SlotMissing', slot.state === 'missing' ? 1 : 0, 'Count');
  add('SlotLastAckAgeSeconds', opts.lastAckAgeSeconds, 'Seconds');
  add('SlotInactiveSeconds', opts.inactiveSeconds, 'Seconds');
  add('PublicationMissingTables', publication.missingTables.length, 'Count');
  add('BootstrapPendingTables', pendingBootstrap, 'Count');
  add('BootstrapRunningTables', running.length, 'Count');
  add('BootstrapRowsRead', running.reduce((sum, load) => sum + load.rowsRead, 0), 'Count');
  add('StreamerTasksStopped', count('stop-task'), 'Count');
  add('SlotRecreated', count('recreate-slot'), 'Count');
  add('MonitorRunFailed', opts.runFailed ? 1 : 0, 'Count');

  return emf({ Source: opts.sourceId, Slot: slot.name }, metrics, opts.now, {
    slotState: slot.state,
    walStatus: details?.walStatus ?? null,
    confirmedFlushLsn: details?.confirmedFlushLsn ?? null,
    activePid: details?.activePid ?? null,
    invalidationReason: details?.invalidationReason ?? null,
    currentWalLsn: status.currentWalLsn,
    publicationExists: publication.exists,
    missingTables: publication.missingTables,
    bootstrap: Object.fromEntries(configured.map((t) => [t.table, t.bootstrap.state])),
    findings: opts.findings ?? [],
    actions,
  });
}

/** The document of a run that failed before it could read the slot: the failure is itself a metric. */
export function runFailedMetrics(opts: { sourceId: string; slotName: string; now: number; code: string; message: string }): Record<string, unknown> {
  return emf({ Source: opts.sourceId, Slot: opts.slotName }, [{ name: 'MonitorRunFailed', value: 1, unit: 'Count' }], opts.now, {
    error: { code: opts.code, message: opts.message },
  });
}
