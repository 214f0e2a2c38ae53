/** The operator commands as an operator runs them (a separate process), and in this process with an io to read. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { OperatorIo } from '#cli/operator.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `pgrelay <args>`: a separate process, stdin not a terminal, nothing from this environment pointing it elsewhere. */
export function pgrelay(...args: string[]): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PGRELAY_')));
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/pgrelay.ts', ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A command run in this process: `run(bootstrapCommand, [...])` gives its exit code and what it wrote. */
export async function runInProcess(command: (argv: string[], io: OperatorIo) => Promise<number>, argv: string[]): Promise<Run> {
  const run = { code: null as number | null, stdout: '', stderr: '' };
  run.code = await command(argv, { out: (t) => void (run.stdout += t), err: (t) => void (run.stderr += t), env: {}, ask: undefined });
  return run;
}

/** A failure is one sentence on stderr, never a stack trace. */
export function expectOneSentence(run: Run): void {
  expect(run.stderr).not.toContain('    at ');
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
}
