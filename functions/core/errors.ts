/**
 * Coded errors: callers branch on `err.code`, never on message text. Every error pgrelay raises
 * extends PgRelayError, whose code is stable and namespaced (`PGRELAY_NO_KEY`), so a log line or
 * a script can tell pgrelay's codes from PostgreSQL's SQLSTATEs, Node's errnos and AWS's error
 * names, which arrive in `code` fields too. Each family names the stage that raised it.
 */
export const CODE_PREFIX = 'PGRELAY_';

/** A pgrelay error code: `PGRELAY_` and the family's own name for what happened. */
export type PgRelayCode<C extends string = string> = `PGRELAY_${C}`;

export class PgRelayError<C extends string = string> extends Error {
  readonly code: PgRelayCode<C>;
  /** `code` is the family's own name (`NO_KEY`); the prefix is added here, once. */
  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = `${CODE_PREFIX}${code}`;
    this.name = new.target.name;
  }

  /** The family's own name of the code (`NO_KEY`), to raise it again with more context or to branch on within the family. */
  get reason(): C {
    return this.code.slice(CODE_PREFIX.length) as C;
  }
}

/** True when `err` carries pgrelay's code `PGRELAY_<code>`. */
export function hasCode(err: unknown, code: string): boolean {
  return (err as { code?: unknown })?.code === `${CODE_PREFIX}${code}`;
}

export type ConfigErrorCode = 'INVALID_CONFIG';
export class ConfigError extends PgRelayError<ConfigErrorCode> {
  readonly problems: string[];
  constructor(problems: string[]) {
    super('INVALID_CONFIG', `invalid pgrelay configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

export type DecodeErrorCode = 'UNKNOWN_MESSAGE' | 'UNKNOWN_RELATION' | 'TRUNCATED_MESSAGE' | 'UNEXPECTED_TUPLE' | 'NO_KEY' | 'BAD_VALUE' | 'PROTOCOL';
/** The stream held something the decoder cannot turn into a change: the streamer stops, confirming nothing past it. */
export class DecodeError extends PgRelayError<DecodeErrorCode> {}

export type SourceErrorCode =
  | 'TABLE_NOT_FOUND'
  | 'NO_USABLE_KEY'
  | 'REPLICA_IDENTITY'
  | 'PARTITION_IDENTITY'
  | 'WAL_LEVEL'
  | 'SERVER_VERSION'
  | 'SLOT_PLUGIN'
  | 'SLOT_DATABASE'
  | 'SLOT_LOST'
  | 'PUBLICATION'
  | 'PRIVILEGE';
/** The source database is not ready for streaming (settings, tables, keys, slot, publication). */
export class SourceError extends PgRelayError<SourceErrorCode> {}

export type DeliveryErrorCode = 'CHANGE_TOO_LARGE' | 'QUEUE_NOT_FIFO' | 'SEND_REJECTED';
/** A change SQS can never accept. */
export class DeliveryError extends PgRelayError<DeliveryErrorCode> {}

/** A short, secret-free description of any thrown value for a log line. */
export function describeError(err: unknown): { code?: string; message: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? { code, message: err.message } : { message: err.message };
  }
  return { message: String(err) };
}
