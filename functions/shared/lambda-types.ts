/**
 * AWS Lambda's event and response shapes pgrelay handles (SQS event source, EventBridge target),
 * from `@types/aws-lambda` under the names the code uses, and the grouping of SQS records.
 */
import type { EventBridgeEvent as AwsEventBridgeEvent, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';

export type SqsRecord = SQSRecord;
export type SqsEvent = SQSEvent;
/** With `ReportBatchItemFailures` on the event source mapping: only these records are retried. */
export type SqsBatchResponse = SQSBatchResponse;
export type EventBridgeEvent<Detail = unknown> = AwsEventBridgeEvent<string, Detail>;

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
