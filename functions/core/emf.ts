/**
 * Counters printed in CloudWatch embedded metric format: a log line CloudWatch Logs turns
 * into metrics, so the task needs no PutMetricData permission or extra client.
 */
export const METRIC_NAMESPACE = 'PgRelay';

export type Unit = 'Count' | 'Bytes' | 'Count/Second' | 'Milliseconds' | 'Seconds' | 'None';

export interface MetricValue {
  name: string;
  value: number;
  unit: Unit;
}

/** One EMF document with the given dimensions (each a string). */
export function emfDocument(dimensions: Record<string, string>, metrics: MetricValue[], timestamp: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [
        {
          Namespace: METRIC_NAMESPACE,
          Dimensions: [Object.keys(dimensions)],
          Metrics: metrics.map((m) => ({ Name: m.name, Unit: m.unit })),
        },
      ],
    },
    ...extra,
    ...dimensions,
  };
  for (const m of metrics) doc[m.name] = m.value;
  return doc;
}
