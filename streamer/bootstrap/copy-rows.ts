/**
 * `COPY (SELECT …) TO STDOUT` on a node-postgres client, its rows kept as the bytes PostgreSQL
 * sent: one growing buffer per chunk and the offset where each row ends. A chunk waits for its
 * mark before its rows become events; held as bytes it costs the garbage collector nothing
 * (held as strings and arrays, a chunk outlived the young generation and most of a load's CPU
 * went to collecting it). A row is turned into its column texts only when it is emitted.
 *
 * COPY's text format is each type's output text (what pgoutput sends) with tab between columns,
 * `\N` for NULL, and backslash escapes for backslash, tab, newline, carriage return, backspace,
 * form feed and vertical tab (COPY TO writes no octal or hex escapes). UTF-8 never puts a
 * backslash byte inside a multibyte character, so a column is decoded first and unescaped after.
 */
import type pg from 'pg';
import { DecodeError } from '#core/errors.ts';

const TAB = 0x09;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const INITIAL_BYTES = 64 * 1024;

/**
 * Chunk buffers given back by emitted chunks, for the next chunks to grow into. A fresh
 * allocation of megabytes is paid in page faults on every chunk (measured: growing one from
 * 64 KiB to 4 MiB took 4 % of a load's CPU); a reused one is already mapped. Bounded in count
 * and size: the chunks waiting for their marks, of a few loads at once.
 */
const pool: Buffer[] = [];
const EMPTY = Buffer.alloc(0);
const POOL_MAX = 8;
const POOLED_MAX_BYTES = 16 * 1024 * 1024;

export class CopyRows {
  private buf = pool.pop() ?? Buffer.allocUnsafeSlow(INITIAL_BYTES);
  private used = 0;
  /** Offset of each row's newline: row i spans from the previous one's (+1) to its own. */
  private ends = new Uint32Array(1024);
  private n = 0;

  get count(): number {
    return this.n;
  }

  /** Bytes of row text received (PostgreSQL's text form, line ends included). */
  get bytes(): number {
    return this.used;
  }

  /** A CopyData message: PostgreSQL sends a row per message, but any split is read right. */
  push(data: Buffer): void {
    if (this.used + data.length > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < this.used + data.length) size *= 2;
      const grown = Buffer.allocUnsafeSlow(size);
      this.buf.copy(grown, 0, 0, this.used);
      this.buf = grown;
    }
    const from = this.used;
    data.copy(this.buf, from);
    this.used += data.length;
    for (let at = data.indexOf(NEWLINE); at >= 0; at = data.indexOf(NEWLINE, at + 1)) {
      if (this.n === this.ends.length) {
        const grown = new Uint32Array(this.ends.length * 2);
        grown.set(this.ends);
        this.ends = grown;
      }
      this.ends[this.n++] = from + at;
    }
  }

  /**
   * Gives the buffer back for later chunks; the rows are gone (count 0). Call when nothing will
   * read them again.
   */
  release(): void {
    const buf = this.buf;
    this.buf = EMPTY;
    this.used = 0;
    this.n = 0;
    if (buf !== EMPTY && pool.length < POOL_MAX && buf.length <= POOLED_MAX_BYTES) pool.push(buf);
  }

  /** The chunk's bytes (rows are read through `split` and `text`). */
  get buffer(): Buffer {
    return this.buf;
  }

  /**
   * Row `i`'s columns: where each starts and stops in `buffer`, and whether it holds an escape
   * (a NULL is the escaped `\N`), in one pass over the row's bytes. The arrays have a slot per
   * column; a row with fewer columns (COPY of the SELECT never sends one) leaves the rest NULL.
   */
  split(i: number, starts: Int32Array, stops: Int32Array, escaped: Uint8Array): void {
    const buf = this.buf;
    const columns = starts.length;
    const end = this.ends[i] as number;
    let at = i === 0 ? 0 : (this.ends[i - 1] as number) + 1;
    let c = 0;
    let slash = 0;
    for (let p = at; p < end; p++) {
      const b = buf[p];
      if (b === TAB && c < columns - 1) {
        starts[c] = at;
        stops[c] = p;
        escaped[c++] = slash;
        at = p + 1;
        slash = 0;
      } else if (b === BACKSLASH) slash = 1;
    }
    starts[c] = at;
    stops[c] = end;
    escaped[c++] = slash;
    if (c < columns) throw new DecodeError('BAD_VALUE', `a COPY row of ${c} columns where ${columns} were selected`);
  }

  /** The text of the bytes `start`..`stop` of a column `split` found (null for NULL). */
  text(start: number, stop: number, escaped: boolean): string | null {
    if (!escaped) return this.buf.toString('utf8', start, stop);
    if (this.isNull(start, stop, escaped)) return null;
    return unescapeCopy(this.buf.toString('utf8', start, stop));
  }

  /** Whether a column `split` found is NULL (`\\N`). */
  isNull(start: number, stop: number, escaped: boolean): boolean {
    return escaped && stop - start === 2 && this.buf[start + 1] === 0x4e /* N */;
  }

  /** Row `i`'s column texts (null for NULL), in the SELECT's column order. */
  values(i: number, columns: number): (string | null)[] {
    const starts = new Int32Array(columns);
    const stops = new Int32Array(columns);
    const escaped = new Uint8Array(columns);
    this.split(i, starts, stops, escaped);
    const out: (string | null)[] = new Array(columns);
    for (let c = 0; c < columns; c++) out[c] = this.text(starts[c] as number, stops[c] as number, escaped[c] === 1);
    return out;
  }

  /** The texts of the columns at `indexes` (the key) of row `i`. */
  pick(i: number, columns: number, indexes: readonly number[]): string[] {
    const all = this.values(i, columns);
    return indexes.map((k) => all[k] as string);
  }
}

const ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

/** COPY's text escapes undone. */
export function unescapeCopy(text: string): string {
  return text.replace(/\\(.)/gs, (_m, c: string) => ESCAPES[c] ?? c);
}

/**
 * Runs `sql` (a `COPY … TO STDOUT`) on `client` and collects its rows. The query is sent as a
 * simple Query (COPY takes no bind parameters: values must be literals in `sql`).
 */
export function copyRows(client: pg.Client, sql: string): Promise<CopyRows> {
  return new Promise((resolve, reject) => {
    const rows = new CopyRows();
    let failed: unknown;
    const submittable = {
      submit(connection: { query(text: string): void }): void {
        connection.query(sql);
      },
      handleCopyData(msg: { chunk: Buffer }): void {
        rows.push(msg.chunk);
      },
      handleCommandComplete(): void {},
      handleEmptyQuery(): void {},
      handleRowDescription(): void {
        failed ??= new Error(`not a COPY TO STDOUT: ${sql.slice(0, 80)}`);
      },
      handleDataRow(): void {},
      handleError(err: unknown): void {
        reject(err);
        failed = err;
      },
      handleReadyForQuery(): void {
        if (failed === undefined) resolve(rows);
        else reject(failed);
      },
    };
    client.query(submittable as unknown as pg.QueryConfig);
  });
}

/** A value as an SQL literal (E'' when it holds a backslash), for the COPY's WHERE clause. */
export function quoteLiteral(value: string): string {
  const quoted = value.replaceAll("'", "''");
  return value.includes('\\') ? `E'${quoted.replaceAll('\\', '\\\\')}'` : `'${quoted}'`;
}
