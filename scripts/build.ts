/**
 * `npm run build` (also run by `prepack`): what the published package ships, into dist/.
 *
 * - dist/functions, dist/streamer, dist/cli, dist/cdk: every runtime module as an ES module
 *   (`.js` with its source map, `.d.ts` with its declaration map), transpiled file by file. The
 *   sources import each other as `./x.ts` and through the package's `#core/…` style aliases;
 *   in dist every such specifier is a relative `.js` path, so the files run in plain Node and
 *   type-check in a user's project without any of this repository's settings.
 * - dist/bundles: the deployed code, bundled (scripts/bundles.ts).
 *
 * dev/, test/, bench/ and scripts/ are not shipped.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';
import { writeAllBundles } from './bundles.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
/** The `pgrelay` command (package.json `bin` is its output). */
const BIN_SOURCE = join('cli', 'pgrelay.ts');
/** The folders that run in a user's process or deployment. */
export const SHIPPED_SOURCE_DIRS = ['functions', 'streamer', 'cli', 'cdk'];

/** The package.json `imports` aliases the sources use, and the folders they stand for. */
function aliases(): Map<string, string> {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { imports: Record<string, string> };
  return new Map(Object.entries(manifest.imports).map(([alias, target]) => [alias.replace(/\*$/, ''), target.replace(/^\.\//, '').replace(/\*$/, '')]));
}

const SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])([^'"]+)\2/g;

/**
 * `text` of the file at `distFile` (in dist, mirroring the repository) with its import
 * specifiers made relative `.js` paths: `#core/x.ts` → `../core/x.js`, `./y.ts` → `./y.js`.
 */
export function rewriteSpecifiers(text: string, distFile: string, aliasMap: Map<string, string>): string {
  return text.replace(SPECIFIER, (whole, lead: string, quote: string, spec: string) => {
    let target = spec;
    for (const [alias, folder] of aliasMap) {
      if (!spec.startsWith(alias)) continue;
      if (!SHIPPED_SOURCE_DIRS.includes(folder.split('/')[0] as string)) throw new Error(`${relative(DIST, distFile)} imports ${spec}, which is not shipped`);
      let rel = relative(dirname(distFile), join(DIST, folder, spec.slice(alias.length))).split(sep).join('/');
      if (!rel.startsWith('.')) rel = `./${rel}`;
      target = rel;
      break;
    }
    if (target.startsWith('.') && target.endsWith('.ts')) target = `${target.slice(0, -3)}.js`;
    return `${lead}${quote}${target}${quote}`;
  });
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

function transpile(aliasMap: Map<string, string>): number {
  const files = SHIPPED_SOURCE_DIRS.flatMap(sourceFiles);
  for (const file of files) {
    const out = join(DIST, file.replace(/\.ts$/, '.js'));
    const mapName = `${out.split(sep).pop() as string}.map`;
    const result = transformSync(readFileSync(join(ROOT, file), 'utf8'), {
      loader: 'ts',
      format: 'esm',
      target: 'node20',
      sourcemap: 'external',
      sourcefile: relative(dirname(out), join(ROOT, file)).split(sep).join('/'),
      sourcesContent: false,
    });
    mkdirSync(dirname(out), { recursive: true });
    // The package's `bin`: run by its path, so it names its interpreter and may be executed.
    const bin = file === BIN_SOURCE;
    writeFileSync(out, `${bin ? '#!/usr/bin/env node\n' : ''}${rewriteSpecifiers(result.code, out, aliasMap)}//# sourceMappingURL=${mapName}\n`);
    if (bin) chmodSync(out, 0o755);
    writeFileSync(`${out}.map`, result.map);
  }
  return files.length;
}

function declarations(aliasMap: Map<string, string>): number {
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, encoding: 'utf8' });
  if (tsc.status !== 0) throw new Error(`tsc (declarations) failed:\n${tsc.stdout}${tsc.stderr}`);
  let count = 0;
  const visit = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) visit(path);
      else if (name.endsWith('.d.ts')) {
        writeFileSync(path, rewriteSpecifiers(readFileSync(path, 'utf8'), path, aliasMap));
        count++;
      }
    }
  };
  for (const dir of SHIPPED_SOURCE_DIRS) visit(join(DIST, dir));
  return count;
}

function main(): void {
  const started = performance.now();
  for (const dir of SHIPPED_SOURCE_DIRS) rmSync(join(DIST, dir), { recursive: true, force: true });
  const aliasMap = aliases();
  const modules = transpile(aliasMap);
  const typed = declarations(aliasMap);
  const bundles = writeAllBundles();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  process.stdout.write(`dist/: ${modules} modules, ${typed} declaration files, ${bundles.length} bundles (${bundles.map((b) => relative(ROOT, b.directory)).join(', ')}) in ${seconds} s\n`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main();
