/**
 * Changes too large for an SQS message travel by claim check: the batch body goes to S3 and the
 * queue carries a ChangeBatchRef in its place, in the same message group, in order. S3 runs on
 * the suite's emulator (fauxqs serves SQS and S3 on one endpoint).
 */
import { createHash } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { changeBatchRef } from '#core/change-event.ts';
import { partitionOf } from '#core/partition.ts';
import { parseLsn } from '#core/position.ts';
import { startProxy } from '#test/helpers/net-proxy.ts';
import { withClient } from '#test/helpers/postgres.ts';
import { changeCount, createTestBucket, resolveChanges, s3Client } from '#test/helpers/s3.ts';
import { confirmedLsn, currentLsn, onCleanup, runCleanups, runStreamer, setupDbAndQueue, type Db } from '#test/helpers/scenario.ts';
import { startSqsFaultProxy } from '#test/helpers/sqs-fault-proxy.ts';
import { drainQueue, receiveUntil, type ReceivedMessage } from '#test/helpers/sqs.ts';
import type { ReceivedChange } from '#test/helpers/streamer.ts';
import { waitFor } from '#test/helpers/wait.ts';

afterEach(runCleanups);

const DDL = 'CREATE TABLE docs (id int PRIMARY KEY, body text)';
const PREFIX = 'relay/';
const MIB = 1024 * 1024;
/** 2 MiB of incompressible text (65,536 md5 digests): twice SQS's message limit. */
const insertBig = (id: number) => `INSERT INTO docs SELECT ${id}, string_agg(md5(g::text), '') FROM generate_series(1, 65536) g`;

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

async function pgDigest(db: Db, id: number): Promise<{ sha256: string; bytes: number }> {
  return withClient(db.url, async (c) => {
    const { rows } = await c.query<{ h: string; n: number }>(
      `SELECT encode(sha256(convert_to(body, 'UTF8')), 'hex') AS h, octet_length(body) AS n FROM docs WHERE id = $1`,
      [id],
    );
    return { sha256: rows[0]!.h, bytes: rows[0]!.n };
  });
}

const ids = (changes: ReceivedChange[]) => changes.map((c) => c.key?.id);
const expectedKey = (m: ReceivedMessage) => `${PREFIX}changes/default/${(m.deduplicationId ?? '').replaceAll(':', '-')}.json`;

describe('large payloads (claim check through S3)', () => {
  it('sends a change too large for SQS as a reference to an S3 object holding it whole, in order within its group, and confirms past it', async () => {
    const { db, queue } = await setupDbAndQueue('claimcheck', DDL);
    const bucket = await createTestBucket(queue.endpoint, 'claimcheck');
    const r = runStreamer({
      dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['docs'], partitions: 1,
      largePayloads: { bucket, prefix: PREFIX }, s3Endpoint: queue.endpoint,
    });
    await r.ready;
    await withClient(db.url, async (c) => {
      await c.query(`INSERT INTO docs VALUES (1, 'before')`);
      await c.query(insertBig(2));
      await c.query(`INSERT INTO docs VALUES (3, 'after')`);
    });
    const end = await currentLsn(db.url);
    const messages = await receiveUntil(queue.client, queue.queueUrl, (ms) => changeCount(ms) >= 3, 30_000);
    const { changes, refs } = await resolveChanges(queue.endpoint, messages);

    expect(ids(changes)).toEqual([1, 2, 3]);
    expect(messages.every((m) => m.groupId === 'p0')).toBe(true);
    expect(refs).toHaveLength(1);
    const { message, payloadRef } = refs[0]!;
    // The reference is small, keeps the group and the position-derived deduplication id, and
    // names an object whose key derives from that id.
    expect(Buffer.byteLength(message.body)).toBeLessThan(1024);
    expect(changeBatchRef.parse(JSON.parse(message.body)).partition).toBe(0);
    const big = changes[1]!;
    const pos = `${parseLsn(big.position.commitLsn).toString(16).toUpperCase().padStart(16, '0')}:${big.position.seq.toString(16).toUpperCase().padStart(8, '0')}`;
    expect(message.deduplicationId).toBe(`0.${pos}.${pos}`);
    expect(payloadRef).toMatchObject({ bucket, key: expectedKey(message) });
    expect(payloadRef.bytes).toBeGreaterThan(2 * MIB);

    // Every byte of the value arrived: PostgreSQL's digest of the column equals the event's.
    const digest = await pgDigest(db, 2);
    expect(digest.bytes).toBe(2 * MIB);
    expect(typeof big.after?.body).toBe('string');
    expect(Buffer.byteLength(big.after!.body as string)).toBe(digest.bytes);
    expect(sha256(big.after!.body as string)).toBe(digest.sha256);

    const s3 = s3Client(queue.endpoint);
    onCleanup(async () => s3.destroy());
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: payloadRef.key }));
    expect(object.ContentType).toBe('application/json');
    expect(r.streamer.stats().storedPayloads).toBe(1);

    // The slot is confirmed past the big change once SQS accepted its reference and what followed.
    await waitFor(async () => (await confirmedLsn(db.url)) >= end, { timeoutMs: 15_000, message: 'slot confirmed past the big change' });
  });

  it('while S3 is unreachable, sends nothing after the oversized change in its partition and confirms nothing past it; delivers all of it when S3 returns', async () => {
    const { db, queue } = await setupDbAndQueue('claimoutage', DDL);
    const bucket = await createTestBucket(queue.endpoint, 'claimoutage');
    // SQS and S3 share the emulator's endpoint: only the streamer's S3 traffic goes through the proxy.
    const s3Proxy = await startProxy('127.0.0.1', Number(new URL(queue.endpoint).port));
    onCleanup(() => s3Proxy.close());
    const r = runStreamer({
      dbUrl: db.url, queueUrl: queue.queueUrl, sqsEndpoint: queue.endpoint, tables: ['docs'], partitions: 2,
      largePayloads: { bucket, prefix: PREFIX }, s3Endpoint: `http://127.0.0.1:${s3Proxy.port}`,
    });
    const partOf = (id: number) => partitionOf('public.docs', JSON.stringify({ id }), 2);
    const candidates = Array.from({ length: 100 }, (_, i) => i + 1);
    const [a, b, c] = candidates.filter((id) => partOf(id) === 0) as [number, number, number];
    const d = candidates.find((id) => partOf(id) === 1)!;
    await r.ready;

    await withClient(db.url, (cl) => cl.query(`INSERT INTO docs VALUES ($1, 'before')`, [a]));
    const first = await receiveUntil(queue.client, queue.queueUrl, (ms) => changeCount(ms) >= 1);
    await waitFor(() => r.streamer.stats().inFlightBytes === 0);

    s3Proxy.block('reset');
    await withClient(db.url, async (cl) => {
      await cl.query(insertBig(b));
      await cl.query(`INSERT INTO docs VALUES ($1, 'after, same partition')`, [c]);
      await cl.query(`INSERT INTO docs VALUES ($1, 'after, other partition')`, [d]);
    });
    await waitFor(() => r.streamer.stats().failedUploads >= 2, { timeoutMs: 15_000, message: 'uploads failing while S3 is down' });
    // The other partition flows; the blocked one sends nothing, however long S3 stays away.
    const during = await receiveUntil(queue.client, queue.queueUrl, (ms) => ms.some((m) => m.groupId === 'p1'), 15_000);
    const failedSoFar = r.streamer.stats().failedUploads;
    await waitFor(() => r.streamer.stats().failedUploads >= failedSoFar + 2, { timeoutMs: 15_000, message: 'more failed uploads' });
    during.push(...(await drainQueue(queue.client, queue.queueUrl, { waitTimeSeconds: 1 })));
    expect(during.filter((m) => m.groupId === 'p0')).toEqual([]);
    expect((await resolveChanges(queue.endpoint, during)).changes.map((ch) => ch.key?.id)).toEqual([d]);
    // The stored body waits in memory and counts as in flight; nothing past it is confirmed.
    expect(r.streamer.stats().inFlightBytes).toBeGreaterThan(2 * MIB);
    const confirmedInStreamer = parseLsn(r.streamer.stats().confirmedLsn);
    const confirmedInSlot = await confirmedLsn(db.url);
    expect(r.logs.some((l) => l.msg === 'payload upload failed, retrying' && l.partition === 0)).toBe(true);

    s3Proxy.unblock();
    const after = await receiveUntil(queue.client, queue.queueUrl, (ms) => changeCount(ms) >= 2, 30_000);
    const { changes, refs } = await resolveChanges(queue.endpoint, [...first, ...after]);
    expect(ids(changes)).toEqual([a, b, c]);
    expect(changes.every((ch) => ch.groupId === 'p0')).toBe(true);
    expect(refs.map((x) => x.message.groupId)).toEqual(['p0']);
    const big = changes[1]!;
    expect(sha256(big.after!.body as string)).toBe((await pgDigest(db, b)).sha256);

    // What was confirmed during the outage lay before the big change's commit.
    const bigCommit = parseLsn(big.position.commitLsn);
    expect(confirmedInStreamer).toBeLessThanOrEqual(bigCommit);
    expect(confirmedInSlot).toBeLessThanOrEqual(bigCommit);
    const end = await currentLsn(db.url);
    await waitFor(async () => (await confirmedLsn(db.url)) >= end, { timeoutMs: 15_000, message: 'slot confirmed past the big change' });
    expect(r.streamer.stats().inFlightBytes).toBe(0);
  });

  it('stores the body once however often SQS refuses its reference, and a restart overwrites the same object', async () => {
    const { db, queue } = await setupDbAndQueue('claimrestart', DDL);
    const bucket = await createTestBucket(queue.endpoint, 'claimrestart');
    // SQS refuses every reference (a retryable server error) until the streamer is restarted without the proxy.
    const sqsProxy = await startSqsFaultProxy(queue.endpoint, (e) => (e.MessageBody.includes('"payloadRef"') ? { code: 'InternalError', senderFault: false } : undefined));
    onCleanup(() => sqsProxy.close());
    const config = {
      dbUrl: db.url, queueUrl: queue.queueUrl, tables: ['docs'], partitions: 1, shutdownTimeoutMs: 1_000,
      largePayloads: { bucket, prefix: PREFIX }, s3Endpoint: queue.endpoint,
    };
    const r1 = runStreamer({ ...config, sqsEndpoint: sqsProxy.endpoint });
    await r1.ready;
    await withClient(db.url, (c) => c.query(insertBig(7)));
    await waitFor(() => sqsProxy.failed.length >= 3, { timeoutMs: 15_000, message: 'references refused' });
    await r1.stop();
    expect(r1.streamer.stats().storedPayloads).toBe(1);
    const refused = sqsProxy.failed.map((e) => changeBatchRef.parse(JSON.parse(e.MessageBody)).payloadRef);
    expect(new Set(refused.map((ref) => JSON.stringify(ref))).size).toBe(1);

    const r2 = runStreamer({ ...config, sqsEndpoint: queue.endpoint });
    const messages = await receiveUntil(queue.client, queue.queueUrl, (ms) => changeCount(ms) >= 1, 30_000);
    const { changes, refs } = await resolveChanges(queue.endpoint, messages);
    expect(ids(changes)).toEqual([7]);
    expect(r2.streamer.stats().storedPayloads).toBe(1);
    // The same position, the same deduplication id, the same key and content: one object.
    expect(refs.map((x) => x.payloadRef)).toEqual([refused[0]]);
    const s3 = s3Client(queue.endpoint);
    onCleanup(async () => s3.destroy());
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: PREFIX }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual([refused[0]!.key]);
  });
});
