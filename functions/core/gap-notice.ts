/**
 * The monitor's gap notice: a transactional logical message (`pg_logical_emit_message(true,
 * 'pgrelay.gap', …)`) written when changes were lost and streaming resumes (a recreated slot,
 * a table put back into the publication). The streamer turns it into `gap` changes. Defined
 * here, once, because both ends read it: functions/monitor writes, streamer/ decodes.
 */
import { gap, type Gap } from './change-event.ts';
import { PgRelayError } from './errors.ts';

/** Prefix of the gap notice's logical message. */
export const GAP_PREFIX = 'pgrelay.gap';

export interface GapNotice {
  v: 1;
  slot: string;
  reason: Gap['reason'];
  afterLsn: string | null;
  untilLsn: string | null;
  repair: Gap['repair'];
  /** `schema.table` of each table concerned. */
  tables: string[];
}

const LSN_TEXT = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;

/** Checks a notice's shape; throws naming what is wrong. */
export function parseGapNotice(text: string): GapNotice {
  const doc = JSON.parse(text) as Partial<GapNotice>;
  const lsnOrNull = (v: unknown) => v === null || (typeof v === 'string' && LSN_TEXT.test(v));
  if (doc.v !== 1) throw new PgRelayError('BAD_GAP_NOTICE', 'v must be 1');
  if (typeof doc.slot !== 'string') throw new PgRelayError('BAD_GAP_NOTICE', 'slot must be a string');
  if (!gap.shape.reason.options.includes(doc.reason as Gap['reason'])) throw new PgRelayError('BAD_GAP_NOTICE', `unknown reason ${String(doc.reason)}`);
  if (!lsnOrNull(doc.afterLsn) || !lsnOrNull(doc.untilLsn)) throw new PgRelayError('BAD_GAP_NOTICE', 'afterLsn and untilLsn must be LSNs or null');
  if (!gap.shape.repair.options.includes(doc.repair as Gap['repair'])) throw new PgRelayError('BAD_GAP_NOTICE', `unknown repair ${String(doc.repair)}`);
  if (!Array.isArray(doc.tables) || doc.tables.some((t) => typeof t !== 'string')) throw new PgRelayError('BAD_GAP_NOTICE', 'tables must be a list of schema.table');
  return doc as GapNotice;
}
