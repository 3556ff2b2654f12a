import { DatabaseSync } from 'node:sqlite';

import test from 'ava';

import { groupCommit } from '../src/store/sqlite/group-commit.ts';

function database() {
  const db = new DatabaseSync(':memory:');
  db.exec('CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0)) STRICT');
  const insert = db.prepare('INSERT INTO t (id, n) VALUES (?, ?)');
  const rows = () => db.prepare('SELECT id, n FROM t ORDER BY id').all().map((row) => `${String(row.id)}=${String(row.n)}`);
  return { db, insert, rows };
}

test('writes of one turn commit together, and one that fails fails alone, whether one statement or several', async (t) => {
  const { db, insert, rows } = database();
  const commits = groupCommit(db);
  insert.run('taken', 1);
  const outcomes = await Promise.allSettled([
    commits.write(() => insert.run('a', 1)),
    commits.write(() => insert.run('taken', 2)),
    commits.write(() => {
      insert.run('b', 1);
      insert.run('c', -1);
    }, 'several'),
    commits.write(() => insert.run('d', 1)),
  ]);
  t.deepEqual(outcomes.map((outcome) => outcome.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled']);
  // The several-statement write left nothing behind (b is gone with c); the others are kept.
  t.deepEqual(rows(), ['a=1', 'd=1', 'taken=1']);
  t.false(db.isTransaction);
});

test('a write alone in its turn commits on its own, and its failure leaves the table as it was', async (t) => {
  const { db, insert, rows } = database();
  const commits = groupCommit(db);
  await commits.write(() => insert.run('a', 1));
  await t.throwsAsync(commits.write(() => insert.run('a', 2)));
  t.deepEqual(rows(), ['a=1']);
});
