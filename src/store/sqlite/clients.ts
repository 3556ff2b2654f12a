/** Clients in the `clients` table: oidc-provider metadata as JSON. Every write bumps the `clients` revision. */
import type { StatementSync } from 'node:sqlite';

import type { ClientRepository, StoredClient } from '../port.ts';
import { clientIdTakenError } from '../store-errors.ts';
import type { SqliteDatabase } from './database.ts';
import type { SqliteRevisions } from './revisions.ts';
import { isUniqueViolation } from './sqlite-errors.ts';

interface ClientRow {
  client_id: string;
  metadata: string;
  created_at: number;
}

function toClient(row: ClientRow): StoredClient {
  return { clientId: row.client_id, metadata: JSON.parse(row.metadata) as Record<string, unknown>, createdAt: new Date(row.created_at) };
}

export function sqliteClients(database: SqliteDatabase, revisions: SqliteRevisions): ClientRepository {
  const { clock, transaction } = database;
  const bumpRevision = revisions.bump;
  const prepare = (sql: string): StatementSync => database.db.prepare(sql);
  const statements = {
    insertClient: prepare('INSERT INTO clients (client_id, metadata, created_at) VALUES (:client_id, :metadata, :created_at)'),
    findClient: prepare('SELECT client_id, metadata, created_at FROM clients WHERE client_id = :client_id'),
    updateClient: prepare('UPDATE clients SET metadata = :metadata WHERE client_id = :client_id'),
    listClients: prepare('SELECT client_id, metadata, created_at FROM clients ORDER BY created_at, client_id'),
    deleteClient: prepare('DELETE FROM clients WHERE client_id = :client_id'),
  };

  return {
    async create(client) {
      const clientId = String(client.clientId);
      const createdAt = clock();
      const metadata = JSON.stringify(client.metadata);
      try {
        transaction(() => {
          statements.insertClient.run({ client_id: clientId, metadata, created_at: createdAt });
          bumpRevision('clients');
        });
      } catch (error) {
        if (isUniqueViolation(error, 'clients.client_id')) throw clientIdTakenError(clientId, error);
        throw error;
      }
      // Parsed back from what was stored, so the caller sees exactly what find() will return.
      return { clientId, metadata: JSON.parse(metadata) as Record<string, unknown>, createdAt: new Date(createdAt) };
    },
    async find(clientId) {
      const row = statements.findClient.get({ client_id: String(clientId) }) as ClientRow | undefined;
      return row === undefined ? undefined : toClient(row);
    },
    async update(clientId, metadata) {
      return transaction(() => {
        const result = statements.updateClient.run({ client_id: String(clientId), metadata: JSON.stringify(metadata) });
        if (Number(result.changes) === 0) return false;
        bumpRevision('clients');
        return true;
      });
    },
    async list() {
      return (statements.listClients.all() as unknown as ClientRow[]).map(toClient);
    },
    async delete(clientId) {
      return transaction(() => {
        const result = statements.deleteClient.run({ client_id: String(clientId) });
        if (Number(result.changes) === 0) return false;
        bumpRevision('clients');
        return true;
      });
    },
  };
}
