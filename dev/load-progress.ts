/**
 * What `npm start` shows of a bootstrap: one line when a table's load starts and one when it
 * completes (from the label.snapshot.* events the consumer receives: once per load, although
 * every message group of the nodes queue gets a copy), the snapshot rows counted instead of
 * printed, the load under way on the status line (from the state schema's bootstrap table),
 * and one summary line when every requested load has ended.
 */
import type { BootstrapLoad, GraphNodeEvent, NodeEvent } from '#core/change-event.ts';
import type { BootstrapRequest } from '#shared/bootstrap-state.ts';
import type { Screen } from './screen.ts';

export const count = (n: number): string => n.toLocaleString('en-US');

interface Load {
  label: string;
  startedAt: number;
  done?: { outcome: BootstrapLoad['outcome']; rows: number };
}

export class LoadProgress {
  /** Snapshot rows received (node.updated with snapshot: true), over the whole run. */
  snapshotRows = 0;
  /** Loads of the current round (since the last summary), by load id. */
  private round = new Map<string, Load>();
  private roundStartedAt = 0;
  private liveAtRoundStart = 0;
  /** Marker events already shown (a copy per message group, and again when a message is retried). */
  private readonly seen = new Set<string>();
  /** Completion markers received: a state read issued after the last one may end the round. */
  private completions = 0;

  constructor(
    private readonly screen: Screen,
    /** Node events received so far that were not snapshot rows. */
    private readonly liveEvents: () => number,
    /** The state table's loads now (undefined: no state schema yet). */
    private readonly readLoads: () => Promise<BootstrapRequest[] | undefined>,
  ) {}

  /** A node event: counts a snapshot row; true when it was one (and so is not printed). */
  row(e: GraphNodeEvent): boolean {
    if (e.type !== 'node.updated' || e.snapshot !== true) return false;
    this.snapshotRows++;
    return true;
  }

  /** A label.snapshot.started or .completed event (onSnapshotStarted, onSnapshotCompleted): shown once per load. */
  marker(e: NodeEvent): void {
    if ((e.type !== 'label.snapshot.started' && e.type !== 'label.snapshot.completed') || e.bootstrap === undefined) return;
    const key = `${e.type}:${e.bootstrap.id}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (e.type === 'label.snapshot.started') this.started(e.node.label, e.bootstrap);
    else this.completed(e.node.label, e.bootstrap);
  }

  private started(label: string, load: BootstrapLoad): void {
    if (this.round.size === 0) {
      this.roundStartedAt = performance.now();
      this.liveAtRoundStart = this.liveEvents();
    }
    this.round.set(load.id, { label, startedAt: performance.now() });
    this.screen.snapshotStarted(label, load.reason);
  }

  private completed(label: string, load: BootstrapLoad): void {
    const entry = this.round.get(load.id) ?? { label, startedAt: performance.now() };
    entry.done = { outcome: load.outcome, rows: load.rows ?? 0 };
    this.round.set(load.id, entry);
    this.completions++;
    this.screen.snapshotCompleted(label, load.outcome ?? 'complete', load.rows ?? 0, (performance.now() - entry.startedAt) / 1000);
    void this.statusPart().catch(() => undefined);
  }

  /** The round ends when every load it started has completed and the state table has no open request. */
  private endRound(open: number, seq: number): void {
    const loads = [...this.round.values()];
    if (open > 0 || seq !== this.completions || loads.length === 0 || loads.some((l) => l.done === undefined)) return;
    const rows = loads.reduce((sum, l) => sum + (l.done?.rows ?? 0), 0);
    const incomplete = loads.filter((l) => l.done?.outcome !== 'complete').length;
    const seconds = (performance.now() - this.roundStartedAt) / 1000;
    this.round = new Map();
    this.screen.loadSummary(
      `bootstrap done: ${loads.length} table${loads.length === 1 ? '' : 's'}, ${count(rows)} rows in ${seconds.toFixed(1)} s` +
        `${incomplete > 0 ? ` (${incomplete} not complete)` : ''}, alongside ${count(this.liveEvents() - this.liveAtRoundStart)} live events`,
    );
  }

  /**
   * The status line's part for the loads in the state table: `loading orders 3,200/5,000
   * (2 queued)`, or nothing when none is open (which, read after the last completion marker,
   * ends the round).
   */
  async statusPart(): Promise<string> {
    const seq = this.completions;
    const requests = await this.readLoads();
    if (requests === undefined) return '';
    const running = requests.filter((r) => r.state === 'running');
    const queued = requests.filter((r) => r.state === 'requested').length;
    if (running.length === 0 && queued === 0) {
      this.endRound(0, seq);
      return '';
    }
    const parts = running.map((r) => {
      const table = r.table.startsWith('public.') ? r.table.slice('public.'.length) : r.table;
      // The estimate is pg_class.reltuples at the start: none before an ANALYZE, and live inserts add rows.
      const estimate = Math.round(r.rowsEstimated ?? 0);
      const of = estimate > 0 && estimate >= r.rowsRead ? `/${count(estimate)}` : ' rows';
      return `loading ${table} ${count(r.rowsRead)}${of}`;
    });
    if (queued > 0) parts.push(running.length > 0 ? `(${queued} queued)` : `bootstrap: ${queued} table${queued === 1 ? '' : 's'} queued`);
    return ` | ${parts.join(' ')}`;
  }
}
