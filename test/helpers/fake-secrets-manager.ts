/**
 * A stand-in for AWS Secrets Manager on loopback (there is no local emulator among our
 * dependencies). It speaks the real wire protocol the SDK uses (AWS JSON 1.1, POST /, the
 * X-Amz-Target header, a SigV4-signed request) and answers GetSecretValue; it rejects
 * requests that are not shaped like the real API's, so a wrong client fails here too.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeSecretsManager {
  endpoint: string;
  /** Set or rotate a secret's value. */
  put(arn: string, value: Record<string, unknown>): void;
  /** GetSecretValue calls answered, by secret id. */
  reads: string[];
  rejected: string[];
  close(): Promise<void>;
}

export async function startFakeSecretsManager(): Promise<FakeSecretsManager> {
  const secrets = new Map<string, string>();
  const reads: string[] = [];
  const rejected: string[] = [];
  let version = 0;
  const fail = (res: http.ServerResponse, status: number, type: string, message: string) => {
    rejected.push(`${type}: ${message}`);
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
    res.end(JSON.stringify({ __type: type, message }));
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/') return fail(res, 400, 'InvalidRequestException', `${req.method} ${req.url}`);
      if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) return fail(res, 400, 'MissingAuthenticationTokenException', 'request not signed');
      if (!String(req.headers['content-type'] ?? '').startsWith('application/x-amz-json-1.1')) return fail(res, 400, 'InvalidRequestException', 'content-type');
      const target = req.headers['x-amz-target'];
      if (target !== 'secretsmanager.GetSecretValue') return fail(res, 400, 'UnknownOperationException', String(target));
      let body: { SecretId?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString()) as { SecretId?: unknown };
      } catch {
        return fail(res, 400, 'SerializationException', 'body is not JSON');
      }
      const id = body.SecretId;
      if (typeof id !== 'string' || id.length < 1 || id.length > 2048) return fail(res, 400, 'InvalidParameterException', 'SecretId');
      const value = secrets.get(id);
      if (value === undefined) return fail(res, 400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
      reads.push(id);
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(
        JSON.stringify({
          ARN: id,
          Name: id.split(':').pop(),
          SecretString: value,
          VersionId: `v${version}`,
          VersionStages: ['AWSCURRENT'],
          CreatedDate: 1_700_000_000,
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    put(arn, value) {
      version++;
      secrets.set(arn, JSON.stringify(value));
    },
    reads,
    rejected,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
