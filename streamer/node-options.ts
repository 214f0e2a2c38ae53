/**
 * Node flags the streamer process runs with: the container sets them as NODE_OPTIONS, and
 * the benchmark starts its streamer children with them, so what is measured is what runs.
 *
 * A 96 MB old space makes V8 collect early instead of growing: the AWS SDK serializes every
 * SendMessageBatch into fresh ~1 MB strings and buffers, and with the default limits the
 * process reached 260–360 MB of RSS holding nothing but garbage. With the limit it stays
 * near 150 MB at the same throughput (npm run bench). The default 16 MiB of in-flight
 * changes fit even as two-byte (non-Latin) strings: test/integration/memory.test.ts.
 */
export const STREAMER_NODE_OPTIONS: readonly string[] = ['--max-old-space-size=96'];
