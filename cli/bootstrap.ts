/** `pgrelay bootstrap SCHEMA.TABLE`: request a table's initial load. */
import { parseTableName, tableKey } from '#core/identifiers.ts';
import { OPERATOR_USAGE, parseOperatorArgs } from './args.ts';
import { OperatorError, processIo, runCommand, type OperatorIo } from './operator.ts';

const BOOTSTRAP_USAGE = `usage: pgrelay bootstrap SCHEMA.TABLE\n${OPERATOR_USAGE}`;

export async function bootstrapCommand(argv: string[], io: OperatorIo = processIo()): Promise<number> {
  return runCommand('bootstrap', BOOTSTRAP_USAGE, argv, io, async (ctx) => {
    const target = parseOperatorArgs(argv, io.env);
    const [name, ...extra] = target.positionals;
    if (name === undefined || extra.length > 0) throw new OperatorError('USAGE', 'name one table to bootstrap: pgrelay bootstrap schema.table');
    const table = parseTableName(name);
    if (typeof table === 'string') throw new OperatorError('USAGE', table);
    const relkind = await ctx.withDatabase(target.connections, async (client) => {
      const { rows } = await client.query<{ relkind: string }>(
        'SELECT c.relkind::text AS relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2',
        [table.schema, table.table],
      );
      return rows[0]?.relkind;
    });
    const key = tableKey(table);
    if (relkind === undefined) {
      return ctx.fail(1, `table ${key} does not exist in ${ctx.where}: check the name (names are case-sensitive; quote mixed-case names: "Schema"."Table")`);
    }
    if (relkind !== 'r' && relkind !== 'p') {
      return ctx.fail(1, `${key} is not a table (relkind '${relkind}'): only tables and partitioned tables can be bootstrapped`);
    }
    // The request has nowhere to go until the streamer can bootstrap: say so, record nothing.
    return ctx.fail(2, `table ${key} exists, but bootstrap is not available in this pgrelay release (it arrives in a later one); nothing was requested`, 'PGRELAY_NOT_AVAILABLE');
  });
}

