/**
 * Usage errors in one voice: an unknown command or option, or an option without its value,
 * named exactly, with a "did you mean" when a known name is one or two edits away, and the
 * --help to run. Every such error exits 2.
 */

/** Exit code of a usage error (and of a command that could not run). */
export const USAGE_EXIT = 2;

/** The known name closest to `name` within two edits, if any. */
export function closest(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = Math.min(above + 1, (row[j - 1] as number) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

/**
 * node:util parseArgs's errors as one sentence: `unknown option --jsn (did you mean --json?)`,
 * `--slot needs a value`. Undefined for any other error.
 */
export function parseArgsProblem(err: unknown, knownOptions: Iterable<string>): string | undefined {
  const e = err as { code?: string; message?: string } | undefined;
  if (typeof e?.code !== 'string' || !e.code.startsWith('ERR_PARSE_ARGS_')) return undefined;
  const message = e.message ?? '';
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const option = /'(-{1,2}[^'\s]*)'/.exec(message)?.[1] ?? 'given';
    const guess = closest(option.replace(/^-+/, ''), knownOptions);
    return `unknown option ${option}${guess !== undefined ? ` (did you mean --${guess}?)` : ''}`;
  }
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const option = /'(--[a-z-]+)/.exec(message)?.[1];
    if (option !== undefined && /argument missing/.test(message)) return `${option} needs a value`;
  }
  if (/does not take an argument/.test(message)) {
    const option = /'(--[a-z-]+)/.exec(message)?.[1];
    if (option !== undefined) return `${option} takes no value`;
  }
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument ${/'([^']*)'/.exec(message)?.[1] ?? ''}`.trim();
  // node's text goes on about positionals after '--'; its first sentence is the point.
  return message.split(/\. /)[0];
}
