/**
 * pgoutput text → lossless JSON values (the README's type table is the table of every type).
 * TypeRegistry holds the database's types and builds, once per type OID, the converter
 * (text → LosslessValue) and the writer (text → JSON text) that the decoder calls per value:
 * built-ins from builtinConverters, arrays, domains, ranges and multiranges composed through
 * the catalog, anything else its text unchanged.
 */
import { PG_OID, type PgType } from './catalog.ts';
import { dateTimeConverter, timeConverter, timetzConverter } from './datetime.ts';
import { quote, stringifyLossless } from './lossless-json.ts';
import {
  bigIntConverter,
  boolConverter,
  byteaConverter,
  floatConverter,
  identity,
  intervalConverter,
  jsonConverter,
  numericConverter,
  smallIntConverter,
  type ValueConverter,
} from './scalars.ts';
import { arrayConverter, jsonElementConverter, multirangeConverter, rangeConverter } from './structures.ts';

/**
 * text → the value's JSON text, what `stringifyLossless(converter(text))` gives, built per
 * type so the hot types skip the intermediate value: the decoder writes events straight
 * from these fragments.
 */
export type ValueWriter = (text: string) => string;

function builtinConverters(): Map<number, ValueConverter> {
  const map = new Map<number, ValueConverter>([
    [PG_OID.bool, boolConverter],
    [PG_OID.bytea, byteaConverter],
    [PG_OID.int2, smallIntConverter('int2')],
    [PG_OID.int4, smallIntConverter('int4')],
    [PG_OID.oid, smallIntConverter('oid')],
    [PG_OID.xid, smallIntConverter('xid')],
    [PG_OID.cid, smallIntConverter('cid')],
    [PG_OID.int8, bigIntConverter('int8')],
    [PG_OID.xid8, bigIntConverter('xid8')],
    [PG_OID.numeric, numericConverter],
    [PG_OID.float4, floatConverter('float4')],
    [PG_OID.float8, floatConverter('float8')],
    [PG_OID.json, jsonConverter('json')],
    [PG_OID.jsonb, jsonConverter('jsonb')],
    [PG_OID.date, dateTimeConverter('date')],
    [PG_OID.timestamp, dateTimeConverter('timestamp')],
    [PG_OID.timestamptz, dateTimeConverter('timestamptz')],
    [PG_OID.time, timeConverter],
    [PG_OID.timetz, timetzConverter],
    [PG_OID.interval, intervalConverter],
  ]);
  // Text as sent. int2vector and oidvector are listed because the catalog calls them arrays
  // (category 'A') although they print space-separated, not as '{…}'.
  for (const oid of [
    PG_OID.char,
    PG_OID.name,
    PG_OID.int2vector,
    PG_OID.text,
    PG_OID.oidvector,
    PG_OID.xml,
    PG_OID.money,
    PG_OID.bpchar,
    PG_OID.varchar,
    PG_OID.bit,
    PG_OID.varbit,
    PG_OID.uuid,
    PG_OID.jsonpath,
  ]) {
    map.set(oid, identity);
  }
  return map;
}

const BUILTIN_CONVERTERS = builtinConverters();

/**
 * The database's types and a converter per type OID, built on first use and cached.
 * Arrays, domains, enums, ranges and multiranges are resolved through the catalog; a type
 * the registry does not know converts to its text unchanged.
 */
export class TypeRegistry {
  readonly #types = new Map<number, PgType>();
  readonly #converters = new Map<number, ValueConverter>();
  readonly #writers = new Map<number, ValueWriter>();

  constructor(types: Iterable<PgType> = []) {
    this.add(types);
  }

  /** True for a type in the loaded catalog or a built-in we convert without it. */
  has(oid: number): boolean {
    return this.#types.has(oid) || BUILTIN_CONVERTERS.has(oid);
  }

  get(oid: number): PgType | undefined {
    return this.#types.get(oid);
  }

  /** The type a domain (or a domain over a domain) stands for; any other OID unchanged. */
  baseOid(oid: number): number {
    let type = this.#types.get(oid);
    while (type !== undefined && type.kind === 'd' && type.baseOid !== 0) {
      oid = type.baseOid;
      type = this.#types.get(oid);
    }
    return oid;
  }

  /**
   * Add or replace types (e.g. after a Relation message names a type created since the
   * catalog was loaded). Cached converters are dropped because an array or range built
   * earlier may have captured a text converter for a then-unknown type: fetch converters
   * again after calling this.
   */
  add(types: Iterable<PgType>): void {
    for (const type of types) this.#types.set(type.oid, type);
    this.#converters.clear();
    this.#writers.clear();
  }

  /**
   * Types that converting values of `oids` would look up but the registry does not know:
   * an array's element, a domain's base, a range's subtype, a multirange's range, followed
   * transitively through the types it does know. Unknown `oids` themselves are included.
   */
  missingDependencies(oids: Iterable<number>): number[] {
    const missing: number[] = [];
    const seen = new Set<number>();
    const visit = (oid: number): void => {
      if (oid === 0 || seen.has(oid)) return;
      seen.add(oid);
      const type = this.#types.get(oid);
      if (type === undefined) {
        if (!BUILTIN_CONVERTERS.has(oid)) missing.push(oid);
        return;
      }
      visit(type.elemOid);
      visit(type.baseOid);
      visit(type.rangeSubtypeOid);
      visit(type.multirangeRangeOid);
    };
    for (const oid of oids) visit(oid);
    return missing;
  }

  /** The JSON writer for a type (see ValueWriter); cached like converters. */
  writer(oid: number): ValueWriter {
    let writer = this.#writers.get(oid);
    if (writer === undefined) {
      writer = this.#buildWriter(oid);
      this.#writers.set(oid, writer);
    }
    return writer;
  }

  #buildWriter(oid: number): ValueWriter {
    const convert = this.converter(oid);
    if (convert === identity) return quote;
    switch (this.baseOid(oid)) {
      case PG_OID.bool:
        return (text) => (convert(text) ? 'true' : 'false');
      case PG_OID.int2:
      case PG_OID.int4:
      case PG_OID.oid:
      case PG_OID.xid:
      case PG_OID.cid:
        // The converter checks the syntax; PostgreSQL's integer text is already a JSON number.
        return (text) => {
          convert(text);
          return text;
        };
      case PG_OID.int8:
      case PG_OID.xid8:
      case PG_OID.numeric:
      case PG_OID.date:
      case PG_OID.time:
      case PG_OID.timetz:
      case PG_OID.timestamp:
      case PG_OID.timestamptz:
      case PG_OID.interval:
      case PG_OID.bytea:
        // Their JSON strings are ASCII letters, digits and punctuation: nothing to escape.
        return (text) => '"' + (convert(text) as string) + '"';
      default:
        return (text) => stringifyLossless(convert(text));
    }
  }

  converter(oid: number): ValueConverter {
    let converter = this.#converters.get(oid);
    if (converter === undefined) {
      converter = this.#build(oid);
      this.#converters.set(oid, converter);
    }
    return converter;
  }

  #build(oid: number): ValueConverter {
    const builtin = BUILTIN_CONVERTERS.get(oid);
    if (builtin !== undefined) return builtin;
    const type = this.#types.get(oid);
    if (type === undefined) return identity;
    switch (type.kind) {
      case 'd':
        return type.baseOid === 0 ? identity : this.converter(type.baseOid);
      case 'r':
        return rangeConverter(type.name, this.converter(type.rangeSubtypeOid));
      case 'm': {
        const range = this.#types.get(type.multirangeRangeOid);
        if (range === undefined) return identity;
        return multirangeConverter(type.name, this.converter(range.rangeSubtypeOid));
      }
      case 'b':
      case 'p':
        if (type.category === 'A' && type.elemOid !== 0) {
          // array_out separates elements with the element type's typdelim (';' for box).
          const delimiter = this.#types.get(type.elemOid)?.delimiter || type.delimiter || ',';
          const base = this.baseOid(type.elemOid);
          const element =
            base === PG_OID.json || base === PG_OID.jsonb ? jsonElementConverter(type.name) : this.converter(type.elemOid);
          return arrayConverter(type.name, element, delimiter.charCodeAt(0));
        }
        return identity;
      default:
        // 'e' enum and 'c' composite: the text as sent.
        return identity;
    }
  }
}
