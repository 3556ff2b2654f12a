/**
 * The audit trail's queue (domain/audit.ts) and the event bus (domain/events.ts), against a store
 * double: what the request path relies on is that recording never throws and never waits, that a
 * store outage loses nothing it can keep, and that memory stays bounded when it cannot.
 */
import { setTimeout as delay } from 'node:timers/promises';

import test from 'ava';

import { AuditService } from '../src/domain/audit.ts';
import { SecurityEvents } from '../src/domain/events.ts';
import type { AuditQuery, AuditRecord, AuditRepository } from '../src/store/port.ts';
import { eventually } from './helpers/eventually.ts';

class FakeRepository implements AuditRepository {
  readonly batches: AuditRecord[][] = [];
  failuresLeft = 0;
  hang = false;

  async append(records: readonly AuditRecord[]): Promise<void> {
    if (this.hang) return new Promise(() => undefined);
    if (this.failuresLeft > 0) {
      this.failuresLeft -= 1;
      throw new Error('store unreachable');
    }
    this.batches.push([...records]);
  }

  async query(query: AuditQuery): Promise<AuditRecord[]> {
    return this.batches.flat().sort((a, b) => b.at.getTime() - a.at.getTime() || (a.id < b.id ? 1 : -1)).slice(0, query.limit);
  }

  get written(): AuditRecord[] {
    return this.batches.flat();
  }
}

/** Until the fake store has seen `condition` hold. */
function until(condition: () => boolean, timeoutMs = 3000): Promise<true> {
  return eventually(() => condition() || undefined, { what: 'the condition', timeoutMs, intervalMs: 10 });
}

test('an event is written right after it is emitted; a burst is written in a few batches, in order', async (t) => {
  const repository = new FakeRepository();
  const events = new SecurityEvents({ context: () => ({ requestId: 'req-1', ip: () => '192.0.2.7' }) });
  const audit = new AuditService(repository, { retentionDays: 30 });
  audit.subscribe(events);

  events.emit({ type: 'signin.failed', sub: 'sub-1', details: { reason: 'wrong_password' } });
  await until(() => repository.written.length === 1);
  const [record] = repository.written;
  t.like(record, { type: 'signin.failed', sub: 'sub-1', requestId: 'req-1', ip: '192.0.2.7', details: { reason: 'wrong_password' } });
  t.is(record!.expiresAt.getTime() - record!.at.getTime(), 30 * 86_400_000);

  for (let i = 0; i < 300; i += 1) events.emit({ type: 'token.issued', sub: `sub-${i}` });
  await until(() => repository.written.length === 301);
  t.true(repository.batches.length <= 4, `${repository.batches.length} writes`);
  t.deepEqual(repository.written.slice(1).map((written) => written.sub), Array.from({ length: 300 }, (_, i) => `sub-${i}`));
  const ids = repository.written.map((written) => written.id);
  t.deepEqual([...ids].sort(), ids, 'ids follow the order of emission');
  await audit.close();
});

test('a failed write keeps the events and retries them; once the store is back each is written once', async (t) => {
  const repository = new FakeRepository();
  repository.failuresLeft = 2;
  const errors: unknown[] = [];
  const events = new SecurityEvents();
  const audit = new AuditService(repository, { retentionDays: 1, onError: (error) => errors.push(error) });
  audit.subscribe(events);

  for (let i = 0; i < 5; i += 1) events.emit({ type: 'signin.failed', sub: `sub-${i}` });
  await until(() => repository.written.length === 5, 5000);
  t.is(errors.length, 2);
  t.deepEqual(repository.written.map((written) => written.sub), ['sub-0', 'sub-1', 'sub-2', 'sub-3', 'sub-4']);
  t.is(audit.dropped, 0);
  await audit.close();
});

test('while the store is away the queue is bounded: the oldest events are dropped and counted', async (t) => {
  const repository = new FakeRepository();
  repository.failuresLeft = Number.POSITIVE_INFINITY;
  const events = new SecurityEvents();
  const audit = new AuditService(repository, { retentionDays: 1, closeTimeoutMs: 50 });
  audit.subscribe(events);
  for (let i = 0; i < 10_050; i += 1) events.emit({ type: 'token.issued' });
  t.true(audit.queued <= 10_000);
  t.is(audit.dropped + audit.queued, 10_050);
  await audit.close();
  t.is(audit.queued, 0);
  t.is(audit.dropped, 10_050, 'what could not be written by close() counts as dropped');
});

test('close() writes what is queued, and gives up after its timeout when the store does not answer', async (t) => {
  const repository = new FakeRepository();
  const events = new SecurityEvents();
  const audit = new AuditService(repository, { retentionDays: 1 });
  audit.subscribe(events);
  events.emit({ type: 'key.rotated' });
  await audit.close();
  t.is(repository.written.length, 1);
  events.emit({ type: 'key.rotated' });
  await delay(20);
  t.is(repository.written.length, 1, 'a closed trail records nothing more');

  const hanging = new FakeRepository();
  hanging.hang = true;
  const stuck = new AuditService(hanging, { retentionDays: 1, closeTimeoutMs: 100 });
  stuck.record({ type: 'key.rotated', at: new Date() });
  const started = Date.now();
  await stuck.close();
  t.true(Date.now() - started < 1000);
});

test('a listener that throws never reaches the emitter, and the other listeners still hear the event', (t) => {
  const failures: string[] = [];
  const events = new SecurityEvents({ onListenerError: (_error, event) => failures.push(event.type) });
  const heard: string[] = [];
  events.on(() => {
    throw new Error('broken listener');
  });
  const off = events.on((event) => heard.push(event.type));
  t.notThrows(() => events.emit({ type: 'account.locked', sub: 'sub-1' }));
  t.deepEqual(heard, ['account.locked']);
  t.deepEqual(failures, ['account.locked']);
  off();
  events.emit({ type: 'account.unlocked' });
  t.deepEqual(heard, ['account.locked']);
});

test('queries refuse a limit out of range, an unknown type, an invalid time and a cursor that is not one', async (t) => {
  const audit = new AuditService(new FakeRepository(), { retentionDays: 1 });
  for (const filter of [{ limit: 0 }, { limit: 1001 }, { limit: 1.5 }, { type: 'signin.maybe' as never }, { since: new Date('nope') }, { before: '12.x y' }]) {
    await t.throwsAsync(audit.query(filter), { code: 'ERR_INVALID_INPUT' }, JSON.stringify(filter));
  }
  t.deepEqual(await audit.query({ before: '1795350501805.00000001abc' }), { events: [] });
});
