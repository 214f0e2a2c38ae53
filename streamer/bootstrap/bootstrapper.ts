/**
 * The streamer's bootstrap: it looks for load requests in the state schema (the monitor and
 * `pgrelay bootstrap` write them), runs up to `bootstrap.concurrency` table loads at once
 * (table-load.ts), and lends them the replication session of the moment (a reconnect gives them
 * the next one). Requests for tables the streamer does not stream end `failed`, naming why.
 */
import type pg from 'pg';
import type { StreamerConfig } from '#core/config.ts';
import { PgRelayError, describeError } from '#core/errors.ts';
import type { TypeRegistry } from '#core/values/registry.ts';
import { failBootstrapRequest, finishBootstrap, readOpenBootstraps, type BootstrapRequest } from '#shared/bootstrap-state.ts';
import type { ConnectionProvider } from '#shared/connection.ts';
import { stateNames } from '#shared/source-state.ts';
import type { TableInfo } from '../decoder.ts';
import type { Logger } from '../log.ts';
import type { BootstrapHost } from './host.ts';
import { TableLoad } from './table-load.ts';

export interface BootstrapperDeps {
  config: StreamerConfig;
  log: Logger;
  connections: ConnectionProvider;
  tables: ReadonlyMap<string, TableInfo>;
  serverVersion: number;
  types(): TypeRegistry;
  loadTypes(oids: number[]): Promise<void>;
}

export class Bootstrapper {
  private current: BootstrapHost | undefined;
  private waiting: { resolve: (host: BootstrapHost) => void; reject: (err: Error) => void }[] = [];
  private readonly loads = new Map<string, TableLoad>();
  private stopped = false;
  private readonly sleepers = new Set<() => void>();
  private state: pg.Client | undefined;

  constructor(private readonly deps: BootstrapperDeps) {}

  /** Tables being loaded now. */
  get active(): string[] {
    return [...this.loads.keys()];
  }

  /** A session started: the loads go on in it. */
  attach(host: BootstrapHost): void {
    this.current = host;
    for (const w of this.waiting.splice(0)) w.resolve(host);
    host.ended.then(() => {
      if (this.current === host) this.current = undefined;
    });
  }

  /** Resolves the session loads run in (the next one, while there is none). */
  host(): Promise<BootstrapHost> {
    if (this.current !== undefined) return Promise.resolve(this.current);
    if (this.stopped) return Promise.reject(new PgRelayError('STOPPING', 'the streamer is stopping'));
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Looks for requests until stopped; never rejects (a failing look is logged and retried). */
  async run(): Promise<void> {
    const { config, log } = this.deps;
    let failures = 0;
    while (!this.stopped) {
      try {
        await this.poll();
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 10 === 0) log.warn('cannot read bootstrap requests; trying again', { error: describeError(err), attempt: failures });
        await this.state?.end().catch(() => undefined);
        this.state = undefined;
      }
      await this.pause(config.bootstrap.pollIntervalMs);
    }
    await this.state?.end().catch(() => undefined);
  }

  stop(): void {
    this.stopped = true;
    for (const wake of [...this.sleepers]) wake();
    for (const w of this.waiting.splice(0)) w.reject(new PgRelayError('STOPPING', 'the streamer is stopping'));
  }

  private async poll(): Promise<void> {
    const { config, log } = this.deps;
    this.state ??= await this.deps.connections.connect({ applicationName: 'pgrelay-bootstrap' });
    const state = this.state;
    // No state schema yet (the monitor makes it): nothing was requested.
    const { rows } = await state.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [`${stateNames(config.stateSchema).schema}.bootstrap`]);
    if (!rows[0]?.exists) return;
    for (const request of await readOpenBootstraps(state, config.stateSchema, config.slotName)) {
      if (this.loads.has(request.table)) continue;
      if (this.deps.serverVersion < 140000) {
        // pgoutput delivers logical decoding messages from PostgreSQL 14: the chunk marks could never arrive.
        const why = `a bootstrap needs PostgreSQL 14 or later (its chunks are marked in the stream by logical decoding messages); this server is ${Math.floor(this.deps.serverVersion / 10000)}`;
        if (request.state === 'requested') await failBootstrapRequest(state, config.stateSchema, config.slotName, request.table, why);
        else if (request.loadId !== null) await finishBootstrap(state, config.stateSchema, config.slotName, request.table, { loadId: request.loadId, state: 'failed', detail: why });
        continue;
      }
      const info = this.deps.tables.get(request.table);
      if (info === undefined) {
        const why = `${request.table} is not one of the streamer's tables (add it to tables, or drop the request)`;
        if (request.state === 'requested') await failBootstrapRequest(state, config.stateSchema, config.slotName, request.table, why);
        // A load under way for a table taken out of the config ends too; its consumers saw no completion, so they sweep nothing.
        else if (request.loadId !== null) await finishBootstrap(state, config.stateSchema, config.slotName, request.table, { loadId: request.loadId, state: 'failed', detail: why });
        continue;
      }
      if (this.loads.size >= config.bootstrap.concurrency) break;
      log.info('bootstrap request taken', { table: request.table, reason: request.reason, state: request.state });
      this.start(request, info);
    }
  }

  private start(request: BootstrapRequest, info: TableInfo): void {
    const { config, log } = this.deps;
    const go = async () => {
      // Each load has its own two connections: one reads the table, one records its progress (a
      // client runs one query at a time, and the poll's connection is dropped when a poll fails).
      const reader = await this.deps.connections.connect({ applicationName: 'pgrelay-bootstrap-read' });
      const state = await this.deps.connections.connect({ applicationName: 'pgrelay-bootstrap' }).catch(async (err: unknown) => {
        await reader.end().catch(() => undefined);
        throw err;
      });
      try {
        const load = new TableLoad(request, {
          config,
          log,
          types: this.deps.types(),
          serverVersion: this.deps.serverVersion,
          keyColumns: info.keyColumns,
          reader,
          state,
          host: () => this.host(),
          loadTypes: (oids) => this.deps.loadTypes(oids),
          stillWanted: async (loadId) => {
            const { rows } = await state.query<{ ok: boolean }>(
              `SELECT EXISTS (SELECT 1 FROM ${stateNames(config.stateSchema).bootstrap} WHERE slot_name = $1 AND table_name = $2 AND load_id = $3 AND state = 'running') AS ok`,
              [config.slotName, request.table, loadId],
            );
            return rows[0]?.ok === true;
          },
          pause: (ms) => this.pause(ms),
          stopping: () => this.stopped,
        });
        this.loads.set(request.table, load);
        await load.run();
      } finally {
        await reader.end().catch(() => undefined);
        await state.end().catch(() => undefined);
      }
    };
    // Reserve the slot at once, so one poll does not start a table twice.
    this.loads.set(request.table, undefined as unknown as TableLoad);
    go()
      .catch((err: unknown) => log.error('bootstrap load stopped on an error; the request is taken up again', { table: request.table, error: describeError(err) }))
      .finally(() => this.loads.delete(request.table));
  }

  /** Resolves after `ms`, or at once when stopped. */
  private pause(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }
}
