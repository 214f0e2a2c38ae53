/**
 * The parts of AWS Lambda's event shapes pgrelay reads (SQS event source, EventBridge target),
 * written out here rather than pulling in a types package for a dozen fields.
 */
export interface SqsRecord {
  messageId: string;
  receiptHandle: string;
  body: string;
  attributes: {
    ApproximateReceiveCount: string;
    SentTimestamp: string;
    MessageGroupId?: string;
    MessageDeduplicationId?: string;
    SequenceNumber?: string;
    [name: string]: string | undefined;
  };
  messageAttributes: Record<string, unknown>;
  md5OfBody: string;
  eventSource: 'aws:sqs';
  eventSourceARN: string;
  awsRegion: string;
}

export interface SqsEvent {
  Records: SqsRecord[];
}

/** With `ReportBatchItemFailures` on the event source mapping: only these records are retried. */
export interface SqsBatchResponse {
  batchItemFailures: { itemIdentifier: string }[];
}

export interface EventBridgeEvent<Detail = unknown> {
  version: string;
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Detail;
}

/** Records by message group, each list in delivery order (FIFO order holds within a group). */
export function byMessageGroup(records: SqsRecord[]): SqsRecord[][] {
  const groups = new Map<string, SqsRecord[]>();
  for (const r of records) {
    const g = r.attributes.MessageGroupId ?? `(no group) ${r.messageId}`;
    let list = groups.get(g);
    if (!list) groups.set(g, (list = []));
    list.push(r);
  }
  return [...groups.values()];
}
