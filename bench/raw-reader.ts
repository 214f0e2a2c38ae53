/**
 * Child process: the ceiling in Node — a replication connection that only counts.
 *
 * It counts pgoutput Insert/Update/Delete messages (the payload's first byte) and stops at the
 * first Commit once `expectedChanges` have been seen, reporting that commit's end LSN: the
 * position the streamer's confirmed LSN must reach. Nothing is decoded and nothing is
 * acknowledged (the slot is used once).
 *
 * Variants (docs/benchmarks.md: the walsender pays for every wake-up of a reader that drains the socket
 * at once):
 *  - `eager`: reads whenever the socket has data;
 *  - `coalescing`: after a read shorter than 32 KiB it stops reading for ≈ 1 ms, so data piles
 *    up in the socket buffer and later reads come in large chunks.
 */
import type net from 'node:net';
import pg from 'pg';
import { formatLsn } from '#core/position.ts';
import { exitWithParent, finish, jobOf, peakRssMb } from './child.ts';

export type ReaderVariant = 'eager' | 'coalescing';

export interface RawReaderJob {
  url: string;
  slot: string;
  publication: string;
  expectedChanges: number;
  variant: ReaderVariant;
}

export interface RawReaderResult {
  variant: ReaderVariant;
  changes: number;
  seconds: number;
  /** End LSN of the commit that completed `expectedChanges` (text form). */
  endLsn: string;
  xlogMessages: number;
  payloadBytes: number;
  socketReads: number;
  peakRssMb: number;
  cpuSeconds: number;
}

interface PgConnection {
  stream: net.Socket;
  on(event: 'copyData', listener: (msg: { chunk: Buffer }) => void): void;
  sendCopyFromChunk(buf: Buffer): void;
}

const SMALL_READ = 32 * 1024;
const PAUSE_MS = 1;
const XLOG_DATA = 0x77; // 'w'
const KEEPALIVE = 0x6b; // 'k'
const PAYLOAD = 25; // 'w', dataStart, walEnd, sendTime
const INSERT = 0x49;
const UPDATE = 0x55;
const DELETE = 0x44;
const COMMIT = 0x43;

async function main(): Promise<void> {
  exitWithParent();
  const job = jobOf<RawReaderJob>();
  const started = performance.now();
  const cpuAtStart = process.cpuUsage();
  const client = new pg.Client({ connectionString: job.url, replication: 'database' } as pg.ClientConfig);
  client.on('error', (err) => fail(err));
  await client.connect();
  const connection = (client as unknown as { connection: PgConnection }).connection;
  const socket = connection.stream;

  let changes = 0;
  let xlogMessages = 0;
  let payloadBytes = 0;
  let socketReads = 0;
  socket.on('data', (chunk: Buffer) => {
    socketReads++;
    if (job.variant === 'coalescing' && chunk.length < SMALL_READ) {
      socket.pause();
      setTimeout(() => socket.resume(), PAUSE_MS);
    }
  });
  connection.on('copyData', ({ chunk }) => {
    if (chunk[0] === XLOG_DATA) {
      xlogMessages++;
      payloadBytes += chunk.length - PAYLOAD;
      const tag = chunk[PAYLOAD];
      if (tag === INSERT || tag === UPDATE || tag === DELETE) changes++;
      else if (tag === COMMIT && changes >= job.expectedChanges) {
        const seconds = (performance.now() - started) / 1000;
        const cpu = process.cpuUsage(cpuAtStart);
        const endLsn = chunk.readBigUInt64BE(PAYLOAD + 10); // 'C', flags, commit LSN, end LSN
        const result: RawReaderResult = {
          variant: job.variant,
          changes,
          seconds,
          endLsn: formatLsn(endLsn),
          xlogMessages,
          payloadBytes,
          socketReads,
          peakRssMb: peakRssMb(),
          cpuSeconds: (cpu.user + cpu.system) / 1e6,
        };
        socket.destroy();
        finish(result);
      }
    } else if (chunk[0] === KEEPALIVE && chunk[17] === 1) {
      // Answer so wal_sender_timeout never fires; position 0 confirms nothing.
      const reply = Buffer.alloc(34);
      reply[0] = 0x72; // 'r'
      connection.sendCopyFromChunk(reply);
    }
  });
  const options = `proto_version '1', publication_names '${job.publication}'`;
  client.query(`START_REPLICATION SLOT ${job.slot} LOGICAL 0/0 (${options})`).catch((err: unknown) => fail(err));
}

function fail(err: unknown): never {
  process.stderr.write(`raw-reader: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}

main().catch(fail);
