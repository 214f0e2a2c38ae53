import { describe, expect, it } from 'vitest';
import { explainConnectionFailure } from '#shared/connection.ts';
import { detectPlatform } from '#cli/doctor/platform.ts';
import { publicationFindings, type PublicationFacts } from '#cli/doctor/publication.ts';
import type { Finding } from '#cli/doctor/finding.ts';
import { exitCodeOf, formatReport } from '#cli/doctor/report.ts';
import { emitMessageFinding, replicationRoleFinding } from '#cli/doctor/role-privileges.ts';
import { capacityFindings, versionFindings, walKeepFinding, walLevelFinding, type ServerFacts } from '#cli/doctor/server-settings.ts';
import { slotFindings, type SlotFacts } from '#cli/doctor/slots.ts';
import { bootstrapTableFinding, stateSchemaFinding } from '#cli/doctor/state-schema.ts';
import { tableFindings, type TableFacts } from '#cli/doctor/tables.ts';
import { sslFinding } from '#cli/doctor/tls.ts';

const server: ServerFacts = {
  versionNum: 160004,
  version: '16.4',
  walLevel: 'replica',
  inRecovery: false,
  maxReplicationSlots: 10,
  usedReplicationSlots: 2,
  maxWalSenders: 10,
  usedWalSenders: 1,
  maxSlotWalKeepSizeMb: -1,
  rdsLogicalReplication: null,
  azureReplicationSupport: null,
};

const table: TableFacts = {
  name: { schema: 'public', table: 'orders' },
  exists: true,
  relkind: 'r',
  replident: 'd',
  primaryKey: ['id'],
  owner: 'admin',
  isOwner: false,
  canSelect: true,
  schemaUsage: true,
  toastable: [],
  uniqueIndex: null,
  leaves: [],
};

const slot: SlotFacts = { name: 'pgrelay_default', slotType: 'logical', plugin: 'pgoutput', database: 'app', active: true, walStatus: 'reserved', lagBytes: 2048, retainedBytes: 4096, invalidationReason: null };

const publication: PublicationFacts = {
  name: 'pgrelay_default',
  exists: true,
  owner: 'admin',
  mayAlter: false,
  allTables: false,
  viaRoot: true,
  publish: { insert: true, update: true, delete: true, truncate: true },
  members: [{ schema: 'public', table: 'orders' }],
  filtered: [],
};

const pubContext = { user: 'app', database: 'app', tables: [table], canCreateInDatabase: false, managePublication: true, serverVersion: 160004 };

describe('doctor: platform detection', () => {
  it('names the platform from the roles, settings and functions its provider adds', () => {
    const none = { settings: [], roles: [], auroraFunction: false };
    expect(detectPlatform(none)).toBe('self-hosted');
    expect(detectPlatform({ ...none, roles: ['rds_superuser', 'rds_replication'], settings: ['rds.logical_replication'] })).toBe('rds');
    expect(detectPlatform({ ...none, roles: ['rds_superuser'], auroraFunction: true })).toBe('aurora');
    expect(detectPlatform({ ...none, roles: ['cloudsqlsuperuser'] })).toBe('cloudsql');
    expect(detectPlatform({ ...none, settings: ['cloudsql.logical_decoding'] })).toBe('cloudsql');
    expect(detectPlatform({ ...none, roles: ['azure_pg_admin'] })).toBe('azure');
    expect(detectPlatform({ ...none, settings: ['azure.extensions'] })).toBe('azure');
  });
});

describe('doctor: server checks', () => {
  it('wal_level: the fix is the one each platform takes', () => {
    expect(walLevelFinding({ ...server, walLevel: 'logical' }, 'rds').severity).toBe('ok');
    expect(walLevelFinding(server, 'self-hosted')).toMatchObject({ severity: 'block', fix: { sql: 'ALTER SYSTEM SET wal_level = logical;' } });
    const rds = walLevelFinding(server, 'rds');
    expect(rds.fix).toEqual({ parameterGroup: 'rds.logical_replication = 1 in the DB parameter group attached to the instance', note: expect.stringMatching(/^then reboot the instance/) });
    expect(rds.fix?.sql).toBeUndefined();
    expect(walLevelFinding(server, 'aurora').fix?.parameterGroup).toBe('rds.logical_replication = 1 in the DB cluster parameter group attached to the cluster');
    expect(walLevelFinding({ ...server, rdsLogicalReplication: 'on' }, 'rds').detail).toMatch(/already 1, but the instance has not been rebooted/);
    expect(walLevelFinding(server, 'cloudsql').fix?.parameterGroup).toBe('database flag cloudsql.logical_decoding=on');
    expect(walLevelFinding(server, 'azure').fix).toMatchObject({ parameterGroup: 'server parameter wal_level = logical', note: expect.stringContaining('az postgres flexible-server restart') });
    expect(walLevelFinding({ ...server, azureReplicationSupport: 'replica' }, 'azure').fix?.parameterGroup).toBe('server parameter azure.replication_support = logical');
  });

  it('version: below 10 blocks, below 13 warns, a standby blocks', () => {
    expect(versionFindings({ versionNum: 90624, version: '9.6.24', inRecovery: false })).toMatchObject([{ severity: 'block' }]);
    expect(versionFindings({ versionNum: 120020, version: '12.20', inRecovery: false })).toMatchObject([{ severity: 'warn', title: 'PostgreSQL 12.20 is older than 13' }]);
    expect(versionFindings({ versionNum: 180004, version: '18.4', inRecovery: true })).toMatchObject([{ severity: 'ok' }, { id: 'server.standby', severity: 'block' }]);
  });

  it('slots and WAL senders: blocks only when pgrelay would need one and none is free', () => {
    const full = { ...server, usedReplicationSlots: 10, usedWalSenders: 10 };
    const blocked = capacityFindings(full, 'self-hosted', { slotExists: false, slotActive: false });
    expect(blocked).toMatchObject([
      { id: 'capacity.replication_slots', severity: 'block', fix: { sql: 'ALTER SYSTEM SET max_replication_slots = 12;' } },
      { id: 'capacity.wal_senders', severity: 'block', fix: { sql: 'ALTER SYSTEM SET max_wal_senders = 12;' } },
    ]);
    expect(capacityFindings(full, 'self-hosted', { slotExists: true, slotActive: true }).map((f) => f.severity)).toEqual(['ok', 'ok']);
    expect(capacityFindings(full, 'rds', { slotExists: false, slotActive: false })[0]?.fix).toMatchObject({ parameterGroup: 'max_replication_slots = 12 in the DB parameter group', note: expect.stringMatching(/reboot/) });
  });

  it('max_slot_wal_keep_size: unlimited warns with a reload-only fix; RDS takes megabytes', () => {
    expect(walKeepFinding(server, 'self-hosted')).toMatchObject({ severity: 'warn', fix: { sql: "ALTER SYSTEM SET max_slot_wal_keep_size = '50GB';\nSELECT pg_reload_conf();" } });
    expect(walKeepFinding(server, 'rds')?.fix?.parameterGroup).toBe('max_slot_wal_keep_size = 51200 in the DB parameter group');
    expect(walKeepFinding({ ...server, maxSlotWalKeepSizeMb: 2048 }, 'self-hosted')).toMatchObject({ severity: 'ok', title: 'max_slot_wal_keep_size = 2.0 GiB' });
    expect(walKeepFinding({ ...server, maxSlotWalKeepSizeMb: null }, 'self-hosted')).toBeUndefined();
  });
});

describe('doctor: role and TLS', () => {
  it('REPLICATION: ALTER ROLE on self-hosted, GRANT rds_replication on RDS, names quoted', () => {
    const role = { user: 'we"ird', superuser: false, replication: false, rdsReplication: false };
    expect(replicationRoleFinding(role, 'self-hosted')).toMatchObject({ severity: 'block', fix: { sql: 'ALTER ROLE "we""ird" WITH REPLICATION;' } });
    expect(replicationRoleFinding(role, 'aurora')).toMatchObject({ severity: 'block', fix: { sql: 'GRANT rds_replication TO "we""ird";' } });
    expect(replicationRoleFinding({ ...role, rdsReplication: true }, 'rds').severity).toBe('ok');
    expect(replicationRoleFinding({ ...role, replication: true }, 'cloudsql').severity).toBe('ok');
  });

  it('TLS: a remote connection without a verified certificate warns; loopback is fine', () => {
    expect(sslFinding({ host: 'db.example.com', encrypted: false, version: null, verified: false }, 'self-hosted')).toMatchObject({ severity: 'warn', title: 'the connection to db.example.com is not encrypted' });
    expect(sslFinding({ host: 'db.example.com', encrypted: true, version: 'TLSv1.3', verified: false }, 'rds')).toMatchObject({ severity: 'warn', fix: { note: expect.stringContaining('global-bundle.pem') } });
    expect(sslFinding({ host: 'db.example.com', encrypted: true, version: 'TLSv1.3', verified: true }, 'rds').severity).toBe('ok');
    expect(sslFinding({ host: '127.0.0.1', encrypted: false, version: null, verified: false }, 'self-hosted').severity).toBe('ok');
  });
});

describe('doctor: tables and publication', () => {
  it('privileges: USAGE on the schema and SELECT on the table, as GRANTs', () => {
    const findings = tableFindings({ ...table, canSelect: false, schemaUsage: false }, { ok: true, keyColumns: ['id'] }, { user: 'app', tableKeys: new Map() });
    expect(findings.find((f) => f.id === 'table.privileges:public.orders')).toMatchObject({
      severity: 'block',
      fix: { sql: 'GRANT USAGE ON SCHEMA "public" TO "app";\nGRANT SELECT ON "public"."orders" TO "app";' },
    });
  });

  it('SELECT is what the bootstrap reads the table with: the finding says so', () => {
    const ok = tableFindings(table, { ok: true, keyColumns: ['id'] }, { user: 'app', tableKeys: new Map() })[0];
    expect(ok).toMatchObject({ id: 'table.privileges:public.orders', severity: 'ok', title: 'app may read public.orders, as its bootstrap does', detail: expect.stringContaining('The bootstrap reads') });
    const [blocked] = tableFindings({ ...table, canSelect: false }, { ok: true, keyColumns: ['id'] }, { user: 'app', tableKeys: new Map() });
    expect(blocked).toMatchObject({ severity: 'block', title: 'app may not read public.orders, so its bootstrap would fail', fix: { sql: 'GRANT SELECT ON "public"."orders" TO "app";' } });
  });

  it('REPLICA IDENTITY NOTHING: back to DEFAULT when there is a primary key', () => {
    const verdict = { ok: false as const, code: 'REPLICA_IDENTITY' as const, message: 'public.orders has REPLICA IDENTITY NOTHING' };
    const [, key] = tableFindings({ ...table, replident: 'n' }, verdict, { user: 'app', tableKeys: new Map() });
    expect(key).toMatchObject({ id: 'table.key:public.orders', severity: 'block', fix: { sql: 'ALTER TABLE "public"."orders" REPLICA IDENTITY DEFAULT;' } });
  });

  it('a missing publication blocks when the streamer could not create it, and says why', () => {
    const [f] = publicationFindings({ ...publication, exists: false, owner: null }, pubContext);
    expect(f).toMatchObject({ severity: 'block', fix: { sql: 'CREATE PUBLICATION "pgrelay_default" FOR TABLE "public"."orders" WITH (publish_via_partition_root = true);' } });
    expect(f?.detail).toContain('app has no CREATE privilege on database app; app does not own public.orders');
    const [before13] = publicationFindings({ ...publication, exists: false }, { ...pubContext, serverVersion: 120000, managePublication: false });
    expect(before13?.fix?.sql).toBe('CREATE PUBLICATION "pgrelay_default" FOR TABLE "public"."orders";');
    expect(before13?.detail).toContain('managePublication is false');
    const [allowed] = publicationFindings({ ...publication, exists: false }, { ...pubContext, canCreateInDatabase: true, tables: [{ ...table, isOwner: true }] });
    expect(allowed?.severity).toBe('ok');
  });

  it('an existing publication: missing actions block, partitions under their own names block when it cannot be altered', () => {
    const partitioned = { ...table, relkind: 'p' };
    const findings = publicationFindings({ ...publication, viaRoot: false, publish: { insert: true, update: false, delete: false, truncate: true } }, { ...pubContext, tables: [partitioned] });
    expect(findings.find((f) => f.id === 'publication.publish')).toMatchObject({ severity: 'block', fix: { sql: `ALTER PUBLICATION "pgrelay_default" SET (publish = 'insert, update, delete, truncate');` } });
    expect(findings.find((f) => f.id === 'publication.via_root')).toMatchObject({ severity: 'block', fix: { sql: 'ALTER PUBLICATION "pgrelay_default" SET (publish_via_partition_root = true);' } });
    expect(findings.find((f) => f.id === 'publication')?.detail).toContain('only admin (or a superuser) may alter it');
  });
});

describe('doctor: slots', () => {
  it('an invalidated slot blocks with drop-and-bootstrap advice; an abandoned foreign slot warns', () => {
    const findings = slotFindings(
      [
        { ...slot, active: false, walStatus: 'lost', lagBytes: null, retainedBytes: null, invalidationReason: 'wal_removed' },
        { ...slot, name: 'old_etl', active: false, retainedBytes: 3 * 1024 ** 3 },
        { ...slot, name: 'replica_1', slotType: 'physical', plugin: null, database: null },
      ],
      { slotName: 'pgrelay_default', database: 'app' },
    );
    expect(findings[0]).toMatchObject({ id: 'slot:pgrelay_default', severity: 'block', title: expect.stringContaining('invalidated (wal_removed)'), fix: { sql: "SELECT pg_drop_replication_slot('pgrelay_default');", note: expect.stringContaining('bootstrap every table again') } });
    expect(findings[1]).toMatchObject({ id: 'slot.other:old_etl', severity: 'warn', title: expect.stringContaining('inactive and retains 3.0 GiB of WAL') });
    expect(findings[2]).toMatchObject({ id: 'slot.other:replica_1', severity: 'ok' });
  });

  it('pgrelay\'s slot: lag and retained WAL in the title; wrong plugin or database blocks', () => {
    expect(slotFindings([slot], { slotName: 'pgrelay_default', database: 'app' })[0]?.title).toBe('slot pgrelay_default: active, 2.0 KiB behind, retains 4.0 KiB of WAL, wal_status reserved');
    expect(slotFindings([{ ...slot, plugin: 'wal2json' }], { slotName: 'pgrelay_default', database: 'app' })[0]?.severity).toBe('block');
    expect(slotFindings([slot], { slotName: 'pgrelay_default', database: 'other' })[0]?.severity).toBe('block');
  });
});

describe('doctor: report', () => {
  const findings: Finding[] = [
    { id: 'a', severity: 'ok', title: 'fine', detail: 'd' },
    { id: 'b', severity: 'block', title: 'broken', detail: 'why', fix: { sql: 'SELECT 1;\nSELECT 2;', note: 'as admin' } },
  ];

  it('exit code: 1 when something blocks, else 2 when a check could not run, else 0', () => {
    expect(exitCodeOf(findings)).toBe(1);
    expect(exitCodeOf([{ id: 'c', severity: 'error', title: 'x', detail: '' }, { id: 'w', severity: 'warn', title: 'y', detail: '' }])).toBe(2);
    expect(exitCodeOf([{ id: 'w', severity: 'warn', title: 'y', detail: '' }])).toBe(0);
  });

  it('prints one line per finding with its fix indented below and a summary', () => {
    const report = { ready: false, platform: 'rds' as const, target: 'db:5432/app', user: 'app', serverVersion: '16.4', findings };
    expect(formatReport(report, { unicode: false })).toBe(
      [
        'pgrelay doctor: db:5432/app as app, Amazon RDS for PostgreSQL 16.4',
        '[ok]    fine',
        '[BLOCK] broken',
        '          why',
        '          fix:',
        '            SELECT 1;',
        '            SELECT 2;',
        '          as admin',
        'NOT READY: 1 blocking, 0 warnings, 1 ok',
        '',
      ].join('\n'),
    );
    expect(formatReport(report, { unicode: true })).toContain('\n✗ broken\n    why\n');
  });
});

describe('doctor: connection failures', () => {
  const to = { host: 'db.example.com', port: 5432, database: 'app', user: 'app' };
  // Doctor connects through ConnectionProvider.connect, whose ConnectError carries this sentence.
  const explain = (err: unknown) => explainConnectionFailure(err, to).message;

  it('one sentence naming the server and the likely fix', () => {
    expect(explain(Object.assign(new Error('password authentication failed for user "app"'), { code: '28P01' }))).toBe(
      "PostgreSQL at db.example.com:5432/app rejected the password of user app: check the credentials (or the secret's password after a rotation)",
    );
    expect(explain(Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }))).toMatch(/^the TLS certificate of db\.example\.com:5432 is not trusted .*--ca-bundle/);
    expect(explain(new Error('The server does not support SSL connections'))).toMatch(/^db\.example\.com:5432 does not accept TLS connections/);
    expect(explain(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toMatch(/closed the connection without answering like PostgreSQL/);
    // A host name that looks like a URL scheme is still printed as host:port/db.
    expect(explain(Object.assign(new Error('getaddrinfo ENOTFOUND db.example.com'), { code: 'ENOTFOUND' }))).toContain('db.example.com:5432/app');
  });
});

describe('doctor: the monitor\'s state schema', () => {
  const base = { schema: 'pgrelay', user: 'relay', exists: false, usable: false, tablesWritable: false, canCreateSchema: false };
  it('ready when it exists and is usable, or when the user may create it', () => {
    expect(stateSchemaFinding({ ...base, exists: true, usable: true })).toMatchObject({ id: 'state.schema', severity: 'ok' });
    expect(stateSchemaFinding({ ...base, exists: true, tablesWritable: true })).toMatchObject({ severity: 'ok' });
    expect(stateSchemaFinding({ ...base, canCreateSchema: true })).toMatchObject({ severity: 'ok', title: "the monitor can create pgrelay's state schema pgrelay" });
  });
  it('otherwise warns with the statement an administrator runs', () => {
    expect(stateSchemaFinding(base)).toMatchObject({ severity: 'warn', fix: { sql: 'CREATE SCHEMA "pgrelay" AUTHORIZATION "relay";' } });
    expect(stateSchemaFinding({ ...base, exists: true })).toMatchObject({ severity: 'warn', fix: { sql: expect.stringContaining('GRANT USAGE, CREATE ON SCHEMA "pgrelay" TO "relay";') } });
  });
});

describe('doctor: what the bootstrap needs beyond streaming', () => {
  it('EXECUTE on pg_logical_emit_message: ok when granted; else the GRANT naming the signature the server has', () => {
    const v16 = { signature: 'pg_logical_emit_message(boolean, text, text)', canExecute: false };
    expect(emitMessageFinding({ ...v16, canExecute: true }, 'relay', 'self-hosted')).toMatchObject({ id: 'role.emit_message', severity: 'ok', title: 'relay may call pg_logical_emit_message(boolean, text, text)' });
    const blocked = emitMessageFinding(v16, 'we"ird', 'self-hosted');
    expect(blocked).toMatchObject({
      severity: 'block',
      title: 'we"ird may not call pg_logical_emit_message(boolean, text, text), so every bootstrap fails',
      detail: expect.stringContaining('The bootstrap writes its marks into the WAL with it'),
      fix: { sql: 'GRANT EXECUTE ON FUNCTION pg_catalog.pg_logical_emit_message(boolean, text, text) TO "we""ird";', note: 'run as a superuser' },
    });
    // PostgreSQL 17 added the flush argument: the three-argument form no longer exists there.
    const v17 = emitMessageFinding({ signature: 'pg_logical_emit_message(boolean, text, text, boolean)', canExecute: false }, 'relay', 'rds');
    expect(v17.fix).toEqual({ sql: 'GRANT EXECUTE ON FUNCTION pg_catalog.pg_logical_emit_message(boolean, text, text, boolean) TO "relay";', note: 'run as the master user (a member of rds_superuser)' });
  });

  it('the bootstrap table: SELECT and UPDATE (and USAGE on its schema), granting only what is missing', () => {
    const all = { schema: 'pgrelay', user: 'relay', schemaUsage: true, canSelect: true, canUpdate: true };
    expect(bootstrapTableFinding(all)).toMatchObject({ id: 'state.bootstrap_table', severity: 'ok', title: 'relay may read and update the bootstrap requests in pgrelay.bootstrap' });
    expect(bootstrapTableFinding({ ...all, canUpdate: false })).toMatchObject({
      severity: 'block',
      title: 'as relay the streamer cannot carry out any bootstrap: no UPDATE on pgrelay.bootstrap',
      fix: { sql: 'GRANT UPDATE ON "pgrelay"."bootstrap" TO "relay";' },
    });
    expect(bootstrapTableFinding({ ...all, schemaUsage: false, canSelect: false, canUpdate: false }).fix?.sql).toBe('GRANT USAGE ON SCHEMA "pgrelay" TO "relay";\nGRANT SELECT, UPDATE ON "pgrelay"."bootstrap" TO "relay";');
  });
});
