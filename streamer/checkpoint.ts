/**
 * The one owner of "the safe LSN": the position PostgreSQL may forget everything before.
 *
 * Markers are kept in stream order: one per transaction (opened at Begin, closed with the
 * commit's end LSN at Commit) and one per keepalive position. A marker counts the changes
 * of it that SQS has not accepted yet. The safe LSN is the LSN of the last marker of the
 * longest prefix in which every marker is closed and fully accepted — so nothing can be
 * confirmed before every change before it was accepted (the first guarantee in the README: nothing committed is lost), and keepalive
 * positions travel the same ordered path, letting an idle slot advance.
 */
import { PgRelayError } from '#core/errors.ts';

export class TxMarker {
  /** End LSN of the commit record (or the keepalive position); set when closed. */
  lsn = 0n;
  open = true;
  pending = 0;
  /** Called once, when the marker is closed and SQS accepted all of its changes (a bootstrap chunk records its progress then). */
  onAccepted: (() => void) | undefined;
  constructor(readonly keepalive = false) {}
}

export class Checkpoint {
  private readonly markers: TxMarker[] = [];
  private head = 0;
  private safe: bigint;
  /** Highest LSN ever handed to a marker: keepalives below it carry no news. */
  private newest: bigint;

  constructor(startLsn: bigint) {
    this.safe = startLsn;
    this.newest = startLsn;
  }

  get safeLsn(): bigint {
    return this.safe;
  }

  /** Markers not yet passed (open or with changes SQS has not accepted). */
  get outstanding(): number {
    return this.markers.length - this.head;
  }

  begin(): TxMarker {
    const m = new TxMarker();
    this.markers.push(m);
    return m;
  }

  commit(marker: TxMarker, endLsn: bigint): void {
    marker.lsn = endLsn;
    marker.open = false;
    if (endLsn > this.newest) this.newest = endLsn;
    if (marker.pending === 0) settled(marker);
    this.advance();
  }

  /** A position from a primary keepalive: safe once everything received before it is. */
  keepalive(lsn: bigint): void {
    if (lsn <= this.newest) return;
    this.newest = lsn;
    const tail = this.markers[this.markers.length - 1];
    if (tail && tail.keepalive && this.markers.length > this.head) {
      tail.lsn = lsn; // coalesce a run of keepalives waiting behind the same transaction
    } else {
      const m = new TxMarker(true);
      m.open = false;
      m.lsn = lsn;
      this.markers.push(m);
    }
    this.advance();
  }

  /** SQS accepted `count` changes of `marker`. */
  accepted(marker: TxMarker, count: number): void {
    marker.pending -= count;
    if (marker.pending < 0) throw new PgRelayError('INTERNAL', 'checkpoint: more changes accepted than were sent');
    if (marker.pending === 0) {
      if (!marker.open) settled(marker);
      this.advance();
    }
  }

  private advance(): void {
    while (this.head < this.markers.length) {
      const m = this.markers[this.head] as TxMarker;
      if (m.open || m.pending > 0) break;
      if (m.lsn > this.safe) this.safe = m.lsn;
      this.head++;
    }
    // Compact now and then so the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.markers.length) {
      this.markers.splice(0, this.head);
      this.head = 0;
    }
  }
}

function settled(marker: TxMarker): void {
  const done = marker.onAccepted;
  if (done === undefined) return;
  marker.onAccepted = undefined;
  done();
}
