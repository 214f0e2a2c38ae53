/**
 * A loopback TCP proxy that a test can cut, to take the network to SQS or PostgreSQL away for
 * real (the code under test sees socket errors, not a mock).
 */
import { once } from 'node:events';
import net from 'node:net';

/**
 * How `block()` cuts the network:
 *  - `reset`: current connections get a TCP RST, new ones are accepted and reset at once
 *    (a peer that went away: errors arrive immediately);
 *  - `silent`: bytes are swallowed in both directions and new connections are held open but never
 *    forwarded (a partition: the client learns only through its own timeouts).
 */
export type BlockMode = 'reset' | 'silent';

export interface TcpProxy {
  /** Port the proxy listens on, on 127.0.0.1. */
  readonly port: number;
  /** Connections forwarded or held right now. */
  readonly openConnections: number;
  /** Connections accepted since start, refused ones included: wait on it to see a reconnect. */
  readonly acceptedConnections: number;
  block(mode?: BlockMode): void;
  /** Forwards new connections again; connections held or muted by a silent block are closed. */
  unblock(): void;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket | undefined;
}

export async function startProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: 'open' | BlockMode = 'open';
  let accepted = 0;

  const swallow = (): void => undefined;

  // An RST, not a FIN: the peer sees ECONNRESET, as when a network path or host goes away.
  const reset = (socket: net.Socket | undefined): void => {
    if (socket && !socket.destroyed) socket.resetAndDestroy();
  };

  const forward = (pair: Pair): void => {
    const upstream = net.connect({ host: targetHost, port: targetPort });
    pair.upstream = upstream;
    // A clean close passes on as a FIN after pending bytes (a server's last error message must
    // reach the client); a failed one as a reset.
    upstream.on('close', (hadError) => (hadError ? reset(pair.client) : pair.client.end()));
    upstream.on('error', swallow);
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
  };

  const mute = (pair: Pair): void => {
    const { client, upstream } = pair;
    if (upstream) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      upstream.on('data', swallow);
    }
    client.on('data', swallow);
  };

  const server = net.createServer((client) => {
    accepted += 1;
    client.on('error', swallow);
    if (mode === 'reset') {
      reset(client);
      return;
    }
    const pair: Pair = { client, upstream: undefined };
    pairs.add(pair);
    client.on('close', (hadError) => {
      pairs.delete(pair);
      if (hadError) reset(pair.upstream);
      else pair.upstream?.end();
    });
    if (mode === 'silent') mute(pair);
    else forward(pair);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;

  const closeAll = (how: 'reset' | 'destroy'): void => {
    for (const pair of pairs) {
      if (how === 'reset') {
        reset(pair.upstream);
        reset(pair.client);
      } else {
        pair.upstream?.destroy();
        pair.client.destroy();
      }
    }
  };

  let closing: Promise<void> | undefined;
  return {
    port,
    get openConnections() {
      return pairs.size;
    },
    get acceptedConnections() {
      return accepted;
    },
    block(blockMode: BlockMode = 'reset') {
      mode = blockMode;
      if (blockMode === 'reset') closeAll('reset');
      else for (const pair of pairs) mute(pair);
    },
    unblock() {
      // Muted connections lost bytes; they cannot carry on.
      if (mode === 'silent') closeAll('destroy');
      mode = 'open';
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        closeAll('destroy');
      });
      return closing;
    },
  };
}
