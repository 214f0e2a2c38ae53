/** The figures `pgrelay status` and the monitor show of a load (bootstrapRecord), and how status prints them. */
import { describe, expect, it } from 'vitest';
import { formatDuration, formatLoad } from '#cli/status.ts';
import type { BootstrapRequest } from '#shared/bootstrap-state.ts';
import { bootstrapRecord } from '#shared/source-status.ts';

const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, 0) + seconds * 1000);

const running: BootstrapRequest = {
  table: 'public.items',
  state: 'running',
  reason: 'operator',
  gapAfterLsn: null,
  gapUntilLsn: null,
  requestedAt: at(-5),
  requestStamp: '20251231T235955.000000',
  requestedBy: 'pgrelay bootstrap (ops)',
  updatedAt: at(10),
  detail: 'asked for with pgrelay bootstrap',
  loadId: 'L1',
  lastKey: ['4000'],
  upperKey: ['10000'],
  rowsRead: 4000,
  bytesRead: 400_000,
  rowsEstimated: 10_000,
  startedAt: at(0),
  finishedAt: null,
};

describe('bootstrap figures', () => {
  it('running: rows read over the time to the last recorded chunk, and the estimated rest at that rate', () => {
    expect(bootstrapRecord(running)).toMatchObject({
      state: 'running',
      requestedAt: '2025-12-31T23:59:55.000Z',
      startedAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:10.000Z',
      finishedAt: null,
      elapsedSeconds: 10,
      rowsPerSecond: 400,
      percentOfEstimate: 40,
      etaSeconds: 15,
      error: null,
      note: 'asked for with pgrelay bootstrap',
    });
  });

  it('no rate before time has passed; no ETA without an estimate, or once reading is past it', () => {
    expect(bootstrapRecord({ ...running, rowsRead: 0, updatedAt: at(0) })).toMatchObject({ elapsedSeconds: 0, rowsPerSecond: null, etaSeconds: null, percentOfEstimate: 0 });
    expect(bootstrapRecord({ ...running, rowsEstimated: null })).toMatchObject({ rowsPerSecond: 400, percentOfEstimate: null, etaSeconds: null });
    expect(bootstrapRecord({ ...running, rowsRead: 12_000 })).toMatchObject({ percentOfEstimate: 120, etaSeconds: null });
    expect(bootstrapRecord({ ...running, state: 'requested', loadId: null, startedAt: null, rowsRead: 0 })).toMatchObject({ elapsedSeconds: null, rowsPerSecond: null, etaSeconds: null });
  });

  it('ended: the rate over the whole load, no ETA; a failure carries its reason', () => {
    const done = { ...running, state: 'done' as const, rowsRead: 10_000, updatedAt: at(20), finishedAt: at(20) };
    expect(bootstrapRecord(done)).toMatchObject({ elapsedSeconds: 20, rowsPerSecond: 500, percentOfEstimate: 100, etaSeconds: null, finishedAt: '2026-01-01T00:00:20.000Z' });
    const failed = bootstrapRecord({ ...running, state: 'failed', finishedAt: at(8), updatedAt: at(8), detail: 'permission denied for table items' });
    expect(failed).toMatchObject({ elapsedSeconds: 8, rowsPerSecond: 500, error: 'permission denied for table items', etaSeconds: null });
    // Cancelled while running: the streamer records the end when it sees it; until then, the cancel's time.
    expect(bootstrapRecord({ ...running, state: 'cancelled', updatedAt: at(16) })).toMatchObject({ elapsedSeconds: 16, rowsPerSecond: 250, error: null });
  });
});

describe('status: a load under its table', () => {
  const indent = ' '.repeat(16);
  it('rows read of the estimate, rate and ETA, start; an ended one its end and, failed, its error', () => {
    expect(formatLoad(bootstrapRecord({ ...running, rowsRead: 1200, rowsEstimated: 1_000_000, updatedAt: at(3) }))).toBe(
      `${indent}rows      1,200 of ~1,000,000 (0.1%), 400 rows/s, ETA 41 min 37 s\n${indent}started   2026-01-01T00:00:00.000Z\n`,
    );
    expect(formatLoad(bootstrapRecord({ ...running, state: 'failed', rowsEstimated: null, rowsRead: 7, finishedAt: at(2), detail: 'boom' }))).toBe(
      `${indent}rows      7 (no estimate), 3.5 rows/s\n${indent}started   2026-01-01T00:00:00.000Z\n${indent}finished  2026-01-01T00:00:02.000Z (after 2 s)\n${indent}error     boom\n`,
    );
    expect(formatLoad(bootstrapRecord({ ...running, rowsRead: 12_000 }))).toContain('rows      12,000 of ~10,000 (120.0%), 1,200 rows/s, past the estimate\n');
    expect(formatLoad(bootstrapRecord({ ...running, state: 'requested', startedAt: null, loadId: null, rowsRead: 0 }))).toBe('');
  });

  it('durations read as seconds, minutes or hours', () => {
    expect([formatDuration(42), formatDuration(192), formatDuration(7500), formatDuration(0.4)]).toEqual(['42 s', '3 min 12 s', '2 h 5 min', '0 s']);
  });
});
