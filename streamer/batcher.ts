/**
 * Groups serialized changes by partition into SQS message bodies. A message closes when
 * the next change would push it past `maxBytes`, when it holds `maxChanges`, or when it
 * has waited `lingerMs` (checked by `flushDue`). Each message remembers which transaction
 * markers its changes belong to, so the checkpoint learns exactly what SQS accepted.
 *
 * A change too large for any SQS message either stops the streamer (CHANGE_TOO_LARGE) or,
 * with a payload store (`oversized: true`), travels alone in an `oversized` message, after
 * its partition's open batch: the sink stores that body and sends a reference to it.
 */
import { SQS_MAX_MESSAGE_BYTES } from '#core/config.ts';
import { DeliveryError } from '#core/errors.ts';
import { positionKey } from '#core/position.ts';
import { BodyPieces } from '#shared/sqs-batch-body.ts';
import type { TxMarker } from './checkpoint.ts';

export interface OutgoingMessage {
  partition: number;
  /** The body as one string, joined when first read; the SQS sink writes `pieces` instead. */
  readonly body: string;
  /** The body as its pieces: the envelope's head, the changes, the commas, the tail. */
  pieces: BodyPieces;
  bytes: number;
  changes: number;
  /** Markers in order, each with how many of this message's changes belong to it. */
  markers: TxMarker[];
  counts: number[];
  /** Derived from the first and last position it carries: the same content, the same id. */
  deduplicationId: string;
  /** One change whose body exceeds SQS's limit: the sink stores `body` and sends a ChangeBatchRef. */
  oversized?: true;
}

interface OpenBatch {
  parts: string[];
  bytes: number;
  markers: TxMarker[];
  counts: number[];
  firstLsn: bigint;
  firstSeq: number;
  lastLsn: bigint;
  lastSeq: number;
  openedAt: number;
}

export interface BatcherOptions {
  partitions: number;
  maxBytes: number;
  maxChanges: number;
  lingerMs: number;
  /** A payload store takes bodies too large for SQS (claim check); without one such a change is fatal. @default false */
  oversized?: boolean;
}

const CLOSE = ']}';

export class Batcher {
  private readonly open: (OpenBatch | undefined)[];
  private readonly prefixes: string[];
  private readonly prefixBytes: number[];
  /** Bytes held in open batches. */
  bufferedBytes = 0;

  constructor(
    private readonly opts: BatcherOptions,
    private readonly emit: (msg: OutgoingMessage) => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.open = new Array(opts.partitions).fill(undefined);
    this.prefixes = Array.from({ length: opts.partitions }, (_, p) => `{"v":1,"partition":${p},"changes":[`);
    this.prefixBytes = this.prefixes.map((s) => s.length);
  }

  /** `size` is the change's UTF-8 byte length (the decoder knows it without measuring). */
  add(partition: number, json: string, size: number, marker: TxMarker, commitLsn: bigint, seq: number): void {
    const envelope = (this.prefixBytes[partition] as number) + CLOSE.length;
    if (size + envelope > SQS_MAX_MESSAGE_BYTES) {
      if (this.opts.oversized) {
        this.addOversized(partition, json, size + envelope, marker, commitLsn, seq);
        return;
      }
      throw new DeliveryError(
        'CHANGE_TOO_LARGE',
        `a change of ${size} bytes at position ${positionKey(commitLsn, seq)} does not fit in one SQS message (${SQS_MAX_MESSAGE_BYTES} bytes); nothing was acknowledged`,
      );
    }
    let batch = this.open[partition];
    if (batch && (batch.bytes + 1 + size > this.opts.maxBytes || batch.parts.length >= this.opts.maxChanges)) {
      this.close(partition);
      batch = undefined;
    }
    if (!batch) {
      // A change larger than maxBytes (but within SQS's limit) travels alone.
      batch = { parts: [], bytes: envelope, markers: [], counts: [], firstLsn: commitLsn, firstSeq: seq, lastLsn: commitLsn, lastSeq: seq, openedAt: this.now() };
      this.open[partition] = batch;
    } else {
      batch.bytes += 1; // the comma
      this.bufferedBytes += 1;
    }
    batch.parts.push(json);
    batch.bytes += size;
    this.bufferedBytes += size;
    batch.lastLsn = commitLsn;
    batch.lastSeq = seq;
    const last = batch.markers.length - 1;
    if (last >= 0 && batch.markers[last] === marker) batch.counts[last] = (batch.counts[last] as number) + 1;
    else {
      batch.markers.push(marker);
      batch.counts.push(1);
    }
    marker.pending++;
    if (batch.parts.length >= this.opts.maxChanges || batch.bytes >= this.opts.maxBytes) this.close(partition);
  }

  /** Emits the partition's open batch, then this change alone: order within the partition holds. */
  private addOversized(partition: number, json: string, bytes: number, marker: TxMarker, commitLsn: bigint, seq: number): void {
    this.close(partition);
    marker.pending++;
    const position = positionKey(commitLsn, seq);
    const pieces = new BodyPieces(this.prefixes[partition] as string, [json], ',', CLOSE);
    this.emit({
      partition,
      get body() {
        return pieces.toString();
      },
      pieces,
      bytes,
      changes: 1,
      markers: [marker],
      counts: [1],
      deduplicationId: `${partition}.${position}.${position}`,
      oversized: true,
    });
  }

  /** Close batches that have waited `lingerMs`. */
  flushDue(): void {
    const deadline = this.now() - this.opts.lingerMs;
    for (let p = 0; p < this.open.length; p++) {
      const b = this.open[p];
      if (b && b.openedAt <= deadline) this.close(p);
    }
  }

  flushAll(): void {
    for (let p = 0; p < this.open.length; p++) if (this.open[p]) this.close(p);
  }

  private close(partition: number): void {
    const b = this.open[partition];
    if (!b) return;
    this.open[partition] = undefined;
    this.bufferedBytes -= b.bytes - (this.prefixBytes[partition] as number) - CLOSE.length;
    const pieces = new BodyPieces(this.prefixes[partition] as string, b.parts, ',', CLOSE);
    this.emit({
      partition,
      get body() {
        return pieces.toString();
      },
      pieces,
      bytes: b.bytes,
      changes: b.parts.length,
      markers: b.markers,
      counts: b.counts,
      deduplicationId: `${partition}.${positionKey(b.firstLsn, b.firstSeq)}.${positionKey(b.lastLsn, b.lastSeq)}`,
    });
  }
}
