/**
 * CPU profiling of a bench child through the inspector, with positions mapped back to the
 * TypeScript sources through the bundle's source map (the child runs with
 * `--enable-source-maps`; the mapping is only available inside the process that loaded the
 * modules — hence here, not from a `--cpu-prof` file afterwards).
 */
import { writeFile, mkdir } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { findSourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface HotSpot {
  function: string;
  location: string;
  selfMs: number;
  selfPct: number;
  /** Hottest lines inside the function, `file:line (pct)`. */
  lines?: string[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  top: HotSpot[];
  /** Self time by source file (or by category for V8 internals), percent of samples. */
  byFile: { file: string; selfPct: number }[];
  /** Time with the function anywhere on the stack (callees included), percent of samples. */
  inclusive: { function: string; location: string; pct: number }[];
}

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
  positionTicks?: { line: number; ticks: number }[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export async function startProfiler(): Promise<{ stop(outFile: string): Promise<ProfileSummary> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return {
    async stop(outFile: string) {
      const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: CpuProfile };
      session.disconnect();
      const summary = summarize(profile, outFile);
      await mkdir(path.dirname(outFile), { recursive: true });
      await writeFile(outFile, JSON.stringify(profile));
      return summary;
    },
  };
}

const positions = new Map<string, { file: string; line: number }>();

/** `file:line` (1-based) of a generated position, in the original source when a map exists. */
function originalPosition(url: string, line0: number, column0: number): { file: string; line: number } {
  const cacheKey = `${url}:${line0}:${column0}`;
  let pos = positions.get(cacheKey);
  if (!pos) {
    pos = mapPosition(url, line0, column0);
    positions.set(cacheKey, pos);
  }
  return pos;
}

function mapPosition(url: string, line0: number, column0: number): { file: string; line: number } {
  const map = url ? (findSourceMap(url) ?? (url.startsWith('file:') ? findSourceMap(fileURLToPath(url)) : undefined)) : undefined;
  const entry = map?.findEntry(line0, column0) as { originalSource?: string; originalLine?: number } | undefined;
  if (entry?.originalSource !== undefined && entry.originalLine !== undefined) {
    return { file: shortPath(entry.originalSource), line: entry.originalLine + 1 };
  }
  return { file: shortPath(url), line: line0 + 1 };
}

function shortPath(url: string): string {
  let p = url;
  if (p.startsWith('file:')) p = fileURLToPath(p);
  const root = `${process.cwd()}/`; // the bench starts children in the project root
  if (p.startsWith(root)) p = p.slice(root.length);
  return p.replace(/^.*\/node_modules\//, 'node_modules/') || '(native)';
}

function summarize(profile: CpuProfile, outFile: string): ProfileSummary {
  const self = new Map<number, number>();
  let totalUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    const id = profile.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + dt);
    totalUs += dt;
  }
  const groups = new Map<string, { fn: string; location: string; us: number; lineTicks: Map<string, number> }>();
  const byFile = new Map<string, number>();
  for (const node of profile.nodes) {
    const us = self.get(node.id) ?? 0;
    if (us === 0) continue;
    const { functionName, url, lineNumber, columnNumber } = node.callFrame;
    const pos = url ? originalPosition(url, lineNumber, columnNumber) : undefined;
    const fn = functionName || (url ? '(anonymous)' : '(native)');
    const location = pos ? `${pos.file}:${pos.line}` : functionName.startsWith('(') ? functionName : '(native)';
    const key = `${fn} ${location}`;
    let g = groups.get(key);
    if (!g) {
      g = { fn, location, us: 0, lineTicks: new Map() };
      groups.set(key, g);
    }
    g.us += us;
    for (const tick of node.positionTicks ?? []) {
      const at = url ? originalPosition(url, tick.line - 1, 0) : undefined;
      if (!at) continue;
      const lineKey = `${at.file}:${at.line}`;
      g.lineTicks.set(lineKey, (g.lineTicks.get(lineKey) ?? 0) + tick.ticks);
    }
    const fileKey = pos ? pos.file : fn;
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((1000 * us) / Math.max(1, totalUs)) / 10;
  const inclusive = inclusiveTimes(profile, self);
  const top = [...groups.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, 30)
    .map((g) => {
      const ticks = [...g.lineTicks.entries()].sort((a, b) => b[1] - a[1]);
      const allTicks = ticks.reduce((n, [, t]) => n + t, 0);
      const spot: HotSpot = { function: g.fn, location: g.location, selfMs: Math.round(g.us / 100) / 10, selfPct: pct(g.us) };
      if (ticks.length > 0) spot.lines = ticks.slice(0, 3).map(([at, t]) => `${at} (${Math.round((100 * t) / allTicks)}%)`);
      return spot;
    });
  return {
    file: shortPath(outFile),
    totalMs: Math.round(totalUs / 1000),
    top,
    byFile: [...byFile.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 20)
      .map(([file, us]) => ({ file, selfPct: pct(us) })),
    inclusive: [...inclusive.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, 40)
      .map((f) => ({ function: f.fn, location: f.location, pct: pct(f.us) })),
  };
}

/** Per function (name + definition site), the sampled time of every stack it is on, counted once per stack. */
function inclusiveTimes(profile: CpuProfile, self: Map<number, number>): Map<string, { fn: string; location: string; us: number }> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const childIds = new Set(profile.nodes.flatMap((n) => n.children ?? []));
  const totals = new Map<string, { fn: string; location: string; us: number }>();
  const onStack = new Map<string, number>();
  const names = new Map<string, { fn: string; location: string }>();
  const keyOf = (node: ProfileNode): { key: string; fn: string; location: string } | undefined => {
    const { functionName, url, lineNumber, columnNumber } = node.callFrame;
    if (!url) return undefined; // (root), (program), (garbage collector), natives
    const pos = originalPosition(url, lineNumber, columnNumber);
    const fn = functionName || '(anonymous)';
    const location = `${pos.file}:${pos.line}`;
    const key = `${fn} ${location}`;
    names.set(key, { fn, location });
    return { key, fn, location };
  };
  // Iterative depth-first walk (stacks can be deep); each entry is entered once and left once.
  const stack: { node: ProfileNode; leaving: boolean }[] = profile.nodes
    .filter((n) => !childIds.has(n.id))
    .map((node) => ({ node, leaving: false }));
  while (stack.length > 0) {
    const { node, leaving } = stack.pop() as { node: ProfileNode; leaving: boolean };
    const k = keyOf(node);
    if (leaving) {
      if (k) onStack.set(k.key, (onStack.get(k.key) ?? 1) - 1);
      continue;
    }
    if (k) onStack.set(k.key, (onStack.get(k.key) ?? 0) + 1);
    const us = self.get(node.id) ?? 0;
    if (us > 0) {
      for (const [key, depth] of onStack) {
        if (depth <= 0) continue;
        let t = totals.get(key);
        if (!t) {
          t = { ...(names.get(key) as { fn: string; location: string }), us: 0 };
          totals.set(key, t);
        }
        t.us += us;
      }
    }
    stack.push({ node, leaving: true });
    for (const id of node.children ?? []) {
      const child = byId.get(id);
      if (child) stack.push({ node: child, leaving: false });
    }
  }
  return totals;
}

/** The summary's hottest functions and files, to stderr (the bench's progress stream). */
export function printProfile(p: ProfileSummary): void {
  process.stderr.write(`\n    profile ${p.file} (${p.totalMs} ms sampled), top self time:\n`);
  for (const h of p.top.slice(0, 20)) {
    process.stderr.write(`      ${h.selfPct.toFixed(1).padStart(5)}%  ${h.function}  ${h.location}${h.lines ? `  [${h.lines.join(', ')}]` : ''}\n`);
  }
  process.stderr.write(`    by file: ${p.byFile.slice(0, 12).map((f) => `${f.file} ${f.selfPct}%`).join(', ')}\n`);
  process.stderr.write(`    inclusive: ${p.inclusive.slice(0, 25).map((f) => `${f.function} ${f.pct}%`).join(', ')}\n    `);
}
