/**
 * vitest globalSetup: one PostgreSQL (wal_level=logical) and one SQS emulator for the whole run,
 * handed to test files as `inject('pgUrl')` and `inject('sqsEndpoint')`. Test files isolate
 * themselves with their own database (`testDatabase()`) and queues (`createFifoQueue()`).
 *
 * Already running servers are used instead when named:
 *   PGRELAY_TEST_DATABASE_URL   superuser URL of a PostgreSQL with wal_level=logical
 *   PGRELAY_TEST_SQS_ENDPOINT   endpoint of an SQS-compatible server, e.g. http://127.0.0.1:4566
 *
 * It also writes dist/bundles (the code the construct deploys) from the sources as they are,
 * so tests that synthesize or run the bundles never test a stale build (about 3 s).
 */
import type { TestProject } from 'vitest/node';
import { startTestPostgres, type TestPostgres } from './postgres.ts';
import { startSqsEmulator, type SqsEmulator } from '#dev/sqs-emulator.ts';
import { writeAllBundles } from '../../scripts/bundles.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL to the `postgres` database of the suite's server. */
    pgUrl: string;
    /** Endpoint of the suite's SQS emulator. */
    sqsEndpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let postgres: TestPostgres | undefined;
  let sqs: SqsEmulator | undefined;
  const teardown = async (): Promise<void> => {
    // Both, even if one fails; report the first failure.
    const results = await Promise.allSettled([postgres?.stop(), sqs?.stop()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  writeAllBundles();
  const sqsEndpoint = process.env.PGRELAY_TEST_SQS_ENDPOINT;
  // allSettled, not all: when one start fails the other may still be under way, and what it
  // started must be stopped too.
  const started = await Promise.allSettled([
    startTestPostgres().then((server) => (postgres = server)),
    sqsEndpoint ? undefined : startSqsEmulator().then((server) => (sqs = server)),
  ]);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const endpoint = sqsEndpoint || sqs?.endpoint;
  if (failed || !postgres || !endpoint) {
    await teardown().catch(() => undefined);
    throw failed?.reason ?? new Error('test servers did not start');
  }
  project.provide('pgUrl', postgres.url);
  project.provide('sqsEndpoint', endpoint);
  return teardown;
}
