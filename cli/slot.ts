/**
 * `pgrelay slot drop [--yes] [--force]`: drop the replication slot, after confirmation; never
 * another database's, and with --force ending only its holder's session.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { forgetSlot, readSlotWatch, stateSchemaReadable } from '#shared/source-state.ts';
import { readSlot } from '#streamer/source.ts';
import { OPERATOR_USAGE, parseOperatorArgs } from './args.ts';
import { OperatorError, processIo, runCommand, type OperatorIo } from './operator.ts';

const SLOT_USAGE = `usage: pgrelay slot drop [options]
Drops pgrelay's replication slot (after asking, unless --yes), so PostgreSQL stops keeping WAL
for it; the next streamer start creates a new slot, and what was committed in between is not
streamed. Never drops a slot of another database.
options:
  --force                   end the session holding the slot (a running streamer) and drop it anyway
${OPERATOR_USAGE}`;

/** How long `--force` keeps ending the holder's session while the holder reconnects. */
const FORCE_DROP_TIMEOUT_MS = 10_000;

export async function slotCommand(argv: string[], io: OperatorIo = processIo()): Promise<number> {
  // --force belongs to `slot drop` alone, so it is taken out before the shared parser sees it.
  const force = argv.includes('--force');
  const rest = argv.filter((a) => a !== '--force');
  return runCommand('slot', SLOT_USAGE, argv, io, async (ctx) => {
    const target = parseOperatorArgs(rest, io.env);
    if (target.positionals.length !== 1 || target.positionals[0] !== 'drop') {
      throw new OperatorError('USAGE', `unknown slot command "${target.positionals.join(' ')}": the only one is pgrelay slot drop [--slot NAME] [--yes] [--force]`);
    }
    const name = target.slotName;
    return ctx.withDatabase(target.connections, async (client) => {
      const where = ctx.where as string;
      const db = (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db;
      const slot = await readSlot(client, name);
      const remembered = (await stateSchemaReadable(client, target.stateSchema)) && (await readSlotWatch(client, target.stateSchema, name)) !== undefined;
      if (slot === undefined && remembered) {
        // Dropped by someone after the monitor saw it: the streamer refuses to create it again
        // until an operator accepts the gap, which is what this does.
        await forgetSlot(client, target.stateSchema, name);
        const message = `replication slot ${name} was already gone from ${where}; pgrelay has forgotten it, so the streamer creates a new one at its next start. Changes committed while it was missing are not streamed: bootstrap the tables to re-read them`;
        if (target.json) io.out(`${JSON.stringify({ target: where, slot: name, dropped: false, forgotten: true, message })}\n`);
        else io.out(`${message}\n`);
        return 0;
      }
      if (slot === undefined) return ctx.fail(1, `replication slot ${name} does not exist on ${where}, so there is nothing to drop; check --slot (or slotName in the config)`);
      // pg_drop_replication_slot works across the cluster: never drop another database's slot.
      if (slot.database !== db) {
        const owner = slot.database === null ? 'is a physical slot' : `belongs to database ${slot.database}`;
        return ctx.fail(2, `replication slot ${name} ${owner}, not ${db}: nothing was dropped${slot.database !== null ? `; connect to ${slot.database} to drop it there` : ''}`);
      }
      if (slot.active && !force) {
        return ctx.fail(2, `replication slot ${name} is in use by process ${slot.activePid ?? '?'} (a streamer is connected): nothing was dropped; stop the streamer first, or pass --force to end that session and drop the slot`);
      }
      if (!target.yes) {
        if (io.ask === undefined) return ctx.fail(2, `refusing to drop replication slot ${name} without confirmation: stdin is not a terminal, so pass --yes`);
        const answer = await io.ask(
          `Drop replication slot ${name} on ${where}? PostgreSQL will stop retaining WAL for it and pgrelay will need a bootstrap to resume. Type the slot name to confirm: `,
        );
        if (answer.trim() !== name) return ctx.fail(2, `the answer did not match ${name}: nothing was dropped`);
      }
      const outcome = await dropSlot(client, name, force);
      if (outcome.result === 'gone') return ctx.fail(1, `replication slot ${name} disappeared before it could be dropped (someone else dropped it)`);
      if (outcome.result === 'active') {
        return ctx.fail(
          2,
          force
            ? `replication slot ${name} was taken again by process ${outcome.pid ?? '?'} each time its session was ended, for ${FORCE_DROP_TIMEOUT_MS / 1000} s: stop the streamer, then drop the slot`
            : `replication slot ${name} was taken by process ${outcome.pid ?? '?'} meanwhile: nothing was dropped; stop the streamer first, or pass --force`,
        );
      }
      if (remembered) await forgetSlot(client, target.stateSchema, name);
      if (target.json) io.out(`${JSON.stringify({ target: where, slot: name, dropped: true, terminatedPids: outcome.terminated })}\n`);
      else {
        const ended = outcome.terminated.length > 0 ? ` after ending the session of process ${outcome.terminated.join(', ')}` : '';
        io.out(`dropped replication slot ${name} on ${where}${ended}; PostgreSQL no longer retains WAL for it, and pgrelay needs a bootstrap of its tables to resume without gaps\n`);
      }
      return 0;
    });
  });
}

type DropOutcome = { result: 'dropped'; terminated: number[] } | { result: 'gone' } | { result: 'active'; pid: number | null };

async function dropSlot(client: pg.Client, name: string, force: boolean): Promise<DropOutcome> {
  const terminated: number[] = [];
  const deadline = Date.now() + FORCE_DROP_TIMEOUT_MS;
  for (;;) {
    if (force) {
      // The slot is chosen in a materialized CTE and only its holder is ended in the outer
      // query: PostgreSQL orders WHERE conditions as it likes, and with pg_terminate_backend
      // among them it ran before the slot-name test and ended every slot holder on the server.
      const { rows } = await client.query<{ pid: number }>(
        `WITH target AS MATERIALIZED (
           SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database() AND active_pid IS NOT NULL
         )
         SELECT active_pid AS pid FROM target WHERE pg_terminate_backend(active_pid)`,
        [name],
      );
      for (const r of rows) if (!terminated.includes(r.pid)) terminated.push(r.pid);
    }
    try {
      // The database check and the drop in one statement: no other database's slot of that name can slip in.
      const { rowCount } = await client.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()', [name]);
      return rowCount === 0 ? { result: 'gone' } : { result: 'dropped', terminated };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '42704') return { result: 'gone' };
      if (code !== '55006') throw err;
      // 55006: still active. A terminated walsender lets go of the slot a moment after it exits,
      // and a streamer reconnects on its own: keep ending it until the drop wins or time is up.
      if (!force || Date.now() >= deadline) {
        const pid = (await readSlot(client, name))?.activePid ?? null;
        return { result: 'active', pid };
      }
      await delay(50);
    }
  }
}

