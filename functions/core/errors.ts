/**
 * Coded errors: callers branch on `err.code`, never on message text.
 * Each family names the stage that raised it so a log line says where to look.
 */
export class PgRelayError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export type ConfigErrorCode = 'INVALID_CONFIG';
export class ConfigError extends PgRelayError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super('INVALID_CONFIG', `invalid pgrelay configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

export type DecodeErrorCode =
  | 'UNKNOWN_MESSAGE'
  | 'UNKNOWN_RELATION'
  | 'TRUNCATED_MESSAGE'
  | 'UNEXPECTED_TUPLE'
  | 'NO_KEY'
  | 'BAD_VALUE'
  | 'PROTOCOL';
export class DecodeError extends PgRelayError {
  declare readonly code: DecodeErrorCode;
  constructor(code: DecodeErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

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
export class SourceError extends PgRelayError {
  declare readonly code: SourceErrorCode;
  constructor(code: SourceErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export type DeliveryErrorCode = 'CHANGE_TOO_LARGE' | 'QUEUE_NOT_FIFO' | 'SEND_REJECTED';
export class DeliveryError extends PgRelayError {
  declare readonly code: DeliveryErrorCode;
  constructor(code: DeliveryErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A short, secret-free description of any thrown value for a log line. */
export function describeError(err: unknown): { code?: string; message: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? { code, message: err.message } : { message: err.message };
  }
  return { message: String(err) };
}
