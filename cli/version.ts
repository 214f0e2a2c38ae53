/**
 * The version of the pgrelay package this command belongs to: the `version` of the first
 * package.json named "pgrelay" above this file. The same lookup works for cli/version.ts in the
 * repository, dist/cli/version.js in an installed package, and the container's bundle (which
 * has no package.json above it: there the version esbuild was given at build time, or "unknown").
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

declare const PGRELAY_VERSION: string | undefined;

export function packageVersion(): string {
  if (typeof PGRELAY_VERSION === 'string') return PGRELAY_VERSION;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pgrelay' && typeof pkg.version === 'string') return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}
