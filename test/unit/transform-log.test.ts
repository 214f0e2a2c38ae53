/**
 * The transform logs through Powertools Logger: JSON lines with the service, the Lambda request
 * id of the invocation, and for a record's lines its message id, group and the positions of the
 * changes it carries. Lines are read from what the logger writes to stdout and stderr.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseTransformConfig } from '#core/config.ts';
import { stringifyLossless } from '#core/values/lossless-json.ts';
import type { SqsRecord } from '#shared/lambda-types.ts';
import { powertoolsLog } from '#transform/handler.ts';
import { Transform } from '#transform/transform.ts';

const CONTEXT = { awsRequestId: 'req-7f3a', functionName: 'transform', functionVersion: '$LATEST', invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:transform', memoryLimitInMB: '1024', logGroupName: 'g', logStreamName: 's', callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => 1000, done() {}, fail() {}, succeed() {} } as unknown as Context;

afterEach(() => vi.restoreAllMocks());

/** What the logger writes (stdout, and stderr for warnings and errors) while `fn` runs, as parsed JSON lines. */
async function captured(fn: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  const lines: string[] = [];
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream);
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
      if (text.startsWith('{')) lines.push(...text.trim().split('\n'));
      else write(chunk, ...(rest as []));
      return true;
    });
  }
  await fn();
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('transform logs', () => {
  it("a record's lines carry the request id, its message id, group and change positions", async () => {
    const logger = new Logger({ serviceName: 'pgrelay-transform' });
    logger.addContext(CONTEXT);
    const transform = new Transform({ config: parseTransformConfig({ sourceId: 'shop', tables: ['public.orders'], outputs: { eventBridge: { busName: 'bus' } }, region: 'eu-west-1' }), log: powertoolsLog(logger) });
    // An insert without its row: the batch reads, the change cannot become a node event.
    const change = { v: 1, op: 'insert', schema: 'public', table: 'orders', key: { id: '1' }, after: null, before: null, position: { commitLsn: '0/16B3748', seq: 3 }, tx: { xid: 9, commitLsn: '0/16B3748', commitTime: '2026-12-01T00:00:00.000000Z' } };
    const record = {
      messageId: 'msg-1', receiptHandle: 'r', body: stringifyLossless({ v: 1, partition: 2, changes: [change, { ...change, position: { commitLsn: '0/16B3748', seq: 4 } }] }),
      attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0', SenderId: 's', ApproximateFirstReceiveTimestamp: '0', MessageGroupId: 'p2' },
      messageAttributes: {}, md5OfBody: '', eventSource: 'aws:sqs', eventSourceARN: 'arn', awsRegion: 'eu-west-1',
    } as SqsRecord;
    let result: unknown;
    const lines = await captured(async () => (result = await transform.handle([record])));
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'msg-1' }] });
    const line = lines.find((l) => String(l.message).includes('cannot be turned into node events'));
    expect(line, JSON.stringify(lines)).toMatchObject({
      level: 'ERROR',
      service: 'pgrelay-transform',
      function_request_id: 'req-7f3a',
      messageId: 'msg-1',
      group: 'p2',
      position: '0/16B3748:3',
      lastPosition: '0/16B3748:4',
    });
  });
});
