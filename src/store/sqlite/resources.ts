/** Resource servers in the `resources` table, keyed by audience (BINARY: compared exactly). Every write bumps the `resources` revision. */
import type { StatementSync } from 'node:sqlite';

import type { AccessTokenSigningAlg, ResourceRepository, ResourceServerRecord } from '../port.ts';
import { resourceAudienceTakenError } from '../store-errors.ts';
import { optionalString, type SqliteDatabase } from './database.ts';
import type { SqliteRevisions } from './revisions.ts';
import { isUniqueViolation } from './sqlite-errors.ts';

interface ResourceRow {
  audience: string;
  name: string | null;
  scopes: string;
  format: string;
  ttl_seconds: number;
  /** JSON object of scope to roles, or NULL. */
  scope_roles: string | null;
  /** JSON array of client ids, or NULL. */
  clients: string | null;
  /** NULL: RS256. */
  signing_alg: string | null;
  created_at: number;
}

const RESOURCE_COLUMNS = 'audience, name, scopes, format, ttl_seconds, scope_roles, clients, signing_alg, created_at';

function toResource(row: ResourceRow): ResourceServerRecord {
  const resource: ResourceServerRecord = {
    audience: row.audience,
    scopes: JSON.parse(row.scopes) as string[],
    format: row.format as ResourceServerRecord['format'],
    ttlSeconds: row.ttl_seconds,
    createdAt: new Date(row.created_at),
  };
  if (row.name !== null) resource.name = row.name;
  if (row.scope_roles !== null) resource.scopeRoles = JSON.parse(row.scope_roles) as Record<string, string[]>;
  if (row.clients !== null) resource.clients = JSON.parse(row.clients) as string[];
  if (row.signing_alg !== null) resource.signingAlg = row.signing_alg as AccessTokenSigningAlg;
  return resource;
}

export function sqliteResources(database: SqliteDatabase, revisions: SqliteRevisions): ResourceRepository {
  const { clock, transaction } = database;
  const bumpRevision = revisions.bump;
  const prepare = (sql: string): StatementSync => database.db.prepare(sql);
  const statements = {
    insertResource: prepare(`
      INSERT INTO resources (${RESOURCE_COLUMNS})
      VALUES (:audience, :name, :scopes, :format, :ttl_seconds, :scope_roles, :clients, :signing_alg, :created_at)`),
    findResource: prepare(`SELECT ${RESOURCE_COLUMNS} FROM resources WHERE audience = :audience`),
    listResources: prepare(`SELECT ${RESOURCE_COLUMNS} FROM resources ORDER BY created_at, audience`),
    deleteResource: prepare('DELETE FROM resources WHERE audience = :audience'),
  };

  return {
    async create(resource) {
      const audience = String(resource.audience);
      const createdAt = clock();
      const row: ResourceRow = {
        audience,
        name: optionalString(resource.name),
        scopes: JSON.stringify(resource.scopes.map(String)),
        format: resource.format,
        ttl_seconds: resource.ttlSeconds,
        scope_roles: resource.scopeRoles && Object.keys(resource.scopeRoles).length
          ? JSON.stringify(Object.fromEntries(Object.entries(resource.scopeRoles).map(([scope, roles]) => [String(scope), roles.map(String)])))
          : null,
        clients: resource.clients?.length ? JSON.stringify(resource.clients.map(String)) : null,
        signing_alg: resource.signingAlg ?? null,
        created_at: createdAt,
      };
      try {
        transaction(() => {
          statements.insertResource.run({ ...row });
          bumpRevision('resources');
        });
      } catch (error) {
        if (isUniqueViolation(error, 'resources.audience')) throw resourceAudienceTakenError(audience, error);
        throw error;
      }
      // Built from what was stored, so the caller sees exactly what find() will return.
      return toResource(row);
    },
    async find(audience) {
      const row = statements.findResource.get({ audience: String(audience) }) as ResourceRow | undefined;
      return row === undefined ? undefined : toResource(row);
    },
    async list() {
      return (statements.listResources.all() as unknown as ResourceRow[]).map(toResource);
    },
    async delete(audience) {
      return transaction(() => {
        const result = statements.deleteResource.run({ audience: String(audience) });
        if (Number(result.changes) === 0) return false;
        bumpRevision('resources');
        return true;
      });
    },
  };
}
