/**
 * A stand-in for Amazon EventBridge's PutEvents on loopback (there is no local emulator among
 * our dependencies). It speaks the wire protocol SDK v3 uses (AWS JSON 1.1: POST /,
 * `X-Amz-Target: AWSEvents.PutEvents`, a SigV4-signed request) and answers the way AWS does,
 * as recorded against the real service:
 *
 * - 0 or more than 10 entries: the whole call fails, 400 ValidationException.
 * - Total entry size at or over 256 KiB, counted as the user guide's "Calculating PutEvents event
 *   entry size" says (Time 14 bytes when present; Source, DetailType, Detail and each Resources
 *   item by their UTF-8 bytes; EventBusName is not counted): the whole call fails, 400
 *   ValidationException "Total size of the entries in the request is over the limit.".
 * - Per entry, HTTP 200 with the entry failed and counted in FailedEntryCount: a missing Source,
 *   DetailType or Detail is `InvalidArgument`; a Detail that is not a JSON object is
 *   `MalformedDetail`.
 * - An EventBusName naming no bus is *accepted* by AWS (an EventId, no failure) and the event
 *   goes nowhere. The fake answers the same, but records such events under `lost`, never under
 *   `events`, so a test that expects delivery fails.
 *
 * The size and count checks are written here independently of the code under test, so a packer
 * that overfills a call is rejected here as it would be by AWS.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** The request limit the fake enforces, as documented for PutEvents (256 KB, i.e. 262,144 bytes). */
export const FAKE_MAX_REQUEST_BYTES = 256 * 1024;
export const FAKE_MAX_ENTRIES = 10;

/** One request entry as the fake parsed it. */
export interface FakeEntry {
  source: string | undefined;
  detailType: string | undefined;
  /** Raw Detail text as sent. */
  detailText: string | undefined;
  /** Parsed Detail, when it is a JSON object. */
  detail: unknown;
  /** The bus name as resolved (`default` when EventBusName is absent, the name part of an ARN). */
  bus: string;
}

export interface FakeEvent {
  eventId: string;
  source: string;
  detailType: string;
  detail: unknown;
  bus: string;
}

export interface FakeCall {
  /** HTTP status the fake answered. */
  status: number;
  /** Entries in the request (all of them, accepted or not); empty when the body was unreadable. */
  entries: FakeEntry[];
  /** Total entry size as AWS counts it. */
  entryBytes: number;
  /** For a rejected call: the error type (`ValidationException`, ...). */
  errorType?: string;
  /** For an answered call: per entry, the ErrorCode or undefined when accepted. */
  entryErrors?: (string | undefined)[];
  failedEntryCount?: number;
}

export type InjectedEntryError = 'ThrottlingException' | 'InternalFailure';

export interface FakeEventBridge {
  endpoint: string;
  /** Accepted events on known buses, in the order they were accepted. */
  events: FakeEvent[];
  /** Accepted events whose EventBusName names no known bus (AWS accepts and drops these). */
  lost: FakeEvent[];
  /** Every request received, in order of arrival. */
  calls: FakeCall[];
  /** Requests being answered right now, and the most ever seen at once. */
  readonly inFlight: number;
  readonly maxInFlight: number;
  /**
   * Fail the next `times` entries matching `predicate` (default 1; `Infinity` for always) with
   * `code`, as EventBridge reports a per-entry failure: HTTP 200, the entry carrying ErrorCode and
   * ErrorMessage, counted in FailedEntryCount. Other entries of the call succeed.
   */
  failNext(predicate: (entry: FakeEntry) => boolean, opts: { code: InjectedEntryError; times?: number }): void;
  /** Answer the next call (or the next `times` calls) with this HTTP status and error type. */
  rejectNextCall(status: number, type: string, opts?: { message?: string; times?: number }): void;
  /** Hold answers until the returned function is called (to observe concurrent calls). */
  hold(): () => void;
  close(): Promise<void>;
}

interface FailRule {
  predicate: (entry: FakeEntry) => boolean;
  code: InjectedEntryError;
  remaining: number;
}

const MESSAGES: Record<InjectedEntryError, string> = {
  ThrottlingException: 'Rate exceeded',
  InternalFailure: 'Internal Service Error',
};

const utf8 = (s: unknown): number => (typeof s === 'string' ? Buffer.byteLength(s, 'utf8') : 0);

/** The PutEvents entry size, counted the way the EventBridge user guide documents it. */
function documentedEntrySize(raw: Record<string, unknown>): number {
  let size = raw.Time !== undefined && raw.Time !== null ? 14 : 0;
  size += utf8(raw.Source) + utf8(raw.DetailType) + utf8(raw.Detail);
  if (Array.isArray(raw.Resources)) for (const r of raw.Resources) size += utf8(r);
  return size;
}

function busNameOf(value: unknown): string {
  if (typeof value !== 'string' || value === '') return 'default';
  // An ARN names the bus after "event-bus/".
  const at = value.indexOf(':event-bus/');
  return at >= 0 ? value.slice(at + ':event-bus/'.length) : value;
}

function parseEntry(raw: Record<string, unknown>): FakeEntry {
  const detailText = typeof raw.Detail === 'string' ? raw.Detail : undefined;
  let detail: unknown;
  if (detailText !== undefined) {
    try {
      detail = JSON.parse(detailText);
    } catch {
      detail = undefined;
    }
  }
  return {
    source: typeof raw.Source === 'string' ? raw.Source : undefined,
    detailType: typeof raw.DetailType === 'string' ? raw.DetailType : undefined,
    detailText,
    detail,
    bus: busNameOf(raw.EventBusName),
  };
}

function isJsonObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export async function startFakeEventBridge(opts: { buses?: string[] } = {}): Promise<FakeEventBridge> {
  const buses = new Set(['default', ...(opts.buses ?? [])]);
  const events: FakeEvent[] = [];
  const lost: FakeEvent[] = [];
  const calls: FakeCall[] = [];
  const failRules: FailRule[] = [];
  const rejections: { status: number; type: string; message: string; remaining: number }[] = [];
  let held: Promise<void> | undefined;
  let inFlight = 0;
  let maxInFlight = 0;
  let nextId = 0;
  let requestSeq = 0;

  const eventId = (): string => `00000000-0000-4000-8000-${String(++nextId).padStart(12, '0')}`;

  const answer = (res: http.ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'x-amzn-requestid': `fake-eventbridge-${++requestSeq}`,
    });
    res.end(JSON.stringify(body));
  };

  const handle = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void => {
    const call: FakeCall = { status: 400, entries: [], entryBytes: 0 };
    calls.push(call);
    const reject = (status: number, type: string, message: string): void => {
      call.status = status;
      call.errorType = type;
      answer(res, status, { __type: type, message });
    };
    if (req.method !== 'POST' || req.url !== '/') return reject(404, 'UnknownOperationException', `${req.method} ${req.url}`);
    if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) {
      return reject(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
    }
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-amz-json-1.1')) {
      return reject(400, 'SerializationException', 'content-type must be application/x-amz-json-1.1');
    }
    const target = req.headers['x-amz-target'];
    if (target !== 'AWSEvents.PutEvents') return reject(400, 'UnknownOperationException', String(target));

    let request: { Entries?: unknown };
    try {
      request = JSON.parse(body.toString('utf8')) as { Entries?: unknown };
    } catch {
      return reject(400, 'SerializationException', 'request body is not JSON');
    }
    const rawEntries = Array.isArray(request.Entries)
      ? (request.Entries as unknown[]).map((e) => (isJsonObject(e) ? (e as Record<string, unknown>) : {}))
      : undefined;
    if (rawEntries !== undefined) {
      call.entries = rawEntries.map(parseEntry);
      call.entryBytes = rawEntries.reduce((sum, e) => sum + documentedEntrySize(e), 0);
    }

    const rejection = rejections[0];
    if (rejection) {
      if (--rejection.remaining <= 0) rejections.shift();
      return reject(rejection.status, rejection.type, rejection.message);
    }
    if (rawEntries === undefined) {
      return reject(400, 'ValidationException', "1 validation error detected: Value null at 'entries' failed to satisfy constraint: Member must not be null");
    }
    if (rawEntries.length < 1) {
      return reject(400, 'ValidationException', "1 validation error detected: Value '[]' at 'entries' failed to satisfy constraint: Member must have length greater than or equal to 1");
    }
    if (rawEntries.length > FAKE_MAX_ENTRIES) {
      return reject(400, 'ValidationException', `1 validation error detected: Value '[PutEventsRequestEntry x${rawEntries.length}]' at 'entries' failed to satisfy constraint: Member must have length less than or equal to ${FAKE_MAX_ENTRIES}`);
    }
    // "The total entry size must be less than 256KB."
    if (call.entryBytes >= FAKE_MAX_REQUEST_BYTES) {
      return reject(400, 'ValidationException', 'Total size of the entries in the request is over the limit.');
    }

    const results: Record<string, string>[] = [];
    const entryErrors: (string | undefined)[] = [];
    call.entries.forEach((entry) => {
      const fail = (code: string, message: string) => {
        results.push({ ErrorCode: code, ErrorMessage: message });
        entryErrors.push(code);
      };
      if (entry.source === undefined) return fail('InvalidArgument', 'Parameter Source is not valid. Reason: Source is a required argument.');
      if (entry.detailType === undefined) return fail('InvalidArgument', 'Parameter DetailType is not valid. Reason: DetailType is a required argument.');
      if (entry.detailText === undefined) return fail('InvalidArgument', 'Parameter Detail is not valid. Reason: Detail is a required argument.');
      if (!isJsonObject(entry.detail)) return fail('MalformedDetail', 'Detail is malformed.');
      const rule = failRules.find((r) => r.remaining > 0 && r.predicate(entry));
      if (rule) {
        rule.remaining -= 1;
        return fail(rule.code, MESSAGES[rule.code]);
      }
      const accepted: FakeEvent = { eventId: eventId(), source: entry.source, detailType: entry.detailType, detail: entry.detail, bus: entry.bus };
      (buses.has(entry.bus) ? events : lost).push(accepted);
      results.push({ EventId: accepted.eventId });
      entryErrors.push(undefined);
    });
    call.status = 200;
    call.entryErrors = entryErrors;
    call.failedEntryCount = entryErrors.filter((e) => e !== undefined).length;
    answer(res, 200, { FailedEntryCount: call.failedEntryCount, Entries: results });
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const gate = held ?? Promise.resolve();
      void gate.then(() => {
        try {
          handle(req, Buffer.concat(chunks), res);
        } finally {
          inFlight -= 1;
        }
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    events,
    lost,
    calls,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    failNext(predicate, { code, times = 1 }) {
      failRules.push({ predicate, code, remaining: times });
    },
    rejectNextCall(status, type, { message = `${type} (injected)`, times = 1 } = {}) {
      rejections.push({ status, type, message, remaining: times });
    },
    hold() {
      let release!: () => void;
      held = new Promise<void>((resolve) => (release = resolve));
      return () => {
        held = undefined;
        release();
      };
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
