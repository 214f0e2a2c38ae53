/**
 * ConnectionProvider.connect, the one way pgrelay opens an ordinary connection: a failure is
 * one sentence naming the server (never the password) with a stable code.
 */
import { describe, expect, it } from 'vitest';
import { databaseSchema } from '#core/config.ts';
import { freePort } from '#dev/postgres/server.ts';
import { ConnectError, ConnectionProvider } from '#shared/connection.ts';
import { testDatabase } from '#test/helpers/postgres.ts';

describe('ConnectionProvider.connect', () => {
  it('names the server of a URL without its password when nothing listens there', async () => {
    const port = await freePort();
    const provider = new ConnectionProvider(databaseSchema.parse({ url: `postgres://u:pw-9f8e@127.0.0.1:${port}/app` }));
    const err = await provider.connect({ applicationName: 'pgrelay-test' }).then(
      () => new Error('connected'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect(err).toMatchObject({ code: 'PGRELAY_UNREACHABLE', message: `nothing accepts connections at 127.0.0.1:${port}/app: start PostgreSQL or fix the host and port` });
    expect(String((err as Error).message)).not.toContain('pw-9f8e');
  });

  it('a wrong password is AUTH, and the sentence names the user, not the password', async () => {
    const db = await testDatabase('connect_auth');
    try {
      const url = new URL(db.url);
      url.password = 'wrong-pw-4711';
      const provider = new ConnectionProvider(databaseSchema.parse({ url: url.toString() }));
      const err = await provider.connect({ applicationName: 'pgrelay-test' }).then(
        () => new Error('connected'),
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'PGRELAY_AUTH' });
      expect(String((err as Error).message)).toContain(`rejected the password of user ${decodeURIComponent(url.username)}`);
      expect(String((err as Error).message)).not.toContain('wrong-pw-4711');
    } finally {
      await db.drop();
    }
  });

  it('connects, with the statement timeout asked for', async () => {
    const db = await testDatabase('connect_ok');
    try {
      const client = await new ConnectionProvider(databaseSchema.parse({ url: db.url })).connect({ applicationName: 'pgrelay-test', statementTimeoutMs: 4_321 });
      try {
        expect((await client.query<{ statement_timeout: string }>('SHOW statement_timeout')).rows[0]?.statement_timeout).toBe('4321ms');
      } finally {
        await client.end();
      }
    } finally {
      await db.drop();
    }
  });
});
