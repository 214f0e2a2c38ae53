/**
 * The bootstrap's marks in the WAL: non-transactional logical messages with pgrelay's own
 * prefix, written by the loader and met again by the decoder at their place in the stream.
 * `started` and `completed` frame a table's load; `chunk` closes a chunk's window (the
 * chunk's rows are emitted there). Each names its slot, so another slot on the same database
 * passes over them.
 */
import { PgRelayError } from '#core/errors.ts';

export const BOOTSTRAP_PREFIX = 'pgrelay.bootstrap';

export type BootstrapMark =
  | { v: 1; slot: string; kind: 'started' | 'completed'; load: string; table: string }
  | { v: 1; slot: string; kind: 'chunk'; load: string; table: string; chunk: number };

export function formatMark(mark: BootstrapMark): string {
  return JSON.stringify(mark);
}

/** The mark in a message's content; throws a PgRelayError naming what is wrong. */
export function parseMark(content: Buffer): BootstrapMark {
  let doc: Partial<BootstrapMark> & { chunk?: unknown };
  try {
    doc = JSON.parse(content.toString('utf8')) as typeof doc;
  } catch (err) {
    throw new PgRelayError('BAD_BOOTSTRAP_MARK', `a ${BOOTSTRAP_PREFIX} message is not JSON`, { cause: err });
  }
  const ok =
    doc.v === 1 &&
    typeof doc.slot === 'string' &&
    typeof doc.load === 'string' &&
    typeof doc.table === 'string' &&
    (doc.kind === 'started' || doc.kind === 'completed' || (doc.kind === 'chunk' && Number.isSafeInteger(doc.chunk)));
  if (!ok) throw new PgRelayError('BAD_BOOTSTRAP_MARK', `a ${BOOTSTRAP_PREFIX} message has an unknown shape: ${content.toString('utf8').slice(0, 200)}`);
  return doc as BootstrapMark;
}
