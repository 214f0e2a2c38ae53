/**
 * Where the construct finds the code it deploys: dist/bundles/ of the pgrelay package, written
 * by its build (scripts/bundles.ts) — in an installed package as in this repository (the
 * package's root from functions/shared/package-root.ts). Nothing is bundled at synth.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pgrelayPackage } from '#shared/package-root.ts';

export type PrebuiltBundle = 'transform' | 'monitor' | 'streamer';

/** The file each bundle's directory must hold. */
const MAIN_FILE: Readonly<Record<PrebuiltBundle, string>> = { transform: 'index.mjs', monitor: 'index.mjs', streamer: 'Dockerfile' };

/** The directory of the pgrelay package this file belongs to. */
export function packageRoot(): string {
  const pkg = pgrelayPackage();
  if (pkg === undefined) throw new Error("pgrelay's package.json was not found above its cdk code");
  return pkg.root;
}

/** The directory of a prebuilt bundle; a clear error when the package was not built. */
export function prebuiltBundle(name: PrebuiltBundle): string {
  const directory = join(packageRoot(), 'dist', 'bundles', name);
  if (!existsSync(join(directory, MAIN_FILE[name]))) {
    throw new Error(`pgrelay's prebuilt ${name} bundle is missing (${join(directory, MAIN_FILE[name])}); in a checkout of pgrelay, run \`npm run build\` first`);
  }
  return directory;
}
