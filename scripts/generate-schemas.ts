/**
 * Publishes the contracts in functions/core/change-event.ts as JSON Schema (draft 2020-12),
 * one file per message shape under schemas/. The zod schemas stay the single definition;
 * `npm run schemas` rewrites the files and test/unit/schemas.test.ts fails when they drift.
 *
 * The schemas describe zod's *input* side: like `schema.parse`, they accept properties they
 * do not name (zod strips them), so a consumer validating v1 keeps working when a later
 * release adds an optional field. The output side would say `additionalProperties: false`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import {
  changeBatch,
  changeEvent,
  graphNodeEvent,
  graphNodeEventRef,
  jsonValue,
  payloadRef,
  row,
} from '#core/change-event.ts';

export const SCHEMA_BASE_URL = 'https://pgrelay.dev/schemas/';

interface Published {
  file: string;
  title: string;
  description: string;
  schema: z.ZodType;
}

const published: Published[] = [
  {
    file: 'change-event.v1.json',
    title: 'pgrelay ChangeEvent v1',
    description: 'One committed row change (or truncate, or bootstrap read) of a PostgreSQL table.',
    schema: changeEvent,
  },
  {
    file: 'change-batch.v1.json',
    title: 'pgrelay ChangeBatch v1',
    description: 'The body of one message on the changes queue: changes of one partition, in commit order.',
    schema: changeBatch,
  },
  {
    file: 'graph-node-event.v1.json',
    title: 'pgrelay GraphNodeEvent v1',
    description: 'A node change as subscribers receive it: the EventBridge detail, or a nodes-queue message body.',
    schema: graphNodeEvent,
  },
  {
    file: 'graph-node-event-ref.v1.json',
    title: 'pgrelay GraphNodeEventRef v1',
    description: 'A GraphNodeEvent too large for its channel: the routing fields, and where the full event is stored.',
    schema: graphNodeEventRef,
  },
  {
    file: 'payload-ref.v1.json',
    title: 'pgrelay PayloadRef v1',
    description: 'Where a payload too large for its channel was stored in S3 (claim check).',
    schema: payloadRef,
  },
];

/** Names for the shared parts, so the files read `#/$defs/Row` instead of `#/$defs/__schema0`. */
const names = z.registry<{ id: string }>();
names.add(jsonValue, { id: 'JsonValue' });
names.add(row, { id: 'Row' });

/** Every schema file: name → its text (pretty-printed, trailing newline). */
export function renderSchemas(): Map<string, string> {
  const files = new Map<string, string>();
  for (const p of published) {
    const { $schema, ...body } = z.toJSONSchema(p.schema, { io: 'input', metadata: names, unrepresentable: 'throw' });
    // Identity first, so a reader sees what the file is before how it is shaped.
    const document = { $schema, $id: SCHEMA_BASE_URL + p.file, title: p.title, description: p.description, ...body };
    files.set(p.file, `${JSON.stringify(document, null, 2)}\n`);
  }
  return files;
}

export const SCHEMAS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'schemas');

function main(): void {
  mkdirSync(SCHEMAS_DIR, { recursive: true });
  for (const [file, text] of renderSchemas()) {
    writeFileSync(join(SCHEMAS_DIR, file), text);
    console.log(`wrote schemas/${file}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
