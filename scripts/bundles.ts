/**
 * The code pgrelay deploys, bundled once at build time (`npm run build`, and the test run's
 * global setup) into dist/bundles/, so that a user's `cdk synth` needs neither esbuild, nor a
 * lock file, nor network, nor Docker, and writes nothing into node_modules:
 *
 * - `transform/` and `monitor/`: one ES module each (`index.mjs`, handler `index.handler`),
 *   minified, with its source map, for `lambda.Code.fromAsset`;
 * - `streamer/`: the streamer's Docker build context — the `pgrelay` command (`run` and the
 *   operator commands) and the container's health check, unminified, with a Dockerfile that
 *   copies them into a Node 22 base image;
 * - each with THIRD_PARTY_LICENSES.txt: every npm package bundled into it, its version, its
 *   licence and the licence text it ships.
 *
 * Every file is a pure function of the sources and node_modules: two builds write the same
 * bytes, so asset hashes (and the image) change only when the code does. A file whose bytes
 * are already in place is not touched; the others are renamed into place, so a synth or test
 * run reading the directory at the same time never sees a half-written file.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync, type BuildOptions, type Metafile } from 'esbuild';
import { STREAMER_BASE_IMAGE, STREAMER_HEALTH_CHECK_COMMAND, STREAMER_IMAGE_ENVIRONMENT } from '../cdk/streamer-image.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const packageVersion = (): string => (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Where the bundles go (what the construct reads: cdk/prebuilt.ts). */
export const BUNDLES_DIR = join(REPO_ROOT, 'dist', 'bundles');

export type LambdaBundle = 'transform' | 'monitor';

/** Each Lambda's entry module (its export `handler`). */
export const LAMBDA_ENTRIES: Readonly<Record<LambdaBundle, string>> = {
  transform: 'functions/transform/handler.ts',
  monitor: 'functions/monitor/handler.ts',
};

export const LICENSES_FILE = 'THIRD_PARTY_LICENSES.txt';

// esbuild turns a CommonJS dependency's require('events') into a call that throws in an ES
// module; a real require makes those work. The alias keeps clear of names in the bundle.
const CREATE_REQUIRE_BANNER = "import { createRequire as __pgrelayCreateRequire } from 'node:module';\nconst require = __pgrelayCreateRequire(import.meta.url);";

const COMMON: BuildOptions = {
  absWorkingDir: REPO_ROOT,
  write: false,
  metafile: true,
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'esm',
  outExtension: { '.js': '.mjs' },
  // The AWS SDK's ES module builds: smaller and better tree-shaken than its CommonJS ones.
  mainFields: ['module', 'main'],
  // pg loads its optional native binding only if asked for (pg.native); nothing here has one.
  external: ['pg-native'],
  banner: { js: CREATE_REQUIRE_BANNER },
  // Licence comments of bundled code go to the licences file, with the packages' own texts.
  legalComments: 'none',
  // The map names sources for `node --enable-source-maps`, without carrying their text.
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'silent',
};

export interface WrittenBundle {
  directory: string;
  /** esbuild's account of which sources went into which output; written nowhere. */
  metafile: Metafile;
}

/** Bundles one Lambda into `outDir` (default dist/bundles/<name>). */
export function writeLambdaBundle(name: LambdaBundle, outDir = join(BUNDLES_DIR, name)): WrittenBundle {
  const result = build({
    ...COMMON,
    entryPoints: { index: LAMBDA_ENTRIES[name] },
    // Always the default directory, wherever the files go: source map paths are relative to
    // it, and the bytes must not depend on where they are written.
    outdir: join(BUNDLES_DIR, name),
    minify: true,
  }, name);
  const files = new Map<string, Uint8Array>(result.outputFiles.map((o) => [basename(o.path), o.contents]));
  files.set(LICENSES_FILE, Buffer.from(thirdPartyLicenses(result.metafile)));
  writeDirectory(outDir, files, 'index.mjs');
  return { directory: outDir, metafile: result.metafile };
}

const DOCKERFILE_MARKER = '# Written by scripts/bundles.ts (writeStreamerContext); edit that, not this.';

/** Bundles the streamer and its health check and writes the Docker build context into `outDir`. */
export function writeStreamerContext(outDir = join(BUNDLES_DIR, 'streamer')): WrittenBundle {
  const result = build({
    ...COMMON,
    entryPoints: { pgrelay: 'cli/pgrelay.ts', 'health-check': 'cli/health-check.ts' },
    outdir: join(BUNDLES_DIR, 'streamer'),
    // The image has no package.json: `pgrelay --version` answers from here (cli/version.ts).
    define: { PGRELAY_VERSION: JSON.stringify(packageVersion()) },
    // Unminified, so a stack trace in the logs reads without the map.
    minify: false,
  }, 'the streamer');
  const bundles = result.outputFiles.map((o) => [basename(o.path), o.contents] as const);
  const copied = [...bundles.map(([name]) => name), LICENSES_FILE].sort();
  // The Dockerfile first: a directory holding it is one this function may replace, even if an
  // earlier run stopped half-way.
  const files = new Map<string, Uint8Array>([['Dockerfile', Buffer.from(dockerfile(copied))], ...bundles, [LICENSES_FILE, Buffer.from(thirdPartyLicenses(result.metafile))]]);
  writeDirectory(outDir, files, 'Dockerfile', DOCKERFILE_MARKER);
  return { directory: outDir, metafile: result.metafile };
}

/** All of dist/bundles. */
export function writeAllBundles(): WrittenBundle[] {
  return [writeLambdaBundle('transform'), writeLambdaBundle('monitor'), writeStreamerContext()];
}

function build(options: BuildOptions, what: string): { outputFiles: { path: string; contents: Uint8Array }[]; metafile: Metafile } {
  const result = buildSync(options);
  if (result.warnings.length > 0) {
    throw new Error(`esbuild warnings bundling ${what}:\n${result.warnings.map((w) => `${w.location?.file ?? ''}:${w.location?.line ?? ''} ${w.text}`).join('\n')}`);
  }
  return { outputFiles: result.outputFiles ?? [], metafile: result.metafile as Metafile };
}

function dockerfile(copied: string[]): string {
  const env = Object.entries(STREAMER_IMAGE_ENVIRONMENT).map(([name, value]) => `ENV ${name}=${JSON.stringify(value)}`);
  return [
    DOCKERFILE_MARKER,
    `FROM ${STREAMER_BASE_IMAGE}`,
    'WORKDIR /app',
    // Owned by root and read-only to the process that runs them.
    `COPY ${copied.join(' ')} /app/`,
    ...env,
    'USER node',
    // For `docker run`; ECS ignores it and runs the task definition's health check instead.
    `HEALTHCHECK --interval=30s --timeout=5s --start-period=30s CMD ${JSON.stringify(STREAMER_HEALTH_CHECK_COMMAND.slice(1))}`,
    'ENTRYPOINT ["node", "/app/pgrelay.mjs"]',
    'CMD ["run"]',
    '',
  ].join('\n');
}

/**
 * The npm packages whose code is in the bundle (from esbuild's inputs), each with its version,
 * its declared licence and the licence files it ships, sorted by name.
 */
export function thirdPartyLicenses(metafile: Metafile): string {
  const roots = new Set<string>();
  for (const input of Object.keys(metafile.inputs)) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m?.[1] !== undefined) roots.add(m[1]);
  }
  const entries = [...roots]
    .map((root) => {
      const pkg = JSON.parse(readFileSync(join(REPO_ROOT, root, 'package.json'), 'utf8')) as { name: string; version: string; license?: string };
      const texts = readdirSync(join(REPO_ROOT, root))
        .filter((f) => /^(licen[cs]e|copying|notice)/i.test(f))
        .sort()
        .map((f) => readFileSync(join(REPO_ROOT, root, f), 'utf8').trim());
      return { name: pkg.name, version: pkg.version, license: pkg.license ?? 'UNKNOWN', texts };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const rule = '-'.repeat(78);
  return [
    'Third-party software bundled into this file by pgrelay\'s build, with the licences it ships.',
    '',
    ...entries.flatMap((e) => [rule, `${e.name}@${e.version} (${e.license})`, rule, '', ...(e.texts.length > 0 ? e.texts.flatMap((t) => [t, '']) : ['(the package ships no licence file)', ''])]),
  ].join('\n');
}

/**
 * Replaces a directory's contents with `files`. `owner` is the file that marks the directory
 * as one this module wrote (with `marker` at its start, if given): a non-empty directory
 * without it is refused, not emptied.
 */
function writeDirectory(directory: string, files: Map<string, Uint8Array>, owner: string, marker?: string): void {
  mkdirSync(directory, { recursive: true });
  const present = readdirSync(directory);
  const owned = present.includes(owner) && (marker === undefined || readFileSync(join(directory, owner), 'utf8').startsWith(marker));
  if (present.length > 0 && !owned) throw new Error(`${directory} holds files pgrelay's build did not write; refusing to replace them (choose another directory)`);
  for (const [name, contents] of files) {
    const target = join(directory, name);
    if (sameBytes(target, contents)) continue;
    // Beside the directory, not in it: the directory only ever holds finished files.
    const staged = join(dirname(directory), `.${basename(directory)}.${name}.${process.pid}.tmp`);
    writeFileSync(staged, contents);
    // Readable by the image's non-root user whatever the umask here.
    chmodSync(staged, 0o644);
    renameSync(staged, target);
  }
  for (const name of present) if (!files.has(name)) rmSync(join(directory, name), { recursive: true, force: true });
}

function sameBytes(path: string, contents: Uint8Array): boolean {
  if (!existsSync(path)) return false;
  return Buffer.compare(readFileSync(path), contents) === 0;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const b of writeAllBundles()) process.stdout.write(`${b.directory}\n`);
}
