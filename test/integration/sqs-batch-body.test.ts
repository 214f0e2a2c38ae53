/**
 * The SendMessageBatch body written by JSON.stringify (functions/shared/sqs-batch-body.ts)
 * against the SDK's own serializer: the same document for every kind of character, the same
 * headers and a content length that matches, other commands untouched; and, on the emulator,
 * messages sent this way arrive byte for byte and pass the SDK's MD5 check of the response.
 */
import { SendMessageBatchCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { BodyPieces, entryBody, useFastBatchBody, withBodyPieces } from '#shared/sqs-batch-body.ts';
import { createFifoQueue, drainQueue, sqsClient } from '#test/helpers/sqs.ts';

interface Captured {
  body: string;
  headers: Record<string, string>;
}

const clients: SQSClient[] = [];
afterAll(() => clients.forEach((c) => c.destroy()));

/** A client whose requests stop just before the network, handing over what would be sent. */
function capturingClient(fast: boolean): { client: SQSClient; last(): Captured } {
  // Port 9 (discard) is never reached: the capture throws before the request is sent.
  const client = sqsClient('http://127.0.0.1:9', { maxAttempts: 1 });
  clients.push(client);
  if (fast) useFastBatchBody(client);
  let captured: Captured | undefined;
  client.middlewareStack.add(
    (_next) => async (args) => {
      const request = args.request as { body: Uint8Array | string; headers: Record<string, string> };
      captured = { body: Buffer.from(request.body as Uint8Array).toString('utf8'), headers: { ...request.headers } };
      throw new Error('captured');
    },
    { step: 'finalizeRequest', priority: 'low', name: 'capture' },
  );
  return {
    client,
    last: () => {
      if (!captured) throw new Error('nothing captured');
      return captured;
    },
  };
}

async function capture(fast: boolean, command: SendMessageBatchCommand | SendMessageCommand): Promise<Captured> {
  const { client, last } = capturingClient(fast);
  await expect(client.send(command as SendMessageBatchCommand)).rejects.toThrow('captured');
  return last();
}

/** Headers that differ between any two requests (time, ids, the signature over them). */
const VOLATILE = new Set(['amz-sdk-invocation-id', 'x-amz-date', 'authorization', 'x-amz-content-sha256', 'content-length']);
const stable = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).filter(([k]) => !VOLATILE.has(k)));

/** Every BMP code unit class the serializers treat differently, surrogate pairs and lone halves included. */
function trickyStrings(): string[] {
  const all: string[] = [];
  let s = '';
  for (let c = 0; c < 0x800; c++) s += String.fromCharCode(c);
  all.push(s);
  all.push('\u2028\u2029\ufeff\uffff\u{1f600}\u{10ffff}');
  all.push('lone high \ud800 and lone low \udc00, reversed \udc00\ud800, pair \ud83d\ude00');
  all.push(JSON.stringify({ key: '"quoted"\n\\back\\', n: 1.5e300, nested: ['\t', null] }));
  all.push('');
  all.push('x'.repeat(200_000) + '"' + '\\'.repeat(1000));
  return all;
}

const QUEUE_URL = 'https://sqs.eu-west-1.amazonaws.com/123456789012/changes.fifo';
const entries = (bodies: string[]) => bodies.map((b, i) => ({ Id: String(i), MessageBody: b, MessageGroupId: `p${i}`, MessageDeduplicationId: `d-${i}` }));

describe('SendMessageBatch body written by JSON.stringify', () => {
  it('is the document the SDK writes, with the same headers and a matching content length', async () => {
    const bodies = trickyStrings().filter((b) => b.length > 0);
    for (let from = 0; from < bodies.length; from += 3) {
      const input = { QueueUrl: QUEUE_URL, Entries: entries(bodies.slice(from, from + 3)) };
      const sdk = await capture(false, new SendMessageBatchCommand(input));
      const fast = await capture(true, new SendMessageBatchCommand(input));
      expect(JSON.parse(fast.body)).toEqual(JSON.parse(sdk.body));
      // The parsed bodies are the original strings, lone surrogates included.
      expect((JSON.parse(fast.body) as { Entries: { MessageBody: string }[] }).Entries.map((e) => e.MessageBody)).toEqual(bodies.slice(from, from + 3));
      expect(stable(fast.headers)).toEqual(stable(sdk.headers));
      expect(Number(fast.headers['content-length'])).toBe(Buffer.byteLength(fast.body));
      expect(fast.headers['x-amz-target']).toBe('AmazonSQS.SendMessageBatch');
    }
  });

  it('writes a body given as pieces exactly as the same body given whole', async () => {
    const bodies = trickyStrings().filter((b) => b.length > 0);
    // Cut each body into a head, parts around a separator, and a tail, at awkward places
    // (inside surrogate pairs and escapes included).
    const piecesOf = (b: string, cut: number) => {
      const third = Math.max(1, Math.floor(b.length / 3));
      const middle = b.slice(cut, cut + third);
      return new BodyPieces(b.slice(0, cut), [middle, middle, middle], b.slice(cut + third, cut + third + 1) || ',', b.slice(cut + third + 1));
    };
    for (const cut of [0, 1, 7]) {
      const pieces = bodies.map((b) => piecesOf(b, Math.min(cut, b.length - 1)));
      const whole = { QueueUrl: QUEUE_URL, Entries: entries(pieces.map(String)) };
      const piecewise = { QueueUrl: QUEUE_URL, Entries: entries(pieces.map(() => '')).map((e, i) => withBodyPieces(e, pieces[i] as BodyPieces)) };
      const sdk = await capture(false, new SendMessageBatchCommand(whole));
      const fast = await capture(true, new SendMessageBatchCommand(piecewise));
      expect(JSON.parse(fast.body)).toEqual(JSON.parse(sdk.body));
      expect(piecewise.Entries.map(entryBody)).toEqual(pieces.map(String));
    }
  });

  it('refuses an entry whose body is empty (pieces lost on the way), before anything is sent', async () => {
    const input = { QueueUrl: QUEUE_URL, Entries: entries(['{}', '']) };
    const { client } = capturingClient(true);
    await expect(client.send(new SendMessageBatchCommand(input))).rejects.toThrow('SendMessageBatch entry 1 has an empty body');
  });

  it('leaves other commands to the SDK', async () => {
    const input = { QueueUrl: QUEUE_URL, MessageBody: '{"a":"\u00e9"}', MessageGroupId: 'g', MessageDeduplicationId: 'd' };
    const sdk = await capture(false, new SendMessageCommand(input));
    const fast = await capture(true, new SendMessageCommand(input));
    expect(fast.body).toBe(sdk.body);
  });

  it('delivers every body unchanged through the emulator, and the MD5 check of the response passes', async () => {
    const endpoint = inject('sqsEndpoint');
    const queueUrl = await createFifoQueue(endpoint, 'fast-body');
    const client = sqsClient(endpoint);
    clients.push(client);
    useFastBatchBody(client);
    // SQS refuses characters outside XML 1.0 (lone surrogates, most controls), and fauxqs also
    // refuses those beyond U+FFFD, which SQS accepts: the bodies stay inside what both accept.
    const bodies = ['{"quote":"\\"","nl":"\\n","u":"\u00e9\u2028\ufffd"}', 'x'.repeat(100_000), '\t\r\n plain \u007f'];
    const result = await client.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries(bodies) }));
    expect(result.Failed ?? [], JSON.stringify(result.Failed)).toEqual([]);
    expect(result.Successful).toHaveLength(bodies.length);
    const received = await drainQueue(client, queueUrl);
    expect(received.map((m) => m.body).sort()).toEqual([...bodies].sort());

    // The same bodies as pieces.
    const pieces = bodies.map((b) => new BodyPieces(b.slice(0, 3), [b.slice(3, 10), b.slice(10)], '', ''));
    const piecewise = entries(bodies.map(() => '')).map((e, i) => withBodyPieces({ ...e, MessageDeduplicationId: `p-${i}` }, pieces[i] as BodyPieces));
    const second = await client.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: piecewise }));
    expect(second.Successful).toHaveLength(bodies.length);
    expect((await drainQueue(client, queueUrl)).map((m) => m.body).sort()).toEqual([...bodies].sort());
  });

  it('fails the call when SQS reports a different MD5 for a body, as the SDK does', async () => {
    const endpoint = inject('sqsEndpoint');
    const queueUrl = await createFifoQueue(endpoint, 'fast-body-md5');
    const client = sqsClient(endpoint);
    clients.push(client);
    useFastBatchBody(client);
    // A body stored differently than sent: here, the MD5 of the response altered on arrival.
    client.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        const out = result.output as { Successful?: { MD5OfMessageBody?: string }[] };
        const first = out.Successful?.[0];
        if (first) first.MD5OfMessageBody = '0'.repeat(32);
        return result;
      },
      { step: 'deserialize', priority: 'high', name: 'alterMd5' },
    );
    await expect(client.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries(['{"a":1}', '{"b":2}']) }))).rejects.toThrow(/Invalid MD5 checksum on messages: \S+$/);
  });
});
