/** Picks the backend from configuration: MongoDB when a URI is configured, else SQLite in the data directory. */
import path from 'node:path';

import type { Store } from './port.ts';

export async function openStore(config: { mongodbUri?: string | undefined; dataDir: string }, options: { warn?: (message: string) => void } = {}): Promise<Store> {
  // Loaded on demand: mongoose costs a quarter of a second to import, and most CLI runs use SQLite.
  if (config.mongodbUri !== undefined && config.mongodbUri !== '') {
    const { openMongoStore } = await import('./mongo/open.ts');
    return openMongoStore({ uri: config.mongodbUri });
  }
  const { openSqliteStore } = await import('./sqlite/open.ts');
  return openSqliteStore({ file: path.join(config.dataDir, 'tessera.db'), ...(options.warn && { warn: options.warn }) });
}
