/** Picks the backend from configuration: MongoDB when a URI is configured, else SQLite in the data directory. */
import path from 'node:path';

import { openMongoStore } from './mongo/mongo-store.ts';
import type { Store } from './port.ts';
import { openSqliteStore } from './sqlite/sqlite-store.ts';

export async function openStore(config: { mongodbUri?: string | undefined; dataDir: string }): Promise<Store> {
  if (config.mongodbUri !== undefined && config.mongodbUri !== '') return openMongoStore({ uri: config.mongodbUri });
  return openSqliteStore({ file: path.join(config.dataDir, 'tessera.db') });
}
