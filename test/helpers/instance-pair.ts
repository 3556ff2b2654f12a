/**
 * Two Tessera instances sharing one store, as behind a load balancer: the same SQLite file (one
 * DATA_DIR), or the same MongoDB database (a lane of mongo-lane.ts) with one TESSERA_SECRET.
 */
import { randomBytes } from 'node:crypto';

import { startMongoLane } from './mongo-lane.ts';
import { staticClient } from './relying-party.ts';
import { makeTempDir, removeDir, startTestServer, type TestServer } from './server.ts';

export type StoreKind = 'sqlite' | 'mongodb';

export interface InstancePair {
  readonly a: TestServer;
  readonly b: TestServer;
  close(): Promise<void>;
}

export interface InstancePairOptions {
  /**
   * Both instances publish A's issuer, as instances behind one load balancer publish the balancer's:
   * tokens from either carry the same `iss`. (Each still listens on its own port.)
   */
  sharedIssuer?: boolean;
}

export async function startInstancePair(kind: StoreKind, env: Record<string, string> = {}, options: InstancePairOptions = {}): Promise<InstancePair> {
  const clients = [staticClient()];
  const issuerOf = (a: TestServer): Record<string, string> => (options.sharedIssuer ? { ISSUER: a.issuer } : {});
  if (kind === 'sqlite') {
    const dataDir = makeTempDir();
    // One after the other: the first creates the file, the keys and the development secret.
    const a = await startTestServer({ dataDir, clients, env });
    const b = await startTestServer({ dataDir, clients, env: { ...env, ...issuerOf(a) } });
    return {
      a,
      b,
      async close() {
        await Promise.all([a.close(), b.close()]);
        removeDir(dataDir);
      },
    };
  }
  const lane = await startMongoLane();
  const shared = { ...env, MONGODB_URI: lane.uri, TESSERA_SECRET: randomBytes(32).toString('base64url') };
  const a = await startTestServer({ clients, env: shared });
  const b = await startTestServer({ clients, env: { ...shared, ...issuerOf(a) } });
  return {
    a,
    b,
    async close() {
      await Promise.all([a.close(), b.close()]);
      removeDir(a.dataDir);
      removeDir(b.dataDir);
      await lane.stop();
    },
  };
}
