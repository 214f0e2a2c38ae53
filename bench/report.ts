/**
 * Turns measurements into the summary: medians over runs, ratios to the best ceiling of the same
 * WAL, the targets with PASS/FAIL, and the Markdown the bench prints.
 */

export type ScenarioGroup = 'backlog' | 'big';

export interface Measurement {
  scenario: string;
  label: string;
  group: ScenarioGroup;
  kind: 'ceiling' | 'streamer';
  run: number;
  changes: number;
  seconds: number;
  peakRssMb?: number;
  /** CPU time of the reader's own process (not PostgreSQL's). */
  cpuSeconds?: number;
  details?: Record<string, unknown>;
  error?: string;
}

export interface SummaryRow {
  scenario: string;
  label: string;
  group: ScenarioGroup;
  kind: 'ceiling' | 'streamer';
  runs: number;
  changes: number;
  /** Median over runs. */
  seconds: number;
  changesPerSecond: number;
  /** Highest over runs (peak means peak). */
  peakRssMb?: number;
  /** changes/s divided by the best ceiling of the same group. */
  ratioToCeiling?: number;
  /** Median CPU time of the reader's process per change, in microseconds. */
  cpuMicrosPerChange?: number;
  error?: string;
}

export interface TargetResult {
  target: string;
  measured: string;
  pass: boolean;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function summarize(measurements: Measurement[]): SummaryRow[] {
  const byScenario = new Map<string, Measurement[]>();
  for (const m of measurements) byScenario.set(m.scenario, [...(byScenario.get(m.scenario) ?? []), m]);
  const rows: SummaryRow[] = [];
  for (const [scenario, all] of byScenario) {
    const ok = all.filter((m) => m.error === undefined);
    const first = all[0] as Measurement;
    if (ok.length === 0) {
      rows.push({ scenario, label: first.label, group: first.group, kind: first.kind, runs: 0, changes: 0, seconds: NaN, changesPerSecond: NaN, error: first.error });
      continue;
    }
    const seconds = median(ok.map((m) => m.seconds));
    const changes = median(ok.map((m) => m.changes));
    const rss = ok.map((m) => m.peakRssMb).filter((v): v is number => v !== undefined);
    const cpu = ok.map((m) => m.cpuSeconds).filter((v): v is number => v !== undefined);
    rows.push({
      scenario,
      label: first.label,
      group: first.group,
      kind: first.kind,
      runs: ok.length,
      changes,
      seconds,
      changesPerSecond: changes / seconds,
      ...(rss.length > 0 ? { peakRssMb: Math.max(...rss) } : {}),
      ...(cpu.length > 0 ? { cpuMicrosPerChange: (median(cpu) * 1e6) / changes } : {}),
      ...(ok.length < all.length ? { error: `${all.length - ok.length} run(s) failed: ${all.find((m) => m.error)?.error}` } : {}),
    });
  }
  for (const row of rows) {
    const ceiling = bestCeiling(rows, row.group);
    if (ceiling && Number.isFinite(row.changesPerSecond)) row.ratioToCeiling = row.changesPerSecond / ceiling.changesPerSecond;
  }
  return rows;
}

export function bestCeiling(rows: SummaryRow[], group: ScenarioGroup): SummaryRow | undefined {
  return rows
    .filter((r) => r.group === group && r.kind === 'ceiling' && Number.isFinite(r.changesPerSecond))
    .sort((a, b) => b.changesPerSecond - a.changesPerSecond)[0];
}

export const TARGETS = {
  discardChangesPerSecond: 100_000,
  discardRatio: 0.6,
  sqsChangesPerSecond: 50_000,
  peakRssMb: 200,
};

export function evaluateTargets(rows: SummaryRow[]): TargetResult[] {
  const find = (scenario: string) => rows.find((r) => r.scenario === scenario);
  const results: TargetResult[] = [];
  const discard = find('streamer-discard');
  const sqs = find('streamer-sqs');
  const big = find('big-streamer-discard');
  const rate = (r: SummaryRow | undefined) => (r && Number.isFinite(r.changesPerSecond) ? r.changesPerSecond : NaN);
  // Without the backlog (--only), its targets are not measured rather than failed.
  if (!rows.some((r) => r.group === 'backlog')) return big ? [rssTarget(big)] : [];
  results.push({
    target: `streamer → discard ≥ ${fmtInt(TARGETS.discardChangesPerSecond)} changes/s`,
    measured: `${fmtInt(rate(discard))} changes/s`,
    pass: rate(discard) >= TARGETS.discardChangesPerSecond,
  });
  const ceiling = bestCeiling(rows, 'backlog');
  results.push({
    target: `streamer → discard ≥ ${TARGETS.discardRatio} × ceiling`,
    measured: `${fmtRatio(discard?.ratioToCeiling)} × ${ceiling ? `${fmtInt(ceiling.changesPerSecond)}/s (${ceiling.label})` : 'no ceiling'}`,
    pass: (discard?.ratioToCeiling ?? 0) >= TARGETS.discardRatio,
  });
  results.push({
    target: `streamer → SQS emulator ≥ ${fmtInt(TARGETS.sqsChangesPerSecond)} changes/s`,
    measured: `${fmtInt(rate(sqs))} changes/s`,
    pass: rate(sqs) >= TARGETS.sqsChangesPerSecond,
  });
  for (const r of [discard, sqs, big]) if (r) results.push(rssTarget(r));
  return results;
}

function rssTarget(r: SummaryRow): TargetResult {
  return {
    target: `peak RSS ≤ ${TARGETS.peakRssMb} MB: ${r.label}`,
    measured: r.peakRssMb === undefined ? 'n/a' : `${r.peakRssMb.toFixed(0)} MB`,
    pass: r.peakRssMb !== undefined && r.peakRssMb <= TARGETS.peakRssMb,
  };
}

export function markdown(rows: SummaryRow[], targets: TargetResult[]): string {
  const lines = [
    '| scenario | changes | seconds | changes/s | peak RSS MB | ratio to ceiling | reader CPU µs/change |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    if (r.runs === 0) {
      lines.push(`| ${r.label} | – | – | – | – | failed: ${oneLine(r.error)} | – |`);
      continue;
    }
    lines.push(
      `| ${r.label} | ${fmtInt(r.changes)} | ${r.seconds.toFixed(2)} | ${fmtInt(r.changesPerSecond)} | ${r.peakRssMb === undefined ? '–' : r.peakRssMb.toFixed(0)} | ${fmtRatio(r.ratioToCeiling)} | ${r.cpuMicrosPerChange === undefined ? '–' : r.cpuMicrosPerChange.toFixed(1)} |`,
    );
  }
  lines.push('', '| target | measured | result |', '|---|---|---|');
  for (const t of targets) lines.push(`| ${t.target} | ${t.measured} | ${t.pass ? 'PASS' : 'FAIL'} |`);
  return lines.join('\n');
}

function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
}

function fmtRatio(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(2);
}

function oneLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0]?.slice(0, 120) ?? '';
}
