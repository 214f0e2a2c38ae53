/**
 * A chunk's rows as `snapshot` ChangeEvents, written with the same value writers the decoder
 * uses (the text a SELECT returns under pgrelay's session settings is the text pgoutput sends).
 * Each row is written when it is read; only its position waits for the chunk's mark.
 */
import { DecodeError } from '#core/errors.ts';
import { fnv1a, mix32, tablePrefixHash } from '#core/partition.ts';
import { stringifyLossless } from '#core/values/lossless-json.ts';
import type { TypeRegistry, ValueWriter } from '#core/values/registry.ts';
import type { TableShape } from './chunk-reader.ts';

const JSON_OIDS = new Set([114, 3802]);

export interface SnapshotRow {
  /** The key object's JSON, as the decoder writes it for the same row: windows match on it. */
  keyJson: string;
  /** The key columns' text values, for the next chunk's bound or a re-read. */
  key: string[];
  partition: number;
  /** The event up to its position. */
  head: string;
}

export class SnapshotRowWriter {
  private readonly writers: ValueWriter[];
  private readonly prefixes: string[];
  private readonly jsonIndexes: number[];
  private readonly namesJson: string;
  private readonly hashPrefix: number;

  constructor(
    private readonly shape: TableShape,
    types: TypeRegistry,
    private readonly partitions: number,
    loadId: string,
  ) {
    this.writers = shape.columns.map((c) => types.writer(c.typeOid));
    this.prefixes = shape.columns.map((c) => `${stringifyLossless(c.name)}:`);
    this.jsonIndexes = shape.columns.flatMap((c, i) => (JSON_OIDS.has(types.baseOid(c.typeOid)) ? [i] : []));
    this.namesJson = `"schema":${stringifyLossless(shape.table.schema)},"table":${stringifyLossless(shape.table.table)}`;
    this.hashPrefix = tablePrefixHash(shape.ref);
    this.loadJson = `,"load":${stringifyLossless(loadId)}`;
  }

  private readonly loadJson: string;

  row(values: readonly (string | null)[]): SnapshotRow {
    const written: string[] = new Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      written[i] = v === null || v === undefined ? 'null' : this.write(i, v);
    }
    let keyJson = '{';
    const key: string[] = [];
    for (const i of this.shape.keyIndexes) {
      if (keyJson.length > 1) keyJson += ',';
      keyJson += (this.prefixes[i] as string) + (written[i] as string);
      key.push(values[i] as string);
    }
    keyJson += '}';
    let after = '{';
    for (let i = 0; i < written.length; i++) {
      if (i > 0) after += ',';
      after += (this.prefixes[i] as string) + (written[i] as string);
    }
    after += '}';
    let jsonNulls: string[] | undefined;
    for (const i of this.jsonIndexes) {
      const v = values[i];
      if (typeof v === 'string' && v.trim() === 'null') (jsonNulls ??= []).push(this.shape.columns[i]?.name as string);
    }
    const head =
      `{"v":1,"op":"snapshot",${this.namesJson},"key":${keyJson},"after":${after},"before":null` +
      (jsonNulls ? `,"jsonNulls":${stringifyLossless({ after: jsonNulls })}` : '') +
      this.loadJson;
    return { keyJson, key, partition: mix32(fnv1a(keyJson, this.hashPrefix)) % this.partitions, head };
  }

  /** The whole event, once the chunk's mark gave it a position. */
  static complete(row: SnapshotRow, lsnText: string, seq: number): string {
    return `${row.head},"position":{"commitLsn":"${lsnText}","seq":${seq}},"tx":null}`;
  }

  private write(i: number, text: string): string {
    try {
      return (this.writers[i] as ValueWriter)(text);
    } catch (err) {
      if (err instanceof DecodeError) throw new DecodeError(err.reason, `${this.shape.ref}.${this.shape.columns[i]?.name}: ${err.message}`, { cause: err });
      throw err;
    }
  }
}
