/**
 * An HTTP proxy in front of the real SQS emulator that makes chosen SendMessageBatch entries
 * fail the way SQS reports partial failures (HTTP 200, the entry under `Failed`), forwarding
 * the rest unchanged. The emulator never fails an entry on its own, so this is how tests make
 * the streamer's retry path run for real.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SendEntry {
  Id: string;
  MessageBody: string;
  MessageGroupId?: string;
  MessageDeduplicationId?: string;
}

export interface FaultProxy {
  endpoint: string;
  /** Entries answered as failed so far. */
  failed: SendEntry[];
  /** Entries forwarded to the emulator, in order. */
  forwarded: SendEntry[];
  close(): Promise<void>;
}

/** `shouldFail(entry, attempt)` decides per entry; `attempt` counts sends of that deduplication id. */
export async function startSqsFaultProxy(
  targetEndpoint: string,
  shouldFail: (entry: SendEntry, attempt: number) => { code: string; senderFault: boolean } | undefined,
): Promise<FaultProxy> {
  const target = new URL(targetEndpoint);
  const attempts = new Map<string, number>();
  const failed: SendEntry[] = [];
  const forwarded: SendEntry[] = [];

  const forward = (req: http.IncomingMessage, body: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const headers = { ...req.headers, host: target.host, 'content-length': String(body.length) };
      const out = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 500, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      out.on('error', reject);
      out.end(body);
    });

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      try {
        let body: Buffer = Buffer.concat(chunks);
        const isBatch = req.headers['x-amz-target'] === 'AmazonSQS.SendMessageBatch';
        const injected: { Id: string; Code: string; SenderFault: boolean; Message: string }[] = [];
        if (isBatch) {
          const request = JSON.parse(body.toString()) as { QueueUrl: string; Entries: SendEntry[] };
          const keep: SendEntry[] = [];
          for (const e of request.Entries) {
            const key = e.MessageDeduplicationId ?? e.Id;
            const attempt = (attempts.get(key) ?? 0) + 1;
            attempts.set(key, attempt);
            const fault = shouldFail(e, attempt);
            if (fault) {
              failed.push(e);
              injected.push({ Id: e.Id, Code: fault.code, SenderFault: fault.senderFault, Message: 'injected by the test proxy' });
            } else keep.push(e);
          }
          if (keep.length === 0) {
            res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
            res.end(JSON.stringify({ Successful: [], Failed: injected }));
            return;
          }
          forwarded.push(...keep);
          body = Buffer.from(JSON.stringify({ ...request, Entries: keep }));
        }
        const upstream = await forward(req, body);
        let out = upstream.body;
        if (isBatch && upstream.status === 200 && injected.length > 0) {
          const parsed = JSON.parse(out.toString()) as { Successful?: unknown[]; Failed?: unknown[] };
          out = Buffer.from(JSON.stringify({ Successful: parsed.Successful ?? [], Failed: [...(parsed.Failed ?? []), ...injected] }));
        }
        const headers = { ...upstream.headers, 'content-length': String(out.length) };
        delete headers['transfer-encoding'];
        res.writeHead(upstream.status, headers);
        res.end(out);
      } catch (err) {
        res.writeHead(502);
        res.end(String(err));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    failed,
    forwarded,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
