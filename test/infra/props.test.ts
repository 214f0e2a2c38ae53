/**
 * PgRelay's props, checked at synth time: every problem listed in one error, by prop path,
 * before any resource is made; defaults applied; CDK tokens let through. Construction only,
 * no synth: these run in milliseconds.
 */
import { App, Fn, Lazy, Stack, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { beforeEach, describe, expect, it } from 'vitest';
import { defaultStreamerMemory, fifoProblem, validatePgRelayProps, type PgRelayDatabase, type PgRelayProps } from '../../cdk/props.ts';
import { PgRelay } from '../../cdk/pgrelay-construct.ts';

let stack: Stack;
let vpc: ec2.IVpc;
let secret: secretsmanager.ISecret;

beforeEach(() => {
  stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Props', { env: { account: '123456789012', region: 'eu-west-1' } });
  vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['eu-west-1a'], privateSubnetIds: ['subnet-0aaaaaaaaaaaaaaa1'] });
  secret = secretsmanager.Secret.fromSecretCompleteArn(stack, 'Secret', 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf');
});

const db = (over: Partial<PgRelayDatabase> = {}): PgRelayDatabase => ({ host: 'db.internal', name: 'shop', secret, ...over });
/** A database without a secret: what a JavaScript caller (or a bad cast) can pass. */
const dbWithoutSecret = (): PgRelayDatabase => ({ host: 'db.internal', name: 'shop' }) as unknown as PgRelayDatabase;

/** The problems of the one error `fn` throws, one per line. */
function problemsOf(fn: () => unknown): string[] {
  let message: string | undefined;
  try {
    fn();
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message, 'expected the props to be refused').toBeDefined();
  const [head, ...lines] = (message as string).split('\n');
  expect(head).toBe('invalid PgRelay props:');
  for (const line of lines) expect(line).toMatch(/^ {2}- /);
  return lines.map((l) => l.slice(4));
}

describe('validatePgRelayProps', () => {
  it('applies the defaults to a single source', () => {
    expect(validatePgRelayProps({ vpc, database: db(), tables: ['public.orders'] })).toEqual([
      {
        sourceId: 'default',
        database: { host: 'db.internal', name: 'shop', secret, port: 5432, sslMode: 'require' },
        tables: ['public.orders'],
        tableKeys: {},
        messages: { prefixes: [] },
        slotName: 'pgrelay_default',
        publicationName: 'pgrelay_default',
      },
    ]);
  });

  it('derives slot and publication names from the source id, and keeps given ones', () => {
    const [a, b] = validatePgRelayProps({
      vpc,
      sources: [
        { sourceId: 'billing-eu', database: db(), tables: ['billing.invoices'] },
        { sourceId: 'crm', database: db({ host: 'crm.internal', port: 6432, sslMode: 'verify-full', caBundle: '-----BEGIN CERTIFICATE-----' }), tables: ['contacts'], slotName: 'crm_slot', publicationName: 'crm_pub' },
      ],
    });
    expect(a).toEqual(expect.objectContaining({ sourceId: 'billing-eu', slotName: 'pgrelay_billing_eu', publicationName: 'pgrelay_billing_eu' }));
    expect(b).toEqual(expect.objectContaining({ sourceId: 'crm', slotName: 'crm_slot', publicationName: 'crm_pub' }));
    expect(b?.database).toEqual(expect.objectContaining({ port: 6432, sslMode: 'verify-full' }));
  });

  it('lists every problem of several sources in one error, each once, by prop path', () => {
    const standardQueue = new sqs.Queue(stack, 'Standard');
    const problems = problemsOf(() =>
      validatePgRelayProps({
        vpc,
        sources: [
          { sourceId: 'shop', database: dbWithoutSecret(), tables: ['public.orders', 'a.b.c'] },
          { sourceId: 'shop', database: db({ host: 'other.internal', port: 70_000, sslMode: 'verify-full' }), tables: ['orders'], tableKeys: { 'public.missing': ['id'] } },
          { sourceId: 'Bad_Id', database: db({ host: 'third.internal' }), tables: [] },
        ],
        outputs: { nodesQueue: { queue: standardQueue } },
        streamer: { cpu: 300, partitions: 0, memoryLimitMiB: 100 },
        alarms: { slotInactiveSeconds: 5, slotLagBytes: 0 },
        monitor: { liveness: { cooldownSeconds: 10 } },
      }),
    );
    const expected = [
      'sources[0].database.secret: required (a Secrets Manager secret with username and password)',
      'sources[0].tables[1]: "a.b.c" is not a table name: write schema.table (quote parts with double quotes if they contain dots or capitals)',
      'sources[1].sourceId: "shop" is used by sources[0] too; each source needs its own',
      'sources[1].database.port: must be an integer from 1 to 65535, got 70000',
      'sources[1].database.caBundle: required with sslMode verify-full',
      'sources[1].tableKeys.public.missing: not in tables',
      'sources[2].sourceId: "Bad_Id" must be lower-case letters, digits and -, at most 40',
      'sources[2].tables: list at least one table (schema.table)',
      'sources[2].slotName: "pgrelay_Bad_Id" must be lower-case letters, digits and _, at most 63',
      'outputs.nodesQueue.queue: Props/Standard is a standard queue; pgrelay needs a FIFO queue (its name ends in .fifo) to keep each node\'s order',
      'alarms.slotLagBytes: must be an integer from 1 to 9007199254740991, got 0',
      'alarms.slotInactiveSeconds: must be an integer from 60 to 86400, got 5',
      'monitor.liveness.cooldownSeconds: must be an integer from 60 to 86400, got 10',
      'streamer.cpu: one of 256, 512, 1024, 2048, 4096 (Fargate), got 300',
      'streamer.partitions: must be an integer from 1 to 4096, got 0',
    ];
    expect(problems).toEqual(expected);
  });

  it('lists "both database and sources" together with the problems of the single source and the rest', () => {
    const problems = problemsOf(() =>
      validatePgRelayProps({
        vpc,
        database: dbWithoutSecret(),
        tables: ['orders', 'too.many.parts'],
        sources: [{ sourceId: 'other', database: db(), tables: ['public.x'] }],
        outputs: { nodesQueue: { queue: sqs.Queue.fromQueueArn(stack, 'Plain', 'arn:aws:sqs:eu-west-1:123456789012:plain') } },
        streamer: { cpu: 768 },
      }),
    );
    expect(problems).toEqual([
      'give either database + tables (one source) or sources (several), not both',
      'database.secret: required (a Secrets Manager secret with username and password)',
      'tables[1]: "too.many.parts" is not a table name: write schema.table (quote parts with double quotes if they contain dots or capitals)',
      'outputs.nodesQueue.queue: Props/Plain is a standard queue; pgrelay needs a FIFO queue (its name ends in .fifo) to keep each node\'s order',
      'streamer.cpu: one of 256, 512, 1024, 2048, 4096 (Fargate), got 768',
    ]);
  });

  it('asks for a database when neither one nor sources are given, and for somewhere to send events', () => {
    expect(problemsOf(() => validatePgRelayProps({ vpc } as PgRelayProps))).toEqual(['database and tables: required (or sources, for several databases)']);
    expect(problemsOf(() => validatePgRelayProps({ vpc, sources: [] }))).toEqual(['database and tables: required (or sources, for several databases)']);
    expect(problemsOf(() => validatePgRelayProps({ database: db(), tables: ['t'], outputs: { eventBridge: false, nodesQueue: false } } as unknown as PgRelayProps))).toEqual([
      'vpc: required (the streamer and the monitor run in it)',
      'outputs: enable eventBridge, nodesQueue or both (events need somewhere to go)',
    ]);
    expect(problemsOf(() => validatePgRelayProps({ vpc, database: db(), tables: ['t'], outputs: { eventBridge: {} as { bus: events.IEventBus } } }))).toEqual(['outputs.eventBridge.bus: required when eventBridge is an object']);
  });

  it('refuses two sources on one slot of one database', () => {
    const problems = problemsOf(() =>
      validatePgRelayProps({
        vpc,
        sources: [
          { sourceId: 'a', database: db(), tables: ['t'], slotName: 'shared' },
          { sourceId: 'b', database: db(), tables: ['u'], slotName: 'shared' },
        ],
      }),
    );
    expect(problems).toEqual(['sources[1].slotName: shared on the same database is used by sources[0]; two streamers cannot share a slot']);
  });

  it('lets CDK tokens through (they resolve at deploy)', () => {
    const generated = new secretsmanager.Secret(stack, 'Generated');
    const resolved = validatePgRelayProps({
      vpc,
      database: { host: Fn.importValue('DbHost'), name: Lazy.string({ produce: () => 'shop' }), port: Token.asNumber(Fn.importValue('DbPort')), secret: generated },
      tables: ['public.orders'],
      alarms: { slotLagBytes: Token.asNumber(Fn.importValue('LagBytes')) },
    });
    expect(Token.isUnresolved(resolved[0]?.database.host)).toBe(true);
    expect(Token.isUnresolved(resolved[0]?.database.port)).toBe(true);
  });

  it('accepts a FIFO queue, made here or imported, as the nodes queue', () => {
    expect(fifoProblem('q', new sqs.Queue(stack, 'Fifo', { fifo: true }))).toBeUndefined();
    expect(fifoProblem('q', sqs.Queue.fromQueueArn(stack, 'ImportedFifo', 'arn:aws:sqs:eu-west-1:123456789012:nodes.fifo'))).toBeUndefined();
    expect(fifoProblem('q', sqs.Queue.fromQueueArn(stack, 'ImportedStandard', 'arn:aws:sqs:eu-west-1:123456789012:nodes'))).toMatch(/^q: Props\/ImportedStandard is a standard queue/);
    expect(() => validatePgRelayProps({ vpc, database: db(), tables: ['t'], outputs: { nodesQueue: { queue: new sqs.Queue(stack, 'Fifo2', { fifo: true }) } } })).not.toThrow();
  });

  it('refuses a table listed twice (public.orders and orders), as the streamer and the monitor do', () => {
    expect(problemsOf(() => validatePgRelayProps({ vpc, database: db(), tables: ['public.orders', 'orders'] }))).toEqual(['tables[1]: public.orders is listed twice (also tables[0])']);
  });

  it('takes table entries with their settings, checked by the streamer\'s own entry schema', () => {
    expect(validatePgRelayProps({ vpc, database: db(), tables: ['orders', { table: 'audit', bootstrap: 'off' }] })[0]?.tables).toEqual(['orders', { table: 'audit', bootstrap: 'off' }]);
    expect(problemsOf(() => validatePgRelayProps({ vpc, database: db(), tables: [{ table: 'audit', bootstrap: 'sometimes' as 'off' }, { table: 'bad name' }] }))).toEqual([
      'tables[0].bootstrap: Invalid option: expected one of "auto"|"off"',
      expect.stringMatching(/^tables\[1\]: "bad name" is not a valid table name/),
    ]);
  });

  it('checks message prefixes with the streamer\'s own rules, and passes them through', () => {
    expect(validatePgRelayProps({ vpc, database: db(), tables: ['t'], messages: { prefixes: ['outbox'] } })[0]?.messages).toEqual({ prefixes: ['outbox'] });
    expect(problemsOf(() => validatePgRelayProps({ vpc, database: db(), tables: ['t'], messages: { prefixes: ['pgrelay.gap', 'x', 'x'] } }))).toEqual([
      'messages.prefixes.0: prefixes starting with "pgrelay." are pgrelay\'s own',
      'messages.prefixes: a prefix is listed twice',
    ]);
  });

  it('refuses an empty tableKeys column list, as the streamer does', () => {
    expect(problemsOf(() => validatePgRelayProps({ vpc, database: db(), tables: ['events'], tableKeys: { events: [] } }))).toEqual(['tableKeys.events: list one or more key column names']);
  });

  it('refuses a Fargate cpu/memory pair that does not exist, and picks a valid memory when only cpu is given', () => {
    expect(problemsOf(() => validatePgRelayProps({ vpc, database: db(), tables: ['t'], streamer: { cpu: 256, memoryLimitMiB: 30_720 } }))).toEqual([
      'streamer.memoryLimitMiB: 30720 MiB is not a Fargate size for 256 CPU units; use one of 512–2048 (512, 1024, 2048)',
    ]);
    expect(() => validatePgRelayProps({ vpc, database: db(), tables: ['t'], streamer: { cpu: 2048 } })).not.toThrow();
    expect(defaultStreamerMemory(2048)).toBe(4096);
  });

  it('with both forms given, still checks every source, and names top-level settings sources would ignore', () => {
    const problems = problemsOf(() =>
      validatePgRelayProps({ vpc, database: db(), tables: ['t'], sources: [{ sourceId: 'Bad Id', database: db(), tables: ['a.b.c'] }] }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'give either database + tables (one source) or sources (several), not both',
        expect.stringMatching(/^sources\[0\]\.sourceId: "Bad Id"/),
        expect.stringMatching(/^sources\[0\]\.tables\[0\]: /),
      ]),
    );
    expect(problemsOf(() => validatePgRelayProps({ vpc, sourceId: 'x', tableKeys: {}, sources: [{ sourceId: 'a', database: db(), tables: ['t'] }] }))).toEqual([
      'sourceId: belongs in each of sources[]; with sources the top-level sourceId is not used',
      'tableKeys: belongs in each of sources[]; with sources the top-level tableKeys is not used',
    ]);
  });
});

describe('new PgRelay', () => {
  it('throws the one error before it makes any resource', () => {
    const problems = problemsOf(
      () =>
        new PgRelay(stack, 'Relay', {
          vpc,
          sources: [
            { sourceId: 'shop', database: dbWithoutSecret(), tables: ['shop'] },
            { sourceId: 'shop', database: db({ host: 'b.internal' }), tables: ['x.y.z'] },
          ],
          streamer: { cpu: 100 },
        }),
    );
    expect(problems).toEqual([
      'sources[0].database.secret: required (a Secrets Manager secret with username and password)',
      'sources[1].sourceId: "shop" is used by sources[0] too; each source needs its own',
      'sources[1].tables[0]: "x.y.z" is not a table name: write schema.table (quote parts with double quotes if they contain dots or capitals)',
      'streamer.cpu: one of 256, 512, 1024, 2048, 4096 (Fargate), got 100',
    ]);
    const relay = stack.node.tryFindChild('Relay');
    expect(relay === undefined || relay.node.children.length === 0).toBe(true);
  });
});
