/**
 * What `pgrelay doctor` reports, whatever the check family: a Finding (with its Severity and
 * the Fix to paste), the DoctorReport that collects them, the one formatter that prints a report
 * for people, and the exit code a report means (0 ready, 1 something blocks, 2 a check could not
 * run). The check families (server-settings.ts, role-privileges.ts, tls.ts, publication.ts,
 * tables.ts, slots.ts, state-schema.ts) produce findings; diagnose.ts assembles the report.
 */
import type { Finding, Severity } from './finding.ts';
import { platformName, type Platform } from './platform.ts';

export interface DoctorReport {
  ready: boolean;
  platform: Platform;
  /** host:port/database */
  target: string;
  user: string;
  serverVersion: string;
  findings: Finding[];
}

/** 0 ready, 1 something blocks streaming, 2 a check could not run. */
export function exitCodeOf(findings: Finding[]): 0 | 1 | 2 {
  if (findings.some((f) => f.severity === 'block')) return 1;
  if (findings.some((f) => f.severity === 'error')) return 2;
  return 0;
}

const MARKS = {
  unicode: { ok: '✓', warn: '!', block: '✗', error: '?' },
  ascii: { ok: '[ok]   ', warn: '[warn] ', block: '[BLOCK]', error: '[error]' },
} as const;

export function formatReport(report: DoctorReport, opts: { unicode: boolean }): string {
  const marks = opts.unicode ? MARKS.unicode : MARKS.ascii;
  const pad = ' '.repeat(opts.unicode ? 4 : 10);
  const lines = [`pgrelay doctor: ${report.target} as ${report.user}, ${platformName(report.platform)} ${report.serverVersion}`];
  for (const f of report.findings) {
    lines.push(`${marks[f.severity]} ${f.title}`);
    if (f.severity === 'ok' && !f.fix) continue;
    if (f.severity !== 'ok') lines.push(`${pad}${f.detail}`);
    if (f.fix?.parameterGroup) lines.push(`${pad}change: ${f.fix.parameterGroup}`);
    if (f.fix?.sql) {
      lines.push(`${pad}${f.severity === 'ok' ? 'optional' : 'fix'}:`);
      for (const line of f.fix.sql.split('\n')) lines.push(`${pad}  ${line}`);
    }
    if (f.fix?.note) lines.push(`${pad}${f.fix.note}`);
  }
  const count = (s: Severity) => report.findings.filter((f) => f.severity === s).length;
  const parts = [`${count('block')} blocking`, `${count('warn')} warning${count('warn') === 1 ? '' : 's'}`, `${count('ok')} ok`];
  if (count('error') > 0) parts.push(`${count('error')} not checked`);
  const verdict = count('block') > 0 ? 'NOT READY' : count('error') > 0 ? 'INCOMPLETE' : 'READY';
  lines.push(`${verdict}: ${parts.join(', ')}`);
  return `${lines.join('\n')}\n`;
}
