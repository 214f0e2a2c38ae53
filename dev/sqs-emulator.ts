/**
 * The local SQS and S3 (fauxqs, in this process, loopback only) that `npm start`, the tests and
 * the benchmarks run against.
 */
import { PgRelayError } from '#core/errors.ts';

export interface SqsEmulator {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts fauxqs on 127.0.0.1. `startFauxqs()` always binds 0.0.0.0 (its `host` option only names
 * the host in queue URLs), so this builds the same app and listens on loopback itself.
 */
export async function startSqsEmulator(opts: { port?: number } = {}): Promise<SqsEmulator> {
  const { buildApp } = await import('fauxqs');
  const app = buildApp({ logger: false });
  await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') {
    await app.close();
    throw new PgRelayError('SQS_EMULATOR', `fauxqs listens on an unexpected address: ${String(address)}`);
  }
  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    port: address.port,
    stop: () => (stopping ??= app.close().then(() => undefined)),
  };
}
