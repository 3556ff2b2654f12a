/**
 * PasswordHasher runs at most one argon2 hash per core at once (each holds its memory cost, 7 MiB by default): the semaphore
 * as a unit, and the hasher through it.
 */
import test from 'ava';

import { PasswordHasher, Semaphore } from '../src/domain/password.ts';

const FAST = { memoryKiB: 1024, timeCost: 1, parallelism: 1 };

test('a semaphore runs at most its limit at once and starts the waiting ones in the order they came', async (t) => {
  const semaphore = new Semaphore(2);
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const releases: Array<() => void> = [];
  const jobs = Array.from({ length: 5 }, (_, index) => semaphore.run(async () => {
    started.push(index);
    running += 1;
    most = Math.max(most, running);
    await new Promise<void>((resolve) => releases.push(resolve));
    running -= 1;
    return index;
  }));
  for (let step = 0; step < 5; step += 1) {
    await new Promise((resolve) => setImmediate(resolve));
    releases.shift()?.();
  }
  t.deepEqual(await Promise.all(jobs), [0, 1, 2, 3, 4]);
  t.is(most, 2);
  t.deepEqual(started, [0, 1, 2, 3, 4]);
});

test('a job that throws frees its place for the next one', async (t) => {
  const semaphore = new Semaphore(1);
  await t.throwsAsync(semaphore.run(async () => {
    throw new Error('boom');
  }), { message: 'boom' });
  t.is(await semaphore.run(async () => 'next'), 'next');
});

test('the hasher still verifies many passwords at once, one hash per allowed slot at a time', async (t) => {
  const hasher = new PasswordHasher(FAST, 1);
  const hash = await hasher.hash('correct horse battery staple');
  const answers = await Promise.all([
    hasher.verify(hash, 'correct horse battery staple'),
    hasher.verify(hash, 'wrong'),
    hasher.verifyDecoy('anything'),
    hasher.verify('not a hash', 'anything'),
  ]);
  t.deepEqual(answers, [true, false, false, false]);
});
