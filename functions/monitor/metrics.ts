/**
 * The monitor's view of one source as a CloudWatch embedded-metric-format document: slot
 * health and distances, publication gaps. Pure: a SourceStatus in, one document out.
 */
// Imported from the streamer for now; EMF building belongs in functions/core once the
// streamer's metrics move there (functions/ must not depend on streamer/ in the long run).
import { emfDocument, type MetricValue } from '#streamer/metrics.ts';
import type { SourceStatus } from '#streamer/status.ts';

export interface SlotMetricsOptions {
  sourceId: string;
  /** Epoch milliseconds: the document's timestamp. */
  now: number;
  /** Seconds since the streamer last acknowledged a position, when a heartbeat tells us. */
  lastAckAgeSeconds?: number;
}

/**
 * One EMF document, dimensions `Source` and `Slot`. A distance PostgreSQL cannot give (no
 * slot, a slot that is not ours, an unlimited safe_wal_size) is left out rather than sent as
 * 0, so an alarm on it sees missing data, never a healthy-looking value.
 */
export function slotMetrics(status: SourceStatus, opts: SlotMetricsOptions): Record<string, unknown> {
  const { slot, publication } = status;
  const metrics: MetricValue[] = [];
  const add = (name: string, value: number | null, unit: MetricValue['unit']) => {
    if (value !== null) metrics.push({ name, value, unit });
  };
  const details = slot.state === 'missing' ? undefined : slot;
  // A foreign slot's distances describe someone else's consumer: not ours to report.
  const ours = details !== undefined && details.state !== 'foreign' ? details : undefined;

  add('SlotActive', ours?.active ? 1 : 0, 'Count');
  add('SlotLagBytes', ours?.lagBytes ?? null, 'Bytes');
  add('SlotRetainedWalBytes', ours?.retainedWalBytes ?? null, 'Bytes');
  add('SlotSafeWalSizeBytes', ours?.safeWalSizeBytes ?? null, 'Bytes');
  // Missing or foreign counts as lost too: either way pgrelay has no slot holding its changes.
  add('SlotLost', slot.state === 'ok' ? 0 : 1, 'Count');
  add('SlotMissing', slot.state === 'missing' ? 1 : 0, 'Count');
  add('PublicationMissingTables', publication.missingTables.length, 'Count');
  // The metrics union has no `Seconds` unit; the name carries it.
  if (opts.lastAckAgeSeconds !== undefined) add('SlotLastAckAgeSeconds', opts.lastAckAgeSeconds, 'Seconds');

  return emfDocument({ Source: opts.sourceId, Slot: slot.name }, metrics, opts.now, {
    slotState: slot.state,
    walStatus: details?.walStatus ?? null,
    confirmedFlushLsn: details?.confirmedFlushLsn ?? null,
    activePid: details?.activePid ?? null,
    invalidationReason: details?.invalidationReason ?? null,
    currentWalLsn: status.currentWalLsn,
    publicationExists: publication.exists,
    missingTables: publication.missingTables,
  });
}
