/**
 * The directory of the pgrelay package this code belongs to: the first directory above this
 * file whose package.json is named "pgrelay". The same from the repository (functions/shared/
 * through tsx) and an installed package (node_modules/pgrelay/dist/functions/shared/);
 * undefined inside a bundle that carries no package.json (the streamer's image).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PgrelayPackage {
  root: string;
  version: string;
}

let found: PgrelayPackage | null | undefined;

export function pgrelayPackage(): PgrelayPackage | undefined {
  if (found !== undefined) return found ?? undefined;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pgrelay') return (found = { root: dir, version: pkg.version ?? 'unknown' });
    }
    const up = dirname(dir);
    if (up === dir) {
      found = null;
      return undefined;
    }
    dir = up;
  }
}
