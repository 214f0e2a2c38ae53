/**
 * Each measured reader runs in its own Node process, so its peak RSS is its own and no other
 * work shares its event loop. A child gets its job as JSON in argv[2] and answers with one JSON
 * line on stdout (the last line); anything else it has to say goes to stderr.
 * BENCH_ROOT is only meaningful in the bench process (children run from a bundle, cwd = root).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Children still running, so a failure or Ctrl-C can end them (by their own pid only). */
export const liveChildren = new Set<ChildProcess>();

export interface ChildOptions {
  /** Killed (SIGKILL) after this long. */
  timeoutMs: number;
  /** Node flags before the script, e.g. `--enable-source-maps`. */
  nodeFlags?: string[];
  env?: Record<string, string | undefined>;
}

/** Runs `node [flags] <script> <job JSON>` and returns the JSON the child printed last. */
export async function runNodeChild<T>(script: string, job: unknown, opts: ChildOptions): Promise<T> {
  const args = [...(opts.nodeFlags ?? []), script, JSON.stringify(job)];
  const { stdout, stderr, code, signal } = await runProcess(process.execPath, args, { ...opts, cwd: BENCH_ROOT });
  const lastLine = stdout.trim().split('\n').pop() ?? '';
  const name = path.basename(script);
  if (code !== 0) {
    throw new Error(`${name} exited with ${signal ?? code}:\n${tail(stderr)}\n${tail(stdout)}`);
  }
  try {
    return JSON.parse(lastLine) as T;
  } catch {
    throw new Error(`${name} printed no JSON result:\n${tail(stdout)}\n${tail(stderr)}`);
  }
}

/** A child that talks while it runs: JSON lines on its stdout as they come, commands on its stdin. */
export interface ConversingChild<T> {
  /** Resolves with the first line (parsed) that `match` accepts; rejects if the child exits first. */
  next(match: (message: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Writes one JSON line to the child's stdin. */
  send(message: unknown): void;
  /** The JSON the child printed last, once it exited with 0. */
  result: Promise<T>;
}

/**
 * Starts `node [flags] <script> <job JSON>` like runNodeChild, but the parent may wait for
 * lines it prints on the way (one JSON object a line on stdout) and send it commands.
 */
export function startNodeChild<T>(script: string, job: unknown, opts: ChildOptions): ConversingChild<T> {
  const args = [...(opts.nodeFlags ?? []), script, JSON.stringify(job)];
  const child = spawn(process.execPath, args, { cwd: BENCH_ROOT, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  liveChildren.add(child);
  const name = path.basename(script);
  let stdout = '';
  let pending = '';
  let stderr = '';
  const waiters: { match: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  const seen: Record<string, unknown>[] = [];
  let exited: Error | undefined;
  child.stdout.on('data', (d: Buffer) => {
    const text = d.toString();
    stdout = (stdout + text).slice(-64_000);
    pending += text;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      seen.push(message);
      for (const w of [...waiters]) {
        if (w.match(message)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(message);
        }
      }
    }
  });
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-64_000)));
  child.stdin.on('error', () => undefined);
  const timer = setTimeout(() => {
    stderr += `\n[bench] killed after ${opts.timeoutMs} ms`;
    child.kill('SIGKILL');
  }, opts.timeoutMs);
  const result = new Promise<T>((resolve, reject) => {
    const fail = (err: Error) => {
      exited = err;
      for (const w of waiters.splice(0)) w.reject(err);
      reject(err);
    };
    child.on('error', (err) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      fail(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      if (code !== 0) return fail(new Error(`${name} exited with ${signal ?? code}:\n${tail(stderr)}\n${tail(stdout)}`));
      const last = seen[seen.length - 1];
      if (last === undefined) return fail(new Error(`${name} printed no JSON result:\n${tail(stdout)}\n${tail(stderr)}`));
      exited = new Error(`${name} exited`);
      for (const w of waiters.splice(0)) w.reject(exited);
      resolve(last as T);
    });
  });
  result.catch(() => undefined);
  return {
    next: (match) => {
      const found = seen.find(match);
      if (found) return Promise.resolve(found);
      if (exited) return Promise.reject(exited);
      return new Promise((resolve, reject) => waiters.push({ match, resolve, reject }));
    },
    send: (message) => {
      child.stdin.write(`${JSON.stringify(message)}\n`);
    },
    result,
  };
}

/** Child side: calls `on` with every JSON line the parent sends (see startNodeChild). */
export function onParentMessage(on: (message: Record<string, unknown>) => void): void {
  let pending = '';
  process.stdin.on('data', (d: Buffer) => {
    pending += d.toString();
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        on(JSON.parse(line) as Record<string, unknown>);
      } catch (err) {
        process.stderr.write(`bad message from the parent: ${line} (${String(err)})\n`);
      }
    }
  });
}

/** Child side: one JSON line on stdout without exiting (a progress line startNodeChild can wait for). */
export function say(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/**
 * The measured children, bundled with esbuild (a devDependency) into plain ESM, the way a
 * deployed streamer runs: under `--import tsx` the TypeScript loader's own thread adds ≈ 25-40 MB
 * of RSS that is not the streamer's. npm packages stay external (resolved from node_modules).
 */
export async function bundleChildren(entries: Record<string, string>): Promise<Record<string, string>> {
  const { build } = await import('esbuild');
  const outdir = path.join(BENCH_ROOT, 'node_modules', '.cache', 'pgrelay-bench');
  await build({
    entryPoints: entries,
    absWorkingDir: BENCH_ROOT,
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    splitting: true,
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    logLevel: 'warning',
  });
  return Object.fromEntries(Object.keys(entries).map((name) => [name, path.join(outdir, `${name}.mjs`)]));
}

export interface ProcessResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function runProcess(
  file: string,
  args: string[],
  opts: ChildOptions & { cwd?: string },
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd ?? BENCH_ROOT,
      env: { ...process.env, ...opts.env },
      // stdin stays an open pipe: a child can notice that the bench died (its stdin ends).
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    liveChildren.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-64_000)));
    const timer = setTimeout(() => {
      stderr += `\n[bench] killed after ${opts.timeoutMs} ms`;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      resolve({ stdout, stderr, code, signal });
    });
  });
}

/** Child side: print the result line and exit (stdout to a pipe is synchronous on Linux). */
export function finish(result: unknown, code = 0): never {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(code);
}

/** Child side: the job the parent passed. */
export function jobOf<T>(): T {
  const text = process.argv[2];
  if (!text) throw new Error('usage: node <script> <job JSON>');
  return JSON.parse(text) as T;
}

/** Child side: exit when the parent goes away (its end of our stdin closes). */
export function exitWithParent(): void {
  process.stdin.on('end', () => process.exit(3));
  process.stdin.on('error', () => process.exit(3));
  process.stdin.resume();
}

/** Peak resident set size of this process so far, in MiB. */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

function tail(text: string, lines = 30): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}
