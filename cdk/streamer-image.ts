/**
 * The streamer's container image for ECS Fargate: a Docker build context holding an esbuild
 * bundle of the `pgrelay` command (cli/pgrelay.ts: `run` and the operator commands), the health check, and a Dockerfile that copies them into a
 * Node 22 base image. Prepared at synth time (synchronously, as CDK synth is), for
 * `ecs.ContainerImage.fromAsset(directory, { platform: Platform.LINUX_ARM64 })`.
 *
 * The context is a pure function of the sources and the lock file: two synths with unchanged
 * sources write the same bytes, so the asset hash, and with it the image, stays the same.
 */
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync, type Metafile } from 'esbuild';
import { STREAMER_NODE_OPTIONS } from '#streamer/node-options.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Where the build context is written unless told otherwise (git-ignored). */
export const DEFAULT_STREAMER_IMAGE_DIR = join(REPO_ROOT, '.build', 'streamer-image');

/**
 * Node 22 on Debian bookworm, slim. ECR Public's mirror of the Docker official image, so
 * builds in AWS are not throttled by Docker Hub's pull limits. The tag pins Node's major and
 * the Debian release; patch releases (security fixes) arrive on the next build.
 */
export const STREAMER_BASE_IMAGE = 'public.ecr.aws/docker/library/node:22-bookworm-slim';

/** The file `pgrelay run` rewrites every 10 s and the health check reads (streamer/process.ts). */
export const STREAMER_HEALTH_FILE = '/tmp/pgrelay-health';

/** The ECS container health check: exit 0 while the streamer's event loop turns. */
export const STREAMER_HEALTH_CHECK_COMMAND: readonly string[] = ['CMD', 'node', '/app/health-check.mjs'];

/** What the image sets with ENV. Already in the image; a task definition need not repeat it. */
export const STREAMER_IMAGE_ENVIRONMENT: Readonly<Record<string, string>> = {
  NODE_OPTIONS: STREAMER_NODE_OPTIONS.join(' '),
  NODE_ENV: 'production',
  PGRELAY_HEALTH_FILE: STREAMER_HEALTH_FILE,
};

export interface StreamerImageOptions {
  /**
   * The directory to write the build context to. It belongs to this function: files it did
   * not write are removed (it refuses a non-empty directory it did not write before).
   * @default DEFAULT_STREAMER_IMAGE_DIR (`.build/streamer-image` in the repository)
   */
  outDir?: string;
}

export interface StreamerImage {
  /** The Docker build context: Dockerfile, pgrelay.mjs, health-check.mjs and their source maps. */
  directory: string;
  /** For the ECS container definition's health check. */
  healthCheckCommand: string[];
  /** The environment the image sets (STREAMER_IMAGE_ENVIRONMENT). */
  environment: Record<string, string>;
  /** esbuild's account of which sources went into which bundle; written nowhere. */
  metafile: Metafile;
}

const DOCKERFILE_MARKER = '# Written by cdk/streamer-image.ts (prepareStreamerImage); edit that, not this.';

// esbuild turns a CommonJS dependency's require('events') into a call that throws in an ES
// module; a real require makes those work. The alias keeps clear of names in the bundle.
const CREATE_REQUIRE_BANNER = "import { createRequire as __pgrelayCreateRequire } from 'node:module';\nconst require = __pgrelayCreateRequire(import.meta.url);";

/** Bundles the streamer and its health check and writes the Docker build context. */
export function prepareStreamerImage(opts: StreamerImageOptions = {}): StreamerImage {
  const directory = opts.outDir ?? DEFAULT_STREAMER_IMAGE_DIR;
  const result = buildSync({
    absWorkingDir: REPO_ROOT,
    entryPoints: { pgrelay: 'cli/pgrelay.ts', 'health-check': 'cli/health-check.ts' },
    // Always the default directory, whatever `outDir` is: source map paths are relative to
    // it, and the bytes must not depend on where they are written.
    outdir: DEFAULT_STREAMER_IMAGE_DIR,
    outExtension: { '.js': '.mjs' },
    write: false,
    metafile: true,
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    // The AWS SDK's ES module builds: smaller and better tree-shaken than its CommonJS ones.
    mainFields: ['module', 'main'],
    // pg loads its optional native binding only if asked for (pg.native); the image has none.
    external: ['pg-native'],
    banner: { js: CREATE_REQUIRE_BANNER },
    // Unminified, so a stack trace in the logs reads without the map; the map names sources
    // for `node --enable-source-maps`, without carrying their text.
    minify: false,
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'silent',
  });
  if (result.warnings.length > 0) {
    throw new Error(`esbuild warnings bundling the streamer:\n${result.warnings.map((w) => `${w.location?.file ?? ''}:${w.location?.line ?? ''} ${w.text}`).join('\n')}`);
  }
  const bundles = result.outputFiles.map((output) => [basename(output.path), output.contents] as const);
  // The Dockerfile first: a directory holding it is one this function may replace, even if
  // an earlier run stopped half-way.
  const files = new Map<string, Uint8Array>([['Dockerfile', Buffer.from(dockerfile(bundles.map(([name]) => name).sort()))], ...bundles]);
  writeContext(directory, files);
  return {
    directory,
    healthCheckCommand: [...STREAMER_HEALTH_CHECK_COMMAND],
    environment: { ...STREAMER_IMAGE_ENVIRONMENT },
    metafile: result.metafile,
  };
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
 * Replaces the directory's contents with `files`. A file whose bytes are already there is not
 * touched, and the others are renamed into place, so a synth running at the same time (test
 * workers do) never sees a missing or half-written file.
 */
function writeContext(directory: string, files: Map<string, Uint8Array>): void {
  mkdirSync(directory, { recursive: true });
  const present = readdirSync(directory);
  if (present.length > 0 && !present.includes('Dockerfile')) refuse(directory);
  if (present.includes('Dockerfile') && !readFileSync(join(directory, 'Dockerfile'), 'utf8').startsWith(DOCKERFILE_MARKER)) refuse(directory);
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

function refuse(directory: string): never {
  throw new Error(`${directory} holds files prepareStreamerImage did not write; refusing to replace them (choose another outDir)`);
}

function sameBytes(path: string, contents: Uint8Array): boolean {
  try {
    return Buffer.compare(readFileSync(path), contents) === 0;
  } catch {
    return false;
  }
}
