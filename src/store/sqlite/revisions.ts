/** Revision counters in the `revisions` table (one row per name, created by its first bump). */
import type { RevisionName, RevisionRepository } from '../port.ts';
import { storeUnavailableError } from '../store-errors.ts';
import type { SqliteDatabase } from './database.ts';

export interface SqliteRevisions {
  readonly repository: RevisionRepository;
  /** Bumps synchronously, so a write's transaction can bump inside itself (clients, resources, keys). */
  bump(name: RevisionName): number;
}

export function sqliteRevisions(database: SqliteDatabase): SqliteRevisions {
  const statements = {
    getRevision: database.db.prepare('SELECT value FROM revisions WHERE name = :name'),
    bumpRevision: database.db.prepare(`
      INSERT INTO revisions (name, value) VALUES (:name, 1)
      ON CONFLICT (name) DO UPDATE SET value = value + 1
      RETURNING value`),
  };

  function bump(name: RevisionName): number {
    const row = statements.bumpRevision.get({ name }) as { value: number } | undefined;
    if (row === undefined) throw storeUnavailableError('SQLite did not return the new revision.');
    return row.value;
  }

  return {
    bump,
    repository: {
      async get(name) {
        const row = statements.getRevision.get({ name }) as { value: number } | undefined;
        return row?.value ?? 0;
      },
      async bump(name) {
        return bump(name);
      },
    },
  };
}
