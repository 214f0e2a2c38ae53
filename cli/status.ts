/** `pgrelay status`: slot, lag, retained WAL, publication, bootstrap progress, last acknowledged position. */
import { OPERATOR_USAGE, parseOperatorArgs } from './args.ts';
import { OperatorError, processIo, runCommand, type OperatorIo } from './operator.ts';
import { formatBytes } from '#core/bytes.ts';
import { readStatus, statusProblems, type BootstrapRecord, type SourceStatus, type StatusProblem } from '#shared/source-status.ts';

const STATUS_USAGE = `usage: pgrelay status [options]
Shows the slot (lag, retained WAL, last acknowledged position), the publication and its tables,
each table's bootstrap (rows read of the estimate, rows/s, ETA) and what the monitor last saw.
Exit code: 0 the slot is healthy, 1 it is missing, lost or unusable, 2 the status could not be read.
${OPERATOR_USAGE}`;

export async function statusCommand(argv: string[], io: OperatorIo = processIo()): Promise<number> {
  return runCommand('status', STATUS_USAGE, argv, io, async (ctx) => {
    const target = parseOperatorArgs(argv, io.env);
    if (target.positionals.length > 0) throw new OperatorError('USAGE', `status takes no arguments, got "${target.positionals.join(' ')}"; run pgrelay status --help`);
    const status = await ctx.withDatabase(target.connections, (client) => readStatus(client, target));
    const problems = statusProblems(status);
    if (target.json) io.out(`${JSON.stringify({ target: ctx.where, ...status, problems }, null, 2)}\n`);
    else io.out(formatStatus(ctx.where ?? '', status, problems));
    // Only what stops streaming fails the check; warnings are for the reader.
    return status.slot.state === 'ok' ? 0 : 1;
  });
}

const LABEL = 14;

function line(label: string, value: string): string {
  return `${label.padEnd(LABEL)}${value}\n`;
}

export function formatStatus(where: string, s: SourceStatus, problems: StatusProblem[]): string {
  let out = `pgrelay status of ${where} (PostgreSQL ${s.serverVersion}${s.inRecovery ? ', standby' : ''})\n`;
  const slot = s.slot;
  if (slot.state === 'missing') {
    out += line('slot', `${slot.name}: MISSING`);
  } else {
    const activity = slot.active ? `active (pid ${slot.activePid ?? '?'})` : 'inactive (no streamer connected)';
    const state = slot.state === 'ok' ? '' : `${slot.state.toUpperCase()}, `;
    out += line('slot', `${slot.name}: ${state}${activity}${slot.walStatus !== null ? `, wal_status ${slot.walStatus}` : ''}`);
    out += line('acknowledged', slot.confirmedFlushLsn ?? 'none');
    if (slot.lagBytes !== null) out += line('lag', `${formatBytes(slot.lagBytes)} (WAL written since the acknowledged position; now at ${s.currentWalLsn ?? '?'})`);
    if (slot.retainedWalBytes !== null) {
      const safe =
        slot.safeWalSizeBytes !== null
          ? `${formatBytes(slot.safeWalSizeBytes)} more before the slot is at risk`
          : slot.walStatus !== null
            ? 'no cap: max_slot_wal_keep_size is -1'
            : 'no cap known before PostgreSQL 13';
      out += line('retained WAL', `${formatBytes(slot.retainedWalBytes)} (${safe})`);
    }
  }
  const w = s.watch;
  if (w !== null) {
    if (w.confirmedSeenAt !== null && s.lastAckAgeSeconds !== null) {
      out += line('monitor', `acknowledged position unchanged for ${s.lastAckAgeSeconds} s (since ${w.confirmedSeenAt.toISOString()}, as the monitor saw it)`);
    } else if (w.confirmedSeenAt !== null) {
      out += line('monitor', `acknowledged position moved since the monitor's last look (${w.confirmedSeenAt.toISOString()})`);
    }
    if (w.lastStopAt !== null) out += line('last restart', `${w.lastStopAt.toISOString()}: ${w.lastStopReason ?? ''}`);
    if (w.recreatedAt !== null) out += line('gap', `slot recreated ${w.recreatedAt.toISOString()}: changes after ${w.gapAfterLsn ?? '?'} and before ${w.gapUntilLsn ?? '?'} were lost; tables requested for a re-read`);
  }
  const pub = s.publication;
  out += line(
    'publication',
    !pub.exists ? `${pub.name}: MISSING` : `${pub.name}: ${pub.allTables ? 'all tables' : `${pub.tables.length} table${pub.tables.length === 1 ? '' : 's'}`}${pub.missingTables.length > 0 ? `, lacks ${pub.missingTables.join(', ')}` : ''}`,
  );
  const width = Math.max(0, ...s.tables.map((t) => t.table.length));
  for (const t of s.tables) {
    const membership = !t.exists ? 'does not exist ' : t.inPublication ? 'published      ' : 'NOT published  ';
    out += line('table', `${t.table.padEnd(width)}  ${membership}bootstrap ${t.bootstrap.detail}`);
    if (t.bootstrap.state !== 'untracked' && t.bootstrap.state !== 'not-requested') out += formatLoad(t.bootstrap);
  }
  if (problems.length > 0) {
    out += 'problems\n';
    for (const p of problems) out += `  ${p.severity}: ${p.message}\n`;
  }
  return out;
}

/** A load's figures under its table's line: rows read of the estimate, rate and ETA, start, end, error. */
export function formatLoad(b: BootstrapRecord): string {
  const sub = (label: string, value: string) => `${' '.repeat(LABEL + 2)}${label.padEnd(10)}${value}\n`;
  let out = '';
  if (b.startedAt !== null) {
    const of = b.rowsEstimated !== null && b.percentOfEstimate !== null ? ` of ~${count(b.rowsEstimated)} (${b.percentOfEstimate.toFixed(1)}%)` : ' (no estimate)';
    const rate = b.rowsPerSecond !== null ? `, ${formatRate(b.rowsPerSecond)} rows/s` : '';
    const past = b.state === 'running' && b.percentOfEstimate !== null && b.percentOfEstimate >= 100;
    const eta = b.etaSeconds !== null ? `, ETA ${formatDuration(b.etaSeconds)}` : past ? ', past the estimate' : '';
    out += sub('rows', `${count(b.rowsRead)}${of}${rate}${eta}`);
    out += sub('started', b.startedAt);
  }
  if (b.finishedAt !== null) out += sub('finished', `${b.finishedAt}${b.elapsedSeconds !== null ? ` (after ${formatDuration(b.elapsedSeconds)})` : ''}`);
  if (b.error !== null) out += sub('error', b.error);
  return out;
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

function formatRate(perSecond: number): string {
  return perSecond >= 100 ? count(Math.round(perSecond)) : perSecond.toFixed(1);
}

/** 42 s, 3 min 12 s, 2 h 5 min. */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
