/**
 * A key change and the consumers that read message groups in parallel. FIFO orders only
 * within a group, and groups are consumed side by side, so a consumer can see any
 * interleaving of the groups. The strongest such adversary reads one group to its end before
 * the next, in every order of the groups: each node's changes must still apply in commit
 * order, and the replay must end with exactly the table's rows, on both queues.
 *
 * The two cases that broke when a key change A → B travelled whole in B's group (issue: key
 * change ordered in the new key's group only):
 * - key reuse: a later re-insert of A (in A's group) applied before the key change's removal
 *   of A (in B's group) deleted the new node A;
 * - an earlier update: an update of C (in C's group) applied after the key change C → D (in
 *   D's group) resurrected the removed node C.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeBatch, type GraphNodeEvent, type NodeEvent } from '#core/change-event.ts';
import { parseTransformConfig } from '#core/config.ts';
import { partitionOf } from '#core/partition.ts';
import { toGraphEvent } from '#core/row-to-node.ts';
import { createTransform } from '#transform/handler.ts';
import type { SqsRecord } from '#shared/lambda-types.ts';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { createFifoQueue, drainQueue, receiveUntil, sqsClient, testSqsEndpoint, type ReceivedMessage } from '#test/helpers/sqs.ts';
import { changesOf, startStreamer, streamerConfig, type RunningStreamer } from '#test/helpers/streamer.ts';

const PARTITIONS = 4;
const TABLE = 'public.accounts';

/** A key whose changes partition and nodes partition both differ from `other`'s. */
function keyApartFrom(other: number, taken: number[]): number {
  for (let k = other + 1; ; k++) {
    if (taken.includes(k)) continue;
    // The nodes queue's groups are the changes partitions: apart in one is apart in the other.
    const apart = partitionOf(TABLE, `{"id":${k}}`, PARTITIONS) !== partitionOf(TABLE, `{"id":${other}}`, PARTITIONS);
    if (apart) return k;
  }
}

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

/** Messages by group, each group in the order SQS delivered it. */
function byGroup(messages: ReceivedMessage[]): Map<string, ReceivedMessage[]> {
  const groups = new Map<string, ReceivedMessage[]>();
  for (const m of messages) {
    const list = groups.get(m.groupId ?? '') ?? [];
    list.push(m);
    groups.set(m.groupId ?? '', list);
  }
  return groups;
}

/**
 * A consumer that applies node events in the order it reads them: the nodes it ends with. A
 * truncate copy speaks for the nodes of its own group (those it read in that group).
 */
function replay(groups: [string, GraphNodeEvent[]][]): Map<string, Record<string, unknown>> {
  const nodes = new Map<string, Record<string, unknown>>();
  const groupOf = new Map<string, string>();
  for (const [group, events] of groups) {
    for (const e of events) {
      if (e.type === 'node.inserted' || e.type === 'node.updated') {
        nodes.set(e.node.id as string, e.node.properties);
        groupOf.set(e.node.id as string, group);
      } else if (e.type === 'node.deleted') nodes.delete(e.node.id as string);
      else if (e.type === 'label.truncated') for (const [id, g] of groupOf) if (g === group && id.startsWith(`${e.node.label}:`)) nodes.delete(id);
    }
  }
  return nodes;
}

/** A changes-queue message as Lambda's event source hands it to the transform. */
function record(m: ReceivedMessage): SqsRecord {
  return {
    messageId: m.messageId,
    receiptHandle: m.messageId,
    body: m.body,
    attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0', SenderId: 'test', ApproximateFirstReceiveTimestamp: '0', MessageGroupId: m.groupId ?? '' },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:key-order-changes.fifo',
    awsRegion: 'us-east-1',
  };
}

const eventsOf = (m: ReceivedMessage) => (JSON.parse(m.body) as { events: GraphNodeEvent[] }).events;

/**
 * Feeds the real transform the changes groups in every order (Lambda runs groups side by side),
 * each time into a fresh nodes queue, and calls `check` with that queue's groups.
 */
async function throughTheTransform(endpoint: string, table: string, changesMessages: ReceivedMessage[], check: (nodesGroups: Map<string, ReceivedMessage[]>, order: string[]) => void): Promise<void> {
  const changesGroups = byGroup(changesMessages);
  const client = sqsClient(endpoint);
  try {
    for (const [i, changesOrder] of permutations([...changesGroups.keys()]).entries()) {
      const nodesUrl = await createFifoQueue(endpoint, `order-nodes-${i}`);
      const transform = createTransform(
        parseTransformConfig({ sourceId: 'shop', tables: [table], outputs: { nodesQueue: { queueUrl: nodesUrl } }, sqsEndpoint: endpoint }),
        { credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, log: { info: () => {}, warn: () => {}, error: () => {} } },
      );
      for (const g of changesOrder) expect(await transform.handle((changesGroups.get(g) ?? []).map(record))).toEqual({ batchItemFailures: [] });
      check(byGroup(await drainQueue(client, nodesUrl, { waitTimeSeconds: 0 })), changesOrder);
    }
  } finally {
    client.destroy();
  }
}

describe('a key change, consumed group by group in every order of the groups', () => {
  let db: Awaited<ReturnType<typeof testDatabase>>;
  let endpoint: string;
  let changesUrl: string;
  let running: RunningStreamer;
  let changesMessages: ReceivedMessage[];
  let tableNodes: Map<string, Record<string, unknown>>;
  const a = 1;
  const b = keyApartFrom(a, []);
  const c = keyApartFrom(b, [a]);
  const d = keyApartFrom(c, [a, b]);

  beforeAll(async () => {
    db = await testDatabase('key_order');
    endpoint = await testSqsEndpoint();
    changesUrl = await createFifoQueue(endpoint, 'key-order-changes');
    await withClient(db.url, (client) => client.query('CREATE TABLE accounts (id int PRIMARY KEY, v text)'));
    running = startStreamer(streamerConfig({ dbUrl: db.url, queueUrl: changesUrl, sqsEndpoint: endpoint, tables: ['accounts'], partitions: PARTITIONS }));
    await running.ready;
    // One transaction each, so commit order is statement order.
    const statements = [
      // key reuse: A → B, then a new A
      `INSERT INTO accounts VALUES (${a}, 'a1')`,
      `UPDATE accounts SET v = 'a2' WHERE id = ${a}`,
      `UPDATE accounts SET id = ${b} WHERE id = ${a}`,
      `INSERT INTO accounts VALUES (${a}, 'a reused')`,
      // an earlier update, then C → D
      `INSERT INTO accounts VALUES (${c}, 'c1')`,
      `UPDATE accounts SET v = 'c2' WHERE id = ${c}`,
      `UPDATE accounts SET id = ${d} WHERE id = ${c}`,
    ];
    await withClient(db.url, async (client) => {
      for (const s of statements) await client.query(s);
    });
    const client = sqsClient(endpoint);
    // Seven statements, two of them key changes of two changes each.
    changesMessages = await receiveUntil(client, changesUrl, (ms) => changesOf(ms).length >= 9, 20_000);
    client.destroy();
    const { rows } = await withClient(db.url, (client) => client.query<{ id: number; v: string }>('SELECT id, v FROM accounts'));
    tableNodes = new Map(rows.map((r) => [`accounts:${r.id}`, { id: r.id, v: r.v }]));
  });

  afterAll(async () => {
    await running?.stop();
    await db?.drop();
  });

  it('the fixture is adversarial: old and new key of each key change live in different groups', () => {
    expect(tableNodes).toEqual(
      new Map([
        [`accounts:${a}`, { id: a, v: 'a reused' }],
        [`accounts:${b}`, { id: b, v: 'a2' }],
        [`accounts:${d}`, { id: d, v: 'c2' }],
      ]),
    );
    const groupsOf = (keys: number[]) => new Set(keys.map((k) => partitionOf(TABLE, `{"id":${k}}`, PARTITIONS)));
    expect(groupsOf([a, b]).size).toBe(2);
    expect(groupsOf([c, d]).size).toBe(2);
  });

  it('changes queue: every group order replays to exactly the table (regression: the key change travelled in the new key\'s group only)', () => {
    const groups = byGroup(changesMessages);
    const orders = permutations([...groups.keys()]);
    expect(orders.length).toBeGreaterThanOrEqual(2);
    for (const order of orders) {
      const replayed = order.map((g): [string, GraphNodeEvent[]] => [
        g,
        (groups.get(g) ?? []).flatMap((m) => {
          const batch = changeBatch.parse(JSON.parse(m.body));
          return batch.changes.map((ch) => toGraphEvent(ch, { source: 'shop', labels: new Map([[TABLE, 'accounts']]) }));
        }),
      ]);
      expect(replay(replayed), `groups read in the order ${order.join(', ')}`).toEqual(tableNodes);
    }
  });

  it('nodes queue, through the real transform fed the changes groups in every order: every group order replays to exactly the table', async () => {
    await throughTheTransform(endpoint, 'accounts', changesMessages, (nodesGroups, changesOrder) => {
      // Every node's events, key changes included, sit in that node's own group.
      for (const [group, messages] of nodesGroups) {
        for (const e of messages.flatMap(eventsOf) as NodeEvent[]) expect(group).toBe(`n${partitionOf(TABLE, `{"id":${(e.node.id as string).split(':')[1]}}`, PARTITIONS)}`);
      }
      const keyChanges = [...nodesGroups.values()].flat().flatMap(eventsOf).filter((e) => e.type !== 'message.emitted' && e.keyChange !== undefined);
      expect(keyChanges.map((e) => [e.type, (e as NodeEvent).node.id]).sort()).toEqual(
        [
          ['node.deleted', `accounts:${a}`],
          ['node.inserted', `accounts:${b}`],
          ['node.deleted', `accounts:${c}`],
          ['node.inserted', `accounts:${d}`],
        ].sort(),
      );
      for (const order of permutations([...nodesGroups.keys()])) {
        const groups = order.map((g): [string, GraphNodeEvent[]] => [g, (nodesGroups.get(g) ?? []).flatMap(eventsOf)]);
        expect(replay(groups), `changes groups transformed in the order ${changesOrder.join(', ')}, nodes groups read in the order ${order.join(', ')}`).toEqual(tableNodes);
      }
    });
  });
});

describe('a truncate, consumed group by group in every order of the groups (regression: label-wide events reached the nodes queue from partition 0 only)', () => {
  it('each group gets the truncate after its own nodes\' earlier changes and before their later ones: every order replays to exactly the table', async () => {
    const db = await testDatabase('truncate_order');
    const endpoint = await testSqsEndpoint();
    const changesUrl = await createFifoQueue(endpoint, 'truncate-order-changes');
    await withClient(db.url, (client) => client.query('CREATE TABLE items (id int PRIMARY KEY, v text)'));
    const running = startStreamer(streamerConfig({ dbUrl: db.url, queueUrl: changesUrl, sqsEndpoint: endpoint, tables: ['items'], partitions: PARTITIONS }));
    try {
      await running.ready;
      // Rows in every partition before the truncate, and after it in partitions other than 0.
      const inPartition = (p: number, skip: number[]) => {
        for (let k = 1; ; k++) if (!skip.includes(k) && partitionOf('public.items', `{"id":${k}}`, PARTITIONS) === p) return k;
      };
      const before = [0, 1, 2, 3].map((p) => inPartition(p, []));
      const after = [1, 2, 3].map((p) => inPartition(p, before));
      await withClient(db.url, async (client) => {
        for (const id of before) await client.query(`INSERT INTO items VALUES ($1, 'before')`, [id]);
        await client.query('TRUNCATE items');
        for (const id of after) await client.query(`INSERT INTO items VALUES ($1, 'after')`, [id]);
      });
      const client = sqsClient(endpoint);
      const messages = await receiveUntil(client, changesUrl, (ms) => changesOf(ms).length >= before.length + PARTITIONS + after.length, 20_000);
      client.destroy();
      const expected = new Map(after.map((id) => [`items:${id}`, { id, v: 'after' }]));
      await throughTheTransform(endpoint, 'items', messages, (nodesGroups, changesOrder) => {
        for (const [group, ms] of nodesGroups) {
          const truncates = ms.flatMap(eventsOf).filter((e) => e.type === 'label.truncated');
          expect(truncates, `group ${group}`).toHaveLength(1);
          expect(truncates[0]).toMatchObject({ group: Number(group.slice(1)) });
        }
        for (const order of permutations([...nodesGroups.keys()])) {
          const groups = order.map((g): [string, GraphNodeEvent[]] => [g, (nodesGroups.get(g) ?? []).flatMap(eventsOf)]);
          expect(replay(groups), `changes groups transformed in the order ${changesOrder.join(', ')}, nodes groups read in the order ${order.join(', ')}`).toEqual(expected);
        }
      });
    } finally {
      await running.stop();
      await db.drop();
    }
  });
});
