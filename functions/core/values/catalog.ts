/**
 * The pg_type side of value conversion: PgType (one catalog row), TYPE_CATALOG_SQL and
 * typeFromCatalogRow that load the catalog, and PG_OID, the built-in type OIDs that
 * converters are chosen by.
 */
import { DecodeError } from '../errors.ts';
import { isDigits } from './scalars.ts';

/** One row of pg_type (plus pg_range), as loaded once by the streamer. */
export interface PgType {
  oid: number;
  name: string;
  /** pg_type.typtype: b base, c composite, d domain, e enum, p pseudo, r range, m multirange. */
  kind: string;
  /** pg_type.typcategory ('A' for arrays). */
  category: string;
  /** pg_type.typelem, 0 if none. */
  elemOid: number;
  /** pg_type.typbasetype for domains, 0 otherwise. */
  baseOid: number;
  /** pg_range.rngsubtype for a range, 0 otherwise. */
  rangeSubtypeOid: number;
  /** For a multirange: its range type's OID, 0 otherwise. */
  multirangeRangeOid: number;
  /** pg_type.typdelim: separates array elements (',' except ';' for box). */
  delimiter: string;
}

/**
 * Every type of the connected database, built-in and user-defined. Multiranges are matched
 * through to_jsonb() so the query also runs on PostgreSQL 13 and older, whose pg_range has
 * no rngmultitypid column (there, no row matches and no type is a multirange).
 */
export const TYPE_CATALOG_SQL = `SELECT t.oid AS oid,
       t.typname AS name,
       t.typtype AS kind,
       t.typcategory AS category,
       t.typelem AS elem_oid,
       t.typbasetype AS base_oid,
       COALESCE(r.rngsubtype, 0) AS range_subtype_oid,
       COALESCE(mr.rngtypid, 0) AS multirange_range_oid,
       t.typdelim AS delimiter
  FROM pg_catalog.pg_type t
  LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
  LEFT JOIN pg_catalog.pg_range mr
    ON t.typtype = 'm' AND (to_jsonb(mr) ->> 'rngmultitypid')::oid = t.oid`;

/** Map one row of TYPE_CATALOG_SQL (OIDs as numbers, decimal strings or bigints) to a PgType. */
export function typeFromCatalogRow(row: Record<string, unknown>): PgType {
  return {
    oid: catalogOid(row, 'oid'),
    name: catalogText(row, 'name'),
    kind: catalogText(row, 'kind'),
    category: catalogText(row, 'category'),
    elemOid: catalogOid(row, 'elem_oid'),
    baseOid: catalogOid(row, 'base_oid'),
    rangeSubtypeOid: catalogOid(row, 'range_subtype_oid'),
    multirangeRangeOid: catalogOid(row, 'multirange_range_oid'),
    delimiter: catalogText(row, 'delimiter'),
  };
}

function catalogOid(row: Record<string, unknown>, column: string): number {
  const value = row[column];
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'bigint' && value >= 0n && value <= 0xffffffffn) return Number(value);
  if (typeof value === 'string' && value.length > 0 && value.length <= 10 && isDigits(value, 0, value.length)) {
    return Number(value);
  }
  throw new DecodeError('BAD_VALUE', `type catalog row: column ${column} is not an OID (${String(value)})`);
}

function catalogText(row: Record<string, unknown>, column: string): string {
  const value = row[column];
  if (typeof value === 'string') return value;
  throw new DecodeError('BAD_VALUE', `type catalog row: column ${column} is not text (${String(value)})`);
}

/** OIDs of the built-in types we dispatch on; fixed by PostgreSQL since their introduction. */
export const PG_OID = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int2vector: 22,
  int4: 23,
  text: 25,
  oid: 26,
  xid: 28,
  cid: 29,
  oidvector: 30,
  json: 114,
  xml: 142,
  float4: 700,
  float8: 701,
  money: 790,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  bit: 1560,
  varbit: 1562,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
  jsonpath: 4072,
  xid8: 5069,
} as const;
