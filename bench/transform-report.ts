/**
 * The transform scenarios' summary: medians over runs, the Lambda cost derived from them
 * (lambda-cost.ts), and the Markdown the bench prints after the streamer table.
 */
import { FULL_VCPU_MB, LAMBDA_ARM64_US_EAST_1, lambdaCost, PRICED_MEMORY_MB, type InvocationCost } from './lambda-cost.ts';
import { median } from './report.ts';
import type { TransformOutputs, TransformResult } from './run-transform.ts';

/** The SQS event every invocation handles. */
export interface TransformEventInfo {
  recordsPath: string;
  /** Changes of the mixed workload the streamer ran through, and the messages it sent. */
  workloadChanges: number;
  capturedMessages: number;
  prepareSeconds: number;
  records: number;
  groups: string[];
  changes: number;
  /** Changes by kind: insert, update, update with before, delete, delete with before. */
  ops: Record<string, number>;
  bodyKib: number;
  minBodyKib: number;
  maxBodyKib: number;
}

export interface TransformMeasurement {
  scenario: string;
  label: string;
  outputs: TransformOutputs;
  run: number;
  result?: TransformResult;
  error?: string;
}

export interface TransformSummaryRow {
  scenario: string;
  label: string;
  outputs: TransformOutputs;
  runs: number;
  changesPerInvocation: number;
  eventsPerInvocation: number;
  /** Median over runs of each run's median invocation. */
  msPerInvocation: number;
  changesPerSecond: number;
  eventsPerSecond: number;
  cpuMsPerInvocation: number;
  gcMsPerInvocation: number;
  eventParseMs: number;
  /** Highest over runs. */
  peakRssMb: number;
  calls?: TransformResult['calls'];
  latencyProbe?: TransformResult['latencyProbe'];
  /** Per priced memory setting (PRICED_MEMORY_MB). */
  cost: InvocationCost[];
  error?: string;
}

export function summarizeTransform(measurements: TransformMeasurement[]): TransformSummaryRow[] {
  const byScenario = new Map<string, TransformMeasurement[]>();
  for (const m of measurements) byScenario.set(m.scenario, [...(byScenario.get(m.scenario) ?? []), m]);
  const rows: TransformSummaryRow[] = [];
  for (const [scenario, all] of byScenario) {
    const first = all[0] as TransformMeasurement;
    const ok = all.flatMap((m) => (m.result ? [m.result] : []));
    const failed = all.find((m) => m.error !== undefined);
    if (ok.length === 0) {
      rows.push({
        scenario, label: first.label, outputs: first.outputs, runs: 0, changesPerInvocation: NaN, eventsPerInvocation: NaN,
        msPerInvocation: NaN, changesPerSecond: NaN, eventsPerSecond: NaN, cpuMsPerInvocation: NaN, gcMsPerInvocation: NaN,
        eventParseMs: NaN, peakRssMb: NaN, cost: [], error: failed?.error ?? 'no runs',
      });
      continue;
    }
    const changes = (ok[0] as TransformResult).changesPerInvocation;
    const events = (ok[0] as TransformResult).eventsPerInvocation;
    const ms = median(ok.map((r) => r.medianMs));
    const cpuMs = median(ok.map((r) => r.cpuMsPerInvocation));
    const probes = ok.flatMap((r) => (r.latencyProbe ? [r.latencyProbe] : []));
    const row: TransformSummaryRow = {
      scenario,
      label: first.label,
      outputs: first.outputs,
      runs: ok.length,
      changesPerInvocation: changes,
      eventsPerInvocation: events,
      msPerInvocation: ms,
      changesPerSecond: changes / (ms / 1000),
      eventsPerSecond: events / (ms / 1000),
      cpuMsPerInvocation: cpuMs,
      gcMsPerInvocation: median(ok.map((r) => r.gcMsPerInvocation)),
      eventParseMs: median(ok.map((r) => r.eventParseMs)),
      peakRssMb: Math.max(...ok.map((r) => r.peakRssMb)),
      cost: PRICED_MEMORY_MB.map((mb) => lambdaCost({ cpuMs, changesPerInvocation: changes }, mb)),
      ...(failed ? { error: `${all.length - ok.length} run(s) failed: ${failed.error}` } : {}),
    };
    const calls = ok[0]?.calls;
    if (calls) row.calls = calls;
    if (probes.length > 0) {
      const probeMs = median(probes.map((p) => p.medianMs));
      const delayMs = (probes[0] as NonNullable<TransformResult['latencyProbe']>).delayMs;
      row.latencyProbe = { delayMs, invocations: probes.reduce((n, p) => n + p.invocations, 0), medianMs: probeMs, sequentialCalls: (probeMs - ms) / delayMs };
    }
    rows.push(row);
  }
  return rows;
}

export function transformMarkdown(rows: TransformSummaryRow[], event: TransformEventInfo): string {
  const mix = Object.entries(event.ops)
    .map(([op, n]) => `${fmtInt(n)} ${op}`)
    .join(', ');
  const lines = [
    `Event: ${event.records} records from ${event.groups.length} message groups, ${fmtInt(event.changes)} changes (${mix}), ` +
      `${(event.bodyKib / 1024).toFixed(2)} MiB of bodies (${event.minBodyKib.toFixed(0)}–${event.maxBodyKib.toFixed(0)} KiB each), written by the streamer.`,
    '',
    '| transform, warm invocations of one event | changes / invocation | node events / invocation | ms / invocation | changes/s | node events/s | CPU ms / invocation | peak RSS MB | Lambda arm64 1024 MB: $ / 1M changes |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    if (r.runs === 0) {
      lines.push(`| ${r.label} | – | – | – | – | – | – | – | failed: ${oneLine(r.error)} |`);
      continue;
    }
    const at1024 = r.cost.find((c) => c.memoryMb === 1024);
    lines.push(
      `| ${r.label} | ${fmtInt(r.changesPerInvocation)} | ${fmtInt(r.eventsPerInvocation)} | ${r.msPerInvocation.toFixed(1)} | ${fmtInt(r.changesPerSecond)} | ${fmtInt(r.eventsPerSecond)} | ${r.cpuMsPerInvocation.toFixed(1)} | ${r.peakRssMb.toFixed(0)} | ${at1024 ? fmtUsd(at1024.usdPerMillionChanges) : '–'} |`,
    );
  }
  const price = LAMBDA_ARM64_US_EAST_1;
  lines.push(
    '',
    `Lambda cost per 1M changes (arm64, us-east-1: $${price.usdPerGbSecond} per GB-s, $${price.usdPerMillionRequests.toFixed(2)} per 1M requests; ` +
      `duration = CPU ms × ${FULL_VCPU_MB} / memory MB, billed × memory; waiting for the outputs not included):`,
    '',
    '| outputs | memory MB | vCPU | est. ms / invocation | invocations / 1M changes | GB-s / 1M changes | duration $ | requests $ | $ / 1M changes |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of rows) {
    for (const c of r.cost) {
      lines.push(
        `| ${r.outputs} | ${c.memoryMb} | ${c.vcpu.toFixed(2)} | ${c.durationMs.toFixed(1)} | ${c.invocationsPerMillionChanges.toFixed(1)} | ${c.gbSecondsPerMillionChanges.toFixed(2)} | ${fmtUsd(c.usdDurationPerMillionChanges)} | ${fmtUsd(c.usdRequestsPerMillionChanges)} | ${fmtUsd(c.usdPerMillionChanges)} |`,
      );
    }
  }
  const probed = rows.find((r) => r.latencyProbe && r.calls);
  if (probed?.latencyProbe && probed.calls) {
    const p = probed.latencyProbe;
    const c = probed.calls;
    const usdPerMsOfRoundTrip = (memoryMb: number) =>
      (1e6 / probed.changesPerInvocation) * p.sequentialCalls * 0.001 * (memoryMb / 1024) * price.usdPerGbSecond;
    lines.push(
      '',
      `Waiting for the outputs: an invocation makes ${fmtNum(c.putEvents)} PutEvents calls (${fmtNum(c.putEventsEntries)} entries) and ` +
        `${fmtNum(c.sendMessageBatch)} SendMessageBatch calls (${fmtNum(c.nodesMessages)} messages, ${c.nodesMb.toFixed(2)} MiB). ` +
        `With every call answered after ${p.delayMs} ms it took ${p.medianMs.toFixed(0)} ms instead of ${probed.msPerInvocation.toFixed(0)} ms: ` +
        `it waits for ≈ ${p.sequentialCalls.toFixed(0)} calls one after another. Each ms of round trip to SQS/EventBridge adds ≈ ${p.sequentialCalls.toFixed(0)} ms ` +
        `to every invocation, ${fmtUsd(usdPerMsOfRoundTrip(1024))} per 1M changes at 1024 MB — not in the table above.`,
    );
  }
  return lines.join('\n');
}

function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
}

function fmtNum(n: number): string {
  return Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(1);
}

function fmtUsd(n: number): string {
  return Number.isFinite(n) ? `$${n.toPrecision(3)}` : '–';
}

function oneLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0]?.slice(0, 120) ?? '';
}
