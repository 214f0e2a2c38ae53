/**
 * Where the construct finds the code it deploys: dist/bundles/ of the pgrelay package, written
 * by its build (scripts/bundles.ts) — in an installed package as in this repository. Found from
 * this file's own location by walking up to pgrelay's package.json, so it is the same whether
 * this runs as cdk/prebuilt.ts (the repository, through tsx) or dist/cdk/prebuilt.js (an
 * installed package). Nothing is bundled at synth.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type PrebuiltBundle = 'transform' | 'monitor' | 'streamer';

/** The file each bundle's directory must hold. */
const MAIN_FILE: Readonly<Record<PrebuiltBundle, string>> = { transform: 'index.mjs', monitor: 'index.mjs', streamer: 'Dockerfile' };

let root: string | undefined;

/** The directory of the pgrelay package this file belongs to. */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'pgrelay') return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`pgrelay's package.json not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** The directory of a prebuilt bundle; a clear error when the package was not built. */
export function prebuiltBundle(name: PrebuiltBundle): string {
  const directory = join(packageRoot(), 'dist', 'bundles', name);
  if (!existsSync(join(directory, MAIN_FILE[name]))) {
    throw new Error(`pgrelay's prebuilt ${name} bundle is missing (${join(directory, MAIN_FILE[name])}); in a checkout of pgrelay, run \`npm run build\` first`);
  }
  return directory;
}
