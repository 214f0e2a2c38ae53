/**
 * The `pgrelay` command's own surface, run as a user runs it (a child process): the help lists
 * every command and each option once, --version is the package's, every command has --help
 * that touches no database, and usage errors (unknown command or option, a missing value) name
 * what was wrong and exit 2. The database URL given points at a port nobody listens on, so a
 * command that tried to connect would fail and show it.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const CLOSED_PORT_URL = 'postgres://nobody@127.0.0.1:9/none';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function pgrelay(...args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'cli/pgrelay.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, PGRELAY_DATABASE_URL: CLOSED_PORT_URL, PGRELAY_CONFIG: '' },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Every `--name` at the start of a help line (the options a help lists). */
const listedOptions = (help: string): string[] => [...help.matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1] as string);

const COMMAND_HELP: Record<string, string[]> = {
  run: ['run', '--help'],
  doctor: ['doctor', '--help'],
  status: ['status', '--help'],
  bootstrap: ['bootstrap', '--help'],
  'slot drop': ['slot', 'drop', '--help'],
};

let top: Run;
const helps = new Map<string, Run>();
beforeAll(async () => {
  const runs = await Promise.all([pgrelay('--help'), ...Object.values(COMMAND_HELP).map((args) => pgrelay(...args))]);
  top = runs[0] as Run;
  Object.keys(COMMAND_HELP).forEach((name, i) => helps.set(name, runs[i + 1] as Run));
}, 60_000);

describe('pgrelay --help and --version', () => {
  it('lists every command with a line each, and each option once', () => {
    expect(top.code).toBe(0);
    expect(top.stderr).toBe('');
    const commands = [...top.stdout.matchAll(/^ {2}([a-z]+(?: [a-zA-Z.]+)?) {2,}\S/gm)].map((m) => m[1]);
    expect(commands).toEqual(['run', 'doctor', 'status', 'bootstrap SCHEMA.TABLE', 'slot drop']);
    const options = listedOptions(top.stdout);
    expect(options).toEqual(['--help', '--version']);
  });

  it('prints the package version, and `help <command>` is that command\'s --help', async () => {
    const [long, short, helpDoctor] = await Promise.all([pgrelay('--version'), pgrelay('-v'), pgrelay('help', 'doctor')]);
    expect(long).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
    expect(short.stdout).toBe(`${VERSION}\n`);
    expect(helpDoctor.stdout).toBe(helps.get('doctor')?.stdout);
  });

  it.each(Object.keys(COMMAND_HELP))('`%s --help` says what it does and lists its options once, without connecting', (name) => {
    const help = helps.get(name) as Run;
    expect(help.code, help.stderr).toBe(0);
    expect(help.stderr).toBe('');
    expect(help.stdout).toMatch(new RegExp(`^usage: pgrelay ${name.split(' ')[0]}`));
    // No connection was tried: nothing about the closed port.
    expect(help.stdout + help.stderr).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/);
    const options = listedOptions(help.stdout);
    expect(options.length === new Set(options).size, `repeated: ${options.join(' ')}`).toBe(true);
    // The usage line names no option (the list below it does, once).
    expect(help.stdout.split('\n')[0]).not.toMatch(/--/);
    if (name !== 'run') expect(options).toEqual(expect.arrayContaining(['--database-url', '--secret-arn', '--config', '--slot', '--json']));
    if (name === 'bootstrap') expect(options).toContain('--cancel');
    if (name === 'slot drop') expect(options).toEqual(expect.arrayContaining(['--force', '--yes']));
  });
});

describe('usage errors exit 2 and name what was wrong', () => {
  it('an unknown command, with the closest one when it is a near miss', async () => {
    const [unknown, typo, none] = await Promise.all([pgrelay('frobnicate'), pgrelay('statsu'), pgrelay()]);
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toBe('pgrelay: unknown command "frobnicate"; run pgrelay --help for the commands\n');
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('unknown command "statsu" (did you mean "status"?)');
    // No command at all: the usage, on stderr.
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^usage: pgrelay <command>/);
  });

  it('an unknown option, a missing value, a value for a switch', async () => {
    const [flag, typo, missing, valued, extra] = await Promise.all([
      pgrelay('doctor', '--nope'),
      pgrelay('status', '--jsn'),
      pgrelay('status', '--slot'),
      pgrelay('status', '--json=yes'),
      pgrelay('run', 'now'),
    ]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toBe('pgrelay doctor: unknown option --nope; run pgrelay doctor --help for the options\n');
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe('pgrelay status: unknown option --jsn (did you mean --json?); run pgrelay status --help for the options\n');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--slot needs a value');
    expect(valued.code).toBe(2);
    expect(valued.stderr).toContain('--json takes no value');
    expect(extra.code).toBe(2);
    expect(extra.stderr).toContain('pgrelay run: takes no arguments, got "now"');
  });
});
