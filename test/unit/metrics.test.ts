import { describe, expect, it } from 'vitest';
import { emfDocument } from '#core/emf.ts';
import { emfProblems } from '#test/helpers/emf.ts';
import { slotMetrics } from '#monitor/metrics.ts';
import type { BootstrapRequest, BootstrapState } from '#shared/bootstrap-state.ts';
import { BOOTSTRAP_UNTRACKED, bootstrapRecord, type BootstrapProgress, type SourceStatus, type TableStatus } from '#shared/source-status.ts';

describe('embedded metric format', () => {
  it('our documents pass the specification checks', () => {
    const doc = emfDocument({ Source: 'orders-db', Slot: 'pgrelay_orders' }, [{ name: 'ChangesStreamed', value: 12, unit: 'Count' }], 1_790_000_000_000);
    expect(emfProblems(doc)).toEqual([]);
    expect(doc).toMatchObject({ Source: 'orders-db', Slot: 'pgrelay_orders', ChangesStreamed: 12 });
  });

  it('the checker rejects what CloudWatch would reject', () => {
    const good = emfDocument({ Source: 's' }, [{ name: 'M', value: 1, unit: 'Count' }], 1_790_000_000_000);
    expect(emfProblems({ ...good, _aws: { ...(good._aws as object), Timestamp: '2026-01-01' } })).toContain('_aws.Timestamp must be epoch milliseconds');
    expect(emfProblems({ ...good, M: 'one' })).toContain('metric M must be a root number');
    expect(emfProblems({ ...good, Source: 3 })).toContain('dimension Source must be a root string member');
    const badUnit = emfDocument({ Source: 's' }, [{ name: 'M', value: 1, unit: 'Counts' as never }], 1_790_000_000_000);
    expect(emfProblems(badUnit)).toContain('metric M: unit Counts not allowed');
    expect(emfProblems({ M: 1 })).toEqual(['no _aws member']);
  });
});

describe('monitor metrics: bootstrap', () => {
  const request = (table: string, state: BootstrapState, rowsRead: number): BootstrapRequest => ({
    table,
    state,
    reason: 'initial',
    gapAfterLsn: null,
    gapUntilLsn: null,
    requestedAt: new Date('2026-01-01T00:00:00Z'),
    requestStamp: '20260101T000000.000000',
    requestedBy: 'pgrelay-monitor',
    updatedAt: new Date('2026-01-01T00:01:00Z'),
    detail: null,
    loadId: state === 'requested' ? null : `load-${table}`,
    lastKey: null,
    upperKey: null,
    rowsRead,
    bytesRead: rowsRead * 100,
    rowsEstimated: 10_000,
    startedAt: state === 'requested' ? null : new Date('2026-01-01T00:00:30Z'),
    finishedAt: state === 'done' ? new Date('2026-01-01T00:01:00Z') : null,
  });
  const table = (name: string, bootstrap: BootstrapProgress, configured = true): TableStatus => ({ table: name, configured, exists: true, inPublication: true, bootstrap });
  const status = (tables: TableStatus[]): SourceStatus => ({
    database: 'app',
    serverVersion: '17.2',
    serverVersionNum: 170002,
    inRecovery: false,
    currentWalLsn: '0/2000000',
    slot: { name: 'pgrelay_default', state: 'missing' },
    publication: { name: 'pgrelay_default', exists: true, allTables: false, tables: tables.map((t) => t.table), missingTables: [] },
    tables,
    watch: null,
    stateReadable: true,
    lastAckAgeSeconds: null,
  });
  const metric = (doc: Record<string, unknown>, name: string) => doc[name];

  it('counts the configured tables waiting, those being loaded, and the rows those loads have read', () => {
    const doc = slotMetrics(
      status([
        table('public.a', bootstrapRecord(request('public.a', 'running', 1200))),
        table('public.b', bootstrapRecord(request('public.b', 'running', 800))),
        table('public.c', bootstrapRecord(request('public.c', 'requested', 0))),
        // A finished load's rows are not under way any more.
        table('public.d', bootstrapRecord(request('public.d', 'done', 5000))),
        table('public.e', { state: 'not-requested', detail: 'not requested' }),
        // Published but not configured: not the monitor's to count.
        table('public.f', bootstrapRecord(request('public.f', 'running', 70)), false),
      ]),
      { sourceId: 'orders-db', now: Date.now() },
    );
    expect(emfProblems(doc)).toEqual([]);
    // Exactly the dimensions the alarms filter on (Powertools' own service dimension cleared).
    const directive = (doc._aws as { CloudWatchMetrics: { Namespace: string; Dimensions: string[][] }[] }).CloudWatchMetrics[0];
    expect(directive?.Namespace).toBe('PgRelay');
    expect(directive?.Dimensions).toEqual([['Source', 'Slot']]);
    expect(doc).toMatchObject({ Source: 'orders-db', Slot: 'pgrelay_default' });
    expect(doc).not.toHaveProperty('service');
    expect([metric(doc, 'BootstrapPendingTables'), metric(doc, 'BootstrapRunningTables'), metric(doc, 'BootstrapRowsRead')]).toEqual([3, 2, 2000]);
    expect(doc.bootstrap).toEqual({ 'public.a': 'running', 'public.b': 'running', 'public.c': 'requested', 'public.d': 'done', 'public.e': 'not-requested' });
  });

  it('without the state schema nothing is loading: zeros, not missing data', () => {
    const doc = slotMetrics(status([table('public.a', BOOTSTRAP_UNTRACKED)]), { sourceId: 'orders-db', now: Date.now() });
    expect([metric(doc, 'BootstrapPendingTables'), metric(doc, 'BootstrapRunningTables'), metric(doc, 'BootstrapRowsRead')]).toEqual([0, 0, 0]);
  });
});
