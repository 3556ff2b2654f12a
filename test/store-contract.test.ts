/**
 * The store contract: one suite, defined once, run against every backend. Each test gets its own
 * storage (a temp SQLite file, a fresh MongoDB database) and a manual clock, so expiry is observed
 * by moving time rather than by sleeping, and tests can run concurrently.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setImmediate as setImmediatePromise, setTimeout as delay } from 'node:timers/promises';

import test, { type ExecutionContext } from 'ava';
import mongoose from 'mongoose';
import { RateLimiterRes } from 'rate-limiter-flexible';

import { isAppError } from '../src/errors.ts';
import { openMongoStore } from '../src/store/mongo/open.ts';
import { openStore } from '../src/store/open-store.ts';
import type {
  Account, AccountChanges, AuditQuery, AuditRecord, ImportedAccountFields, NewAccount, OidcPayload, Passkey, ResourceServerRecord, Store, StoredKey,
} from '../src/store/port.ts';
import { openSqliteStore, SQLITE_MIGRATIONS, SQLITE_SCHEMA_VERSION } from '../src/store/sqlite/open.ts';
import { startMongoLane } from './helpers/mongo-lane.ts';

/** Storage of one test: open() may be called more than once (a reopen, or a second process sharing it). */
interface Lane {
  open(options?: { clock?: () => number }): Promise<Store>;
  dispose(): Promise<void>;
}

type LaneFactory = () => Promise<Lane>;

interface ManualClock {
  now: () => number;
  advance(milliseconds: number): void;
}

function manualClock(): ManualClock {
  let current = Date.now();
  return {
    now: () => current,
    advance(milliseconds) {
      current += milliseconds;
    },
  };
}

const SECOND = 1000;
const DAY = 86_400 * SECOND;

async function setUp(t: ExecutionContext, createLane: LaneFactory) {
  const lane = await createLane();
  const clock = manualClock();
  const opened: Store[] = [];
  t.teardown(async () => {
    for (const store of opened) await store.close();
    await lane.dispose();
  });
  const open = async (options: { clock?: () => number } = { clock: clock.now }) => {
    const store = await lane.open(options);
    opened.push(store);
    return store;
  };
  const store = await open();
  return { store, clock, open };
}

function account(sub: string, email: string, extra: Partial<NewAccount> = {}): NewAccount {
  return { sub, email, emailVerified: false, passwordHash: `$argon2id$hash-of-${sub}`, disabled: false, ...extra };
}

/** What every account has before any security feature is used. */
const SECURITY_DEFAULTS = { roles: [], failedSignIns: 0, lockouts: 0, recoveryCodes: [], passkeys: [], emailOtp: false } satisfies Partial<Account>;

function passkey(credentialId: string, createdAt: number, extra: Partial<Passkey> = {}): Passkey {
  return { credentialId, publicKey: `pk-${credentialId}`, counter: 0, name: `Key ${credentialId}`, createdAt: new Date(createdAt), ...extra };
}

/** What a limiter rejects with when a key is over its limit: a RateLimiterRes, not an Error. */
async function limitRejection(t: ExecutionContext, attempt: Promise<unknown>): Promise<RateLimiterRes> {
  return (await t.throwsAsync(attempt, { any: true, instanceOf: RateLimiterRes })) as RateLimiterRes;
}

function key(kid: string, use: StoredKey['use'], createdAt: number): StoredKey {
  return use === 'sig'
    ? { kid, use, alg: 'ES256', publicJwk: { kty: 'EC', crv: 'P-256', x: `x-${kid}`, y: `y-${kid}`, kid }, encryptedPrivate: `enc-${kid}`, createdAt: new Date(createdAt) }
    : { kid, use, alg: '', encryptedPrivate: `enc-${kid}`, createdAt: new Date(createdAt) };
}

function resource(audience: string, extra: Partial<Omit<ResourceServerRecord, 'createdAt'>> = {}): Omit<ResourceServerRecord, 'createdAt'> {
  return { audience, scopes: ['read', 'write'], format: 'jwt', ttlSeconds: 600, ...extra };
}

function auditRecord(id: string, type: string, at: number, extra: Partial<AuditRecord> = {}): AuditRecord {
  return { id, type, at: new Date(at), expiresAt: new Date(at + 90 * DAY), ...extra };
}

function retirement(at: number, keepFor: number) {
  return { retiredAt: new Date(at), expiresAt: new Date(at + keepFor) };
}

function defineContract(name: string, createLane: LaneFactory): void {
  const it = (title: string, body: (t: ExecutionContext) => Promise<void>) => test(`${name}: ${title}`, body);
  // Tests that read the real clock run on their own, before the concurrent ones: a busy event loop
  // in this file (every other case at once) must not outlast the record's lifetime.
  const itOnItsOwn = (title: string, body: (t: ExecutionContext) => Promise<void>) => test.serial(`${name}: ${title}`, body);

  // --- oidc-provider records ---------------------------------------------------------------------

  it('an upserted oidc record is found by id, by uid and by user code, and only under its model', async (t) => {
    const { store } = await setUp(t, createLane);
    const payload: OidcPayload = { jti: 'dc-1', uid: 'uid-1', userCode: 'ABCD-EFGH', grantId: 'grant-1', kind: 'DeviceCode', scope: 'openid' };
    await store.oidc.upsert('DeviceCode', 'dc-1', payload, 600);

    t.deepEqual(await store.oidc.find('DeviceCode', 'dc-1'), payload);
    t.deepEqual(await store.oidc.findByUid('DeviceCode', 'uid-1'), payload);
    t.deepEqual(await store.oidc.findByUserCode('DeviceCode', 'ABCD-EFGH'), payload);
    t.is(await store.oidc.find('DeviceCode', 'dc-2'), undefined);
    t.is(await store.oidc.findByUid('DeviceCode', 'uid-2'), undefined);
    t.is(await store.oidc.findByUserCode('DeviceCode', 'ABCD-0000'), undefined);
    t.is(await store.oidc.find('Session', 'dc-1'), undefined);
    t.is(await store.oidc.findByUid('Session', 'uid-1'), undefined);
    t.is(await store.oidc.findByUserCode('Session', 'ABCD-EFGH'), undefined);
  });

  it('what one store has read and another store on the same storage then changes is read as changed a moment later, and what it changes itself at once', async (t) => {
    const { store, open, clock } = await setUp(t, createLane);
    const other = await open({ clock: clock.now });
    await store.oidc.upsert('AccessToken', 'at-1', { kind: 'AccessToken', grantId: 'g-1' }, 600);
    await store.oidc.upsert('AccessToken', 'at-2', { kind: 'AccessToken', grantId: 'g-2' }, 600);
    await store.accounts.create(account('sub-1', 'one@example.com'));
    // Read (and so cached, where a backend caches) before the other store writes.
    t.truthy(await store.oidc.find('AccessToken', 'at-1'));
    t.is(await store.oidc.find('AccessToken', 'absent'), undefined);
    t.false((await store.accounts.findBySub('sub-1'))!.disabled);

    await other.oidc.destroy('AccessToken', 'at-1');
    await other.oidc.upsert('AccessToken', 'absent', { kind: 'AccessToken' }, 600);
    await other.accounts.update('sub-1', { disabled: true });
    // Another connection's commits are seen by reads from a millisecond after them (sqlite/read-cache.ts).
    await delay(2);
    t.is(await store.oidc.find('AccessToken', 'at-1'), undefined);
    t.deepEqual(await store.oidc.find('AccessToken', 'absent'), { kind: 'AccessToken' });
    t.true((await store.accounts.findBySub('sub-1'))!.disabled);

    // The store's own writes, after a read of the same record.
    t.truthy(await store.oidc.find('AccessToken', 'at-2'));
    t.true(await store.oidc.consume('AccessToken', 'at-2'));
    t.is(typeof (await store.oidc.find('AccessToken', 'at-2'))?.consumed, 'number');
    await store.oidc.revokeByGrantId('AccessToken', 'g-2');
    t.is(await store.oidc.find('AccessToken', 'at-2'), undefined);
    await store.accounts.update('sub-1', { name: 'One' });
    t.is((await store.accounts.findBySub('sub-1'))!.name, 'One');
    // A record read while live is not found once it has expired.
    await store.oidc.upsert('AccessToken', 'at-3', { kind: 'AccessToken' }, 60);
    t.truthy(await store.oidc.find('AccessToken', 'at-3'));
    clock.advance(61 * SECOND);
    t.is(await store.oidc.find('AccessToken', 'at-3'), undefined);
  });

  it('records of different models with the same id are kept apart', async (t) => {
    const { store } = await setUp(t, createLane);
    await store.oidc.upsert('AccessToken', 'same-id', { kind: 'AccessToken' }, 600);
    await store.oidc.upsert('RefreshToken', 'same-id', { kind: 'RefreshToken' }, 600);
    await store.oidc.destroy('AccessToken', 'same-id');

    t.is(await store.oidc.find('AccessToken', 'same-id'), undefined);
    t.deepEqual(await store.oidc.find('RefreshToken', 'same-id'), { kind: 'RefreshToken' });
  });

  it('upsert replaces a record entirely, its lookup fields and expiry included', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.oidc.upsert('Session', 's-1', { uid: 'old-uid', userCode: 'OLD', extra: true }, 60);
    await store.oidc.upsert('Session', 's-1', { uid: 'new-uid', accountId: 'sub-1' });
    clock.advance(365 * DAY);

    t.deepEqual(await store.oidc.find('Session', 's-1'), { uid: 'new-uid', accountId: 'sub-1' });
    t.is(await store.oidc.findByUid('Session', 'old-uid'), undefined);
    t.is(await store.oidc.findByUserCode('Session', 'OLD'), undefined);
    t.deepEqual(await store.oidc.findByUid('Session', 'new-uid'), { uid: 'new-uid', accountId: 'sub-1' });
  });

  it('payloads round-trip unchanged, awkward keys and nested values included', async (t) => {
    const { store } = await setUp(t, createLane);
    const payload: OidcPayload = {
      jti: 'ac-1',
      claims: { id_token: { 'https://example.com/claims/role': null, email: { essential: true } } },
      $notAnOperator: 'stored as data',
      'dotted.key': 1,
      numbers: [0, -1, 2 ** 40, 0.5],
      text: 'Grüße, 世界 \u0000 \n',
      empty: {},
      none: [],
      flag: false,
      gone: undefined,
    };
    await store.oidc.upsert('AuthorizationCode', 'ac-1', payload, 600);

    const { gone: _gone, ...expected } = payload;
    t.deepEqual(await store.oidc.find('AuthorizationCode', 'ac-1'), expected);
  });

  it('consume marks a record consumed and keeps the first consumption time', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.oidc.upsert('AuthorizationCode', 'code-1', { jti: 'code-1', grantId: 'g' }, 600);
    const firstConsumption = Math.floor(clock.now() / 1000);

    t.true(await store.oidc.consume('AuthorizationCode', 'code-1'), 'the first call consumes it');
    clock.advance(5 * SECOND);
    t.false(await store.oidc.consume('AuthorizationCode', 'code-1'), 'a second call does not');

    t.deepEqual(await store.oidc.find('AuthorizationCode', 'code-1'), { jti: 'code-1', grantId: 'g', consumed: firstConsumption });
    t.false(await store.oidc.consume('AuthorizationCode', 'unknown'));
    t.is(await store.oidc.find('AuthorizationCode', 'unknown'), undefined);
  });

  it('of concurrent consumers of one record through two store instances exactly one is told it consumed it', async (t) => {
    const { store, open } = await setUp(t, createLane);
    const other = await open();
    await store.oidc.upsert('AuthorizationCode', 'code-race', { jti: 'code-race', grantId: 'g' }, 600);
    await store.oidc.upsert('RefreshToken', 'rt-race', { jti: 'rt-race', grantId: 'g' }, 600);

    for (const [model, id] of [['AuthorizationCode', 'code-race'], ['RefreshToken', 'rt-race']] as const) {
      const results = await Promise.all(Array.from({ length: 10 }, (_, index) => (index % 2 === 0 ? store : other).oidc.consume(model, id)));
      t.is(results.filter(Boolean).length, 1, `${model}: ${JSON.stringify(results)}`);
    }
  });

  it('consume of an expired record tells no one it consumed it', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.oidc.upsert('AuthorizationCode', 'code-old', { jti: 'code-old' }, 60);
    clock.advance(61 * SECOND);
    t.false(await store.oidc.consume('AuthorizationCode', 'code-old'));
  });

  it('swapSuccessor answers the successor it replaced, so concurrent swaps leave exactly one recorded', async (t) => {
    const { store, open } = await setUp(t, createLane);
    const other = await open();
    await store.oidc.upsert('RefreshToken', 'rt-1', { jti: 'rt-1', grantId: 'g' }, 600);
    t.is(await store.oidc.swapSuccessor('RefreshToken', 'unknown', 'rt-x'), undefined, 'nothing to record on');

    t.is(await store.oidc.swapSuccessor('RefreshToken', 'rt-1', 'rt-2'), undefined, 'the first successor replaces none');
    t.is(await store.oidc.swapSuccessor('RefreshToken', 'rt-1', 'rt-3'), 'rt-2');

    const successors = ['rt-4', 'rt-5', 'rt-6', 'rt-7', 'rt-8', 'rt-9'];
    const replaced = await Promise.all(successors.map((id, index) => (index % 2 === 0 ? store : other).oidc.swapSuccessor('RefreshToken', 'rt-1', id)));
    // Each swap replaced a different one: rt-3 and all but one of the new ones, which is the one left.
    t.is(new Set(replaced).size, successors.length);
    const left = ['rt-3', ...successors].filter((id) => !replaced.includes(id));
    t.is(left.length, 1);
    t.is(await store.oidc.swapSuccessor('RefreshToken', 'rt-1', 'rt-10'), left[0]);
  });

  it('destroy removes only the named record', async (t) => {
    const { store } = await setUp(t, createLane);
    await store.oidc.upsert('Interaction', 'i-1', { uid: 'i-1' }, 600);
    await store.oidc.upsert('Interaction', 'i-2', { uid: 'i-2' }, 600);

    await store.oidc.destroy('Interaction', 'i-1');
    await store.oidc.destroy('Interaction', 'never-existed');

    t.is(await store.oidc.find('Interaction', 'i-1'), undefined);
    t.is(await store.oidc.findByUid('Interaction', 'i-1'), undefined);
    t.deepEqual(await store.oidc.find('Interaction', 'i-2'), { uid: 'i-2' });
  });

  it("revokeByGrantId removes that grant's records of that model and nothing else", async (t) => {
    const { store } = await setUp(t, createLane);
    await store.oidc.upsert('AccessToken', 'at-1', { grantId: 'g1' }, 600);
    await store.oidc.upsert('AccessToken', 'at-2', { grantId: 'g1' });
    await store.oidc.upsert('AccessToken', 'at-3', { grantId: 'g2' }, 600);
    await store.oidc.upsert('AccessToken', 'at-4', { scope: 'no grant' }, 600);
    await store.oidc.upsert('RefreshToken', 'rt-1', { grantId: 'g1' }, 600);

    await store.oidc.revokeByGrantId('AccessToken', 'g1');

    t.is(await store.oidc.find('AccessToken', 'at-1'), undefined);
    t.is(await store.oidc.find('AccessToken', 'at-2'), undefined);
    t.deepEqual(await store.oidc.find('AccessToken', 'at-3'), { grantId: 'g2' });
    t.deepEqual(await store.oidc.find('AccessToken', 'at-4'), { scope: 'no grant' });
    t.deepEqual(await store.oidc.find('RefreshToken', 'rt-1'), { grantId: 'g1' });
  });

  it('an expired record is absent from every read path, and a record without expiry never expires', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.oidc.upsert('DeviceCode', 'dc-1', { uid: 'u-1', userCode: 'CODE-1' }, 60);
    await store.oidc.upsert('Session', 'forever', { uid: 'u-forever' });

    clock.advance(60 * SECOND - 1);
    t.truthy(await store.oidc.find('DeviceCode', 'dc-1'), 'still live one millisecond before expiry');

    clock.advance(1);
    await store.oidc.consume('DeviceCode', 'dc-1');
    t.is(await store.oidc.find('DeviceCode', 'dc-1'), undefined);
    t.is(await store.oidc.findByUid('DeviceCode', 'u-1'), undefined);
    t.is(await store.oidc.findByUserCode('DeviceCode', 'CODE-1'), undefined);

    clock.advance(10 * 365 * DAY);
    t.deepEqual(await store.oidc.findByUid('Session', 'u-forever'), { uid: 'u-forever' });

    // Saving it again (oidc-provider re-saves records) brings it back with a fresh lifetime, unconsumed.
    await store.oidc.upsert('DeviceCode', 'dc-1', { uid: 'u-1', userCode: 'CODE-1' }, 60);
    t.deepEqual(await store.oidc.findByUserCode('DeviceCode', 'CODE-1'), { uid: 'u-1', userCode: 'CODE-1' });
  });

  itOnItsOwn('a record expires by the real clock when the store has no injected clock', async (t) => {
    const { open } = await setUp(t, createLane);
    const store = await open({});
    // Three seconds of life: long enough that a loaded CI machine still reads it back in time.
    const written = Date.now();
    await store.oidc.upsert('Interaction', 'real-time', { uid: 'real-time' }, 3);
    t.truthy(await store.oidc.find('Interaction', 'real-time'));

    await delay(Math.max(0, written + 3100 - Date.now()));
    t.is(await store.oidc.find('Interaction', 'real-time'), undefined);
    t.is(await store.oidc.findByUid('Interaction', 'real-time'), undefined);
  });

  it('findByAccountId returns the live records of that model and account, each with its id', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.oidc.upsert('Session', 's-1', { uid: 'u-1', accountId: 'sub-1' }, 3600);
    await store.oidc.upsert('Session', 'with:colon', { uid: 'u-2', accountId: 'sub-1' });
    await store.oidc.upsert('Session', 's-short', { uid: 'u-3', accountId: 'sub-1' }, 60);
    await store.oidc.upsert('Session', 's-other', { uid: 'u-4', accountId: 'sub-2' }, 3600);
    await store.oidc.upsert('Session', 's-anonymous', { uid: 'u-5' }, 3600);
    await store.oidc.upsert('Grant', 'g-1', { accountId: 'sub-1', clientId: 'app' });
    await store.oidc.consume('Session', 's-1');
    clock.advance(60 * SECOND);
    const byId = (records: Array<{ id: string; payload: OidcPayload }>) => [...records].sort((a, b) => a.id.localeCompare(b.id));

    t.deepEqual(byId(await store.oidc.findByAccountId('Session', 'sub-1')), [
      { id: 's-1', payload: { uid: 'u-1', accountId: 'sub-1', consumed: Math.floor((clock.now() - 60 * SECOND) / 1000) } },
      { id: 'with:colon', payload: { uid: 'u-2', accountId: 'sub-1' } },
    ]);
    t.deepEqual(await store.oidc.findByAccountId('Grant', 'sub-1'), [{ id: 'g-1', payload: { accountId: 'sub-1', clientId: 'app' } }]);
    t.deepEqual(await store.oidc.findByAccountId('Session', 'sub-3'), []);

    // Saved again under another account (or none), a record follows its payload.
    await store.oidc.upsert('Session', 'with:colon', { uid: 'u-2', accountId: 'sub-2' });
    await store.oidc.upsert('Session', 's-1', { uid: 'u-1' }, 3600);
    t.deepEqual(await store.oidc.findByAccountId('Session', 'sub-1'), []);
    t.deepEqual(byId(await store.oidc.findByAccountId('Session', 'sub-2')).map((record) => record.id), ['s-other', 'with:colon']);
    await store.oidc.destroy('Session', 's-other');
    t.deepEqual((await store.oidc.findByAccountId('Session', 'sub-2')).map((record) => record.id), ['with:colon']);
  });

  it('take returns a live record once and removes it, and never returns an expired one', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.oidc.upsert('PushedAuthorizationRequest', 'par-1', { jti: 'par-1', uid: 'u-1' }, 60);
    await store.oidc.upsert('PushedAuthorizationRequest', 'par-2', { jti: 'par-2' }, 60);
    await store.oidc.upsert('AuthorizationCode', 'par-1', { jti: 'same id, other model' }, 600);
    await store.oidc.consume('PushedAuthorizationRequest', 'par-2');

    t.deepEqual(await store.oidc.take('PushedAuthorizationRequest', 'par-1'), { jti: 'par-1', uid: 'u-1' });
    t.is(await store.oidc.take('PushedAuthorizationRequest', 'par-1'), undefined);
    t.is(await store.oidc.find('PushedAuthorizationRequest', 'par-1'), undefined);
    t.is(await store.oidc.findByUid('PushedAuthorizationRequest', 'u-1'), undefined);
    t.deepEqual(await store.oidc.find('AuthorizationCode', 'par-1'), { jti: 'same id, other model' });
    t.is(await store.oidc.take('PushedAuthorizationRequest', 'never-existed'), undefined);

    clock.advance(60 * SECOND);
    t.is(await store.oidc.take('PushedAuthorizationRequest', 'par-2'), undefined, 'expired, so not taken');
    t.is(await store.oidc.find('PushedAuthorizationRequest', 'par-2'), undefined);
  });

  it('concurrent takes of one record through two store instances give it to exactly one', async (t) => {
    const { store, open } = await setUp(t, createLane);
    const other = await open();
    await store.oidc.upsert('PushedAuthorizationRequest', 'par-race', { jti: 'par-race' }, 600);

    const results = await Promise.all(Array.from({ length: 8 }, (_, index) => (index % 2 === 0 ? store : other).oidc.take('PushedAuthorizationRequest', 'par-race')));

    t.deepEqual(results.filter((result) => result !== undefined), [{ jti: 'par-race' }]);
    t.is(await other.oidc.find('PushedAuthorizationRequest', 'par-race'), undefined);
  });

  it('ids shaped like query operators are only ever compared as strings', async (t) => {
    const { store } = await setUp(t, createLane);
    const operator = { $ne: 'nothing' } as unknown as string;
    await store.oidc.upsert('Session', 's-1', { uid: 'u-1', grantId: 'g-1' }, 600);
    await store.accounts.create(account('sub-1', 'a@example.com'));
    await store.clients.create({ clientId: 'client-1', metadata: {} });

    t.is(await store.oidc.find('Session', operator), undefined);
    t.is(await store.oidc.find(operator, 's-1'), undefined);
    t.is(await store.oidc.findByUid('Session', operator), undefined);
    t.is(await store.oidc.findByUserCode('Session', operator), undefined);
    await store.oidc.destroy('Session', operator);
    await store.oidc.revokeByGrantId('Session', operator);
    await store.oidc.consume('Session', operator);
    t.deepEqual(await store.oidc.findByAccountId('Session', operator), []);
    t.is(await store.oidc.take('Session', operator), undefined);
    t.deepEqual(await store.oidc.find('Session', 's-1'), { uid: 'u-1', grantId: 'g-1' });

    t.is(await store.accounts.findByEmail(operator), undefined);
    t.is(await store.accounts.findBySub(operator), undefined);
    t.false(await store.accounts.update(operator, { disabled: true }));
    t.is(await store.accounts.countSignInAttempt(operator, new Date()), undefined);
    t.false(await store.accounts.consumeRecoveryCode(operator, operator));
    t.false(await store.accounts.advanceTotpStep(operator, 1));
    t.is(await store.clients.find(operator), undefined);
    t.false(await store.clients.delete(operator));
    t.is((await store.clients.list()).length, 1);
  });

  // --- accounts -----------------------------------------------------------------------------------

  it('an account can be created and then found by sub and by email', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const created = await store.accounts.create(account('sub-1', 'ada@example.com', { name: 'Ada Lovelace', givenName: 'Ada', familyName: 'Lovelace', emailVerified: true }));
    const bare = await store.accounts.create(account('sub-2', 'bob@example.com'));

    const expected = {
      ...account('sub-1', 'ada@example.com', { name: 'Ada Lovelace', givenName: 'Ada', familyName: 'Lovelace', emailVerified: true }),
      ...SECURITY_DEFAULTS,
      createdAt: new Date(clock.now()),
      updatedAt: new Date(clock.now()),
    };
    t.deepEqual(created, expected);
    t.deepEqual(await store.accounts.findBySub('sub-1'), expected);
    t.deepEqual(await store.accounts.findByEmail('ada@example.com'), expected);
    t.deepEqual(await store.accounts.findByEmail('bob@example.com'), bare);
    t.false('name' in bare || 'givenName' in bare || 'familyName' in bare, 'absent optional fields stay absent');
    t.false('lockedUntil' in bare || 'totp' in bare, 'so do the optional security fields');
    t.is(await store.accounts.findBySub('sub-3'), undefined);
    t.is(await store.accounts.findByEmail('carol@example.com'), undefined);
  });

  it('an account created without a password hash reads back without one, and update gives it one', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const { passwordHash: _none, ...hashless } = account('sub-1', 'ada@example.com', { name: 'Ada' });
    const created = await store.accounts.create(hashless);
    const expected = { ...hashless, ...SECURITY_DEFAULTS, createdAt: new Date(clock.now()), updatedAt: new Date(clock.now()) };
    t.deepEqual(created, expected);
    t.false('passwordHash' in created, 'absent, not an empty or "undefined" string');
    t.deepEqual(await store.accounts.findBySub('sub-1'), expected);
    t.deepEqual(await store.accounts.findByEmail('ada@example.com'), expected);
    t.deepEqual(await store.accounts.list(), [expected]);
    t.is((await store.accounts.countSignInAttempt('sub-1', new Date(clock.now())))?.attempts, 1, 'the security fields work as for any account');

    t.true(await store.accounts.update('sub-1', { passwordHash: '$argon2id$first-hash' }));
    t.is((await store.accounts.findBySub('sub-1'))?.passwordHash, '$argon2id$first-hash');
  });

  it('creating an account with a registered email fails with ERR_EMAIL_TAKEN', async (t) => {
    const { store } = await setUp(t, createLane);
    await store.accounts.create(account('sub-1', 'taken@example.com'));

    const error = await t.throwsAsync(store.accounts.create(account('sub-2', 'taken@example.com')), { code: 'ERR_EMAIL_TAKEN' });
    t.true(isAppError(error, 'ERR_EMAIL_TAKEN'));
    t.is(await store.accounts.findBySub('sub-2'), undefined);
    t.is((await store.accounts.findByEmail('taken@example.com'))?.sub, 'sub-1');
  });

  it('concurrent registrations of one email through two store instances let exactly one through', async (t) => {
    const { store, open } = await setUp(t, createLane);
    const other = await open();
    const attempts = Array.from({ length: 8 }, (_, index) =>
      (index % 2 === 0 ? store : other).accounts.create(account(`sub-${index}`, 'race@example.com')),
    );

    const results = await Promise.allSettled(attempts);
    const won = results.filter((result) => result.status === 'fulfilled');
    const lost = results.filter((result) => result.status === 'rejected');
    t.is(won.length, 1);
    t.true(lost.every((result) => isAppError(result.reason, 'ERR_EMAIL_TAKEN')));
    t.is((await store.accounts.list()).length, 1);
  });

  it('update changes only the given fields and reports whether the account exists', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const created = await store.accounts.create(account('sub-1', 'u@example.com', { name: 'Old Name', givenName: 'Old' }));
    clock.advance(30 * SECOND);

    t.true(await store.accounts.update('sub-1', { passwordHash: 'new-hash', disabled: true, name: 'New Name', givenName: undefined }));
    t.true(await store.accounts.update('sub-1', { emailVerified: true, familyName: 'Family' }));
    t.false(await store.accounts.update('sub-unknown', { disabled: true }));

    t.deepEqual(await store.accounts.findBySub('sub-1'), {
      ...created,
      passwordHash: 'new-hash',
      disabled: true,
      emailVerified: true,
      name: 'New Name',
      givenName: 'Old',
      familyName: 'Family',
      updatedAt: new Date(clock.now()),
    });
    t.is(await store.accounts.findBySub('sub-unknown'), undefined);
  });

  it('roles given at registration are kept, and the security fields start empty', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const roles = ['admin', 'auditor'];
    const created = await store.accounts.create(account('sub-1', 'admin@example.com', { roles }));
    roles.push('added later');

    const expected = { ...account('sub-1', 'admin@example.com'), ...SECURITY_DEFAULTS, roles: ['admin', 'auditor'], createdAt: new Date(clock.now()), updatedAt: new Date(clock.now()) };
    t.deepEqual(created, expected);
    t.deepEqual(await store.accounts.findBySub('sub-1'), expected);
  });

  it('update writes the security fields, and dates come back as Dates, inside passkeys and TOTP too', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const created = await store.accounts.create(account('sub-1', 'mfa@example.com'));
    const t0 = clock.now();
    clock.advance(SECOND);
    const changes = {
      roles: ['admin'],
      failedSignIns: 3,
      lockedUntil: new Date(t0 + 15 * 60 * SECOND),
      lockouts: 2,
      totp: { encryptedSecret: 'sealed-secret', confirmedAt: new Date(t0 - DAY), lastStep: 58_000_000 },
      recoveryCodes: ['hash-a', 'hash-b'],
      passkeys: [
        passkey('cred-1', t0 - 2 * DAY, { counter: 7, transports: ['usb', 'nfc'], lastUsedAt: new Date(t0 - DAY) }),
        passkey('cred-2', t0 - DAY),
      ],
      emailOtp: true,
    };

    t.true(await store.accounts.update('sub-1', changes));
    const updated = await store.accounts.findBySub('sub-1');

    t.deepEqual(updated, { ...created, ...changes, updatedAt: new Date(clock.now()) });
    t.true(updated?.lockedUntil instanceof Date);
    t.true(updated?.totp?.confirmedAt instanceof Date);
    t.true(updated?.passkeys[0]?.createdAt instanceof Date && updated.passkeys[0].lastUsedAt instanceof Date);
    t.false(updated !== undefined && ('transports' in updated.passkeys[1]! || 'lastUsedAt' in updated.passkeys[1]!), 'absent passkey fields stay absent');
    t.deepEqual(await store.accounts.findByEmail('mfa@example.com'), updated);
    t.deepEqual((await store.accounts.list())[0], updated);

    // A TOTP enrolment not yet confirmed has no confirmedAt.
    t.true(await store.accounts.update('sub-1', { totp: { encryptedSecret: 'new-secret', lastStep: 0 }, passkeys: [], recoveryCodes: [] }));
    const reenrolled = await store.accounts.findBySub('sub-1');
    t.deepEqual(reenrolled?.totp, { encryptedSecret: 'new-secret', lastStep: 0 });
    t.false(reenrolled?.totp !== undefined && 'confirmedAt' in reenrolled.totp);
    t.deepEqual(reenrolled?.passkeys, []);
    t.deepEqual(reenrolled?.recoveryCodes, []);
  });

  it('null clears an optional account field, undefined leaves it, and a required field cannot be cleared', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.accounts.create(account('sub-1', 'clear@example.com', { name: 'Full Name', givenName: 'Given', familyName: 'Family' }));
    await store.accounts.update('sub-1', {
      lockedUntil: new Date(clock.now() + 60 * SECOND),
      totp: { encryptedSecret: 'sealed', confirmedAt: new Date(clock.now()), lastStep: 1 },
      roles: ['admin'],
    });
    const before = await store.accounts.findBySub('sub-1');

    t.true(await store.accounts.update('sub-1', { lockedUntil: null, totp: null, name: null, givenName: undefined }));
    const cleared = await store.accounts.findBySub('sub-1');
    t.false(cleared !== undefined && ('lockedUntil' in cleared || 'totp' in cleared || 'name' in cleared));
    t.is(cleared?.givenName, 'Given');
    t.is(cleared?.familyName, 'Family');
    t.deepEqual(cleared?.roles, ['admin']);
    t.true(await store.accounts.update('sub-1', { givenName: null, familyName: null }));
    const bare = await store.accounts.findBySub('sub-1');
    t.false(bare !== undefined && ('givenName' in bare || 'familyName' in bare));

    // The type forbids clearing required fields; a caller that gets round it is still refused at run time.
    for (const changes of [{ passwordHash: null }, { roles: null }, { failedSignIns: null }, { passkeys: null }]) {
      await t.throwsAsync(store.accounts.update('sub-1', changes as unknown as AccountChanges), { instanceOf: TypeError }, JSON.stringify(changes));
    }
    t.is((await store.accounts.findBySub('sub-1'))?.passwordHash, before?.passwordHash);
  });

  it('importAccounts writes accounts whole, finds them by external id, and skips a taken email or an account changed since it was read', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const fields = (email: string, extra: Partial<ImportedAccountFields> = {}): ImportedAccountFields => ({
      email, emailVerified: true, passwordHash: '$2b$04$abcdefghijklmnopqrstuuNhTXo0zgSrcGd1NZ4vY0ZJc9kcA3N6e', roles: ['imported'], importDigest: `digest-${email}`, ...extra,
    });
    await store.accounts.create(account('native', 'native@example.com'));
    const createdAt = new Date('2019-01-02T03:04:05.000Z');
    t.deepEqual(await store.accounts.importAccounts([
      { kind: 'create', sub: 'imp-1', createdAt, fields: fields('one@example.com', { externalId: 'ext-1', name: 'One', givenName: 'O' }) },
      { kind: 'create', sub: 'imp-2', createdAt, fields: fields('native@example.com') },
      { kind: 'create', sub: 'imp-3', createdAt, fields: fields('three@example.com', { externalId: 'ext-1' }) },
      { kind: 'create', sub: 'imp-4', createdAt, fields: fields('four@example.com', { passwordHash: undefined }) },
    ]), [true, false, false, true], 'a taken email or external id is refused, the rest of the batch goes on');
    const one = await store.accounts.findByExternalId('ext-1');
    t.like(one, { sub: 'imp-1', email: 'one@example.com', emailVerified: true, roles: ['imported'], name: 'One', givenName: 'O', externalId: 'ext-1', importDigest: 'digest-one@example.com', disabled: false, failedSignIns: 0 });
    t.is(one?.createdAt.getTime(), createdAt.getTime());
    const four = await store.accounts.findByEmail('four@example.com');
    t.true(four !== undefined && !('passwordHash' in four), 'an account without a password');
    t.is(await store.accounts.findBySub('imp-3'), undefined);
    t.is(await store.accounts.findByExternalId('nobody'), undefined);

    clock.advance(SECOND);
    t.deepEqual(await store.accounts.importAccounts([
      { kind: 'update', sub: 'imp-1', expectedUpdatedAt: one!.updatedAt, fields: fields('moved@example.com', { externalId: 'ext-1', familyName: 'F' }) },
    ]), [true]);
    const moved = await store.accounts.findBySub('imp-1');
    t.like(moved, { email: 'moved@example.com', familyName: 'F', externalId: 'ext-1' });
    t.false(moved !== undefined && ('name' in moved || 'givenName' in moved), 'fields the record no longer has are cleared');
    clock.advance(SECOND);
    await store.accounts.update('imp-1', { name: 'Changed By Hand' });
    t.deepEqual(await store.accounts.importAccounts([
      { kind: 'update', sub: 'imp-1', expectedUpdatedAt: moved!.updatedAt, fields: fields('again@example.com', { externalId: 'ext-1' }) },
    ]), [false], 'a change made since the read wins');
    t.is((await store.accounts.findBySub('imp-1'))?.name, 'Changed By Hand');
  });

  it('countSignInAttempt counts before the check, and not while the account is locked', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.accounts.create(account('sub-1', 'attempt@example.com'));
    const now = new Date(clock.now());

    t.deepEqual(await store.accounts.countSignInAttempt('sub-1', now), { attempts: 1 });
    t.deepEqual(await store.accounts.countSignInAttempt('sub-1', now), { attempts: 2 });
    t.is(await store.accounts.countSignInAttempt('sub-unknown', now), undefined);
    t.false(await store.accounts.lockAfterFailures('sub-1', 3, new Date(now.getTime() + 60 * SECOND)), 'two are below a threshold of three');
    t.deepEqual(await store.accounts.countSignInAttempt('sub-1', now), { attempts: 3 });

    const until = new Date(now.getTime() + 60 * SECOND);
    t.true(await store.accounts.lockAfterFailures('sub-1', 3, until));
    t.false(await store.accounts.lockAfterFailures('sub-1', 3, until), 'the lock reset the count: a second caller does not lock again');
    const locked = await store.accounts.findBySub('sub-1');
    t.is(locked?.lockouts, 1);
    t.is(locked?.failedSignIns, 0);
    t.deepEqual(await store.accounts.countSignInAttempt('sub-1', now), { attempts: 0, lockedUntil: until }, 'a locked account is not counted');
    t.deepEqual(await store.accounts.countSignInAttempt('sub-1', new Date(until.getTime() + SECOND)), { attempts: 1 }, 'after the lock, counting starts over');
    t.is(await store.accounts.countSignInAttempt('sub-unknown', now), undefined, 'counting creates no account');
    t.is(await store.accounts.findBySub('sub-unknown'), undefined);
    t.true(await store.accounts.update('sub-1', { failedSignIns: 0 }));
    t.deepEqual(await store.accounts.countSignInAttempt('sub-1', new Date(until.getTime() + SECOND)), { attempts: 1 }, 'and after a success resets the count');
  });

  // On its own: a hundred writers at once would push the file's other cases past the store deadline.
  itOnItsOwn('a hundred concurrent sign-in attempts through two store instances are all counted, none refused as contention', async (t) => {
    const { store, open, clock } = await setUp(t, createLane);
    const other = await open();
    await store.accounts.create(account('sub-1', 'hundred@example.com'));
    const now = new Date(clock.now());
    const seen = await Promise.allSettled(Array.from({ length: 100 }, (_, index) => (index % 2 === 0 ? store : other).accounts.countSignInAttempt('sub-1', now)));
    t.deepEqual(seen.filter((outcome) => outcome.status === 'rejected').map((outcome) => String((outcome as PromiseRejectedResult).reason)), []);
    t.is((await store.accounts.findBySub('sub-1'))?.failedSignIns, 100);
  });

  it('acceptSignIn records a success only while the count is within the threshold and no lock is on', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.accounts.create(account('sub-1', 'accept@example.com'));
    const now = new Date(clock.now());
    for (let count = 0; count < 3; count += 1) await store.accounts.countSignInAttempt('sub-1', now);
    t.true(await store.accounts.acceptSignIn('sub-1', 3, now, { name: 'Signed In' }), 'three counted, threshold three');
    t.like(await store.accounts.findBySub('sub-1'), { failedSignIns: 0, lockouts: 0, name: 'Signed In' });

    for (let count = 0; count < 4; count += 1) await store.accounts.countSignInAttempt('sub-1', now);
    t.false(await store.accounts.acceptSignIn('sub-1', 3, now, { name: 'Burst' }), 'counted past the threshold: refused');
    t.like(await store.accounts.findBySub('sub-1'), { failedSignIns: 4, name: 'Signed In' }, 'and nothing written');

    const until = new Date(now.getTime() + 60 * SECOND);
    t.true(await store.accounts.lockAfterFailures('sub-1', 3, until));
    t.false(await store.accounts.acceptSignIn('sub-1', 3, now), 'a lock set meanwhile wins');
    t.true(await store.accounts.acceptSignIn('sub-1', 3, new Date(until.getTime() + SECOND)), 'after the lock, a success is recorded');
    t.is((await store.accounts.findBySub('sub-1'))?.lockedUntil, undefined);
    t.false(await store.accounts.acceptSignIn('sub-unknown', 3, now));
  });

  it('concurrent sign-in attempts through two store instances are all counted, and at most n of them see a count of n or less', async (t) => {
    const { store, open, clock } = await setUp(t, createLane);
    const other = await open();
    await store.accounts.create(account('sub-1', 'attempts@example.com'));
    const now = new Date(clock.now());

    const seen = await Promise.all(Array.from({ length: 10 }, (_, index) => (index % 2 === 0 ? store : other).accounts.countSignInAttempt('sub-1', now)));

    // Each sees at least its own number (exactly it on SQLite), so no two can both be checked as the fifth.
    const counts = seen.map((attempt) => attempt!.attempts).sort((a, b) => a - b);
    t.true(counts.every((count, index) => count >= index + 1 && count <= 10), JSON.stringify(counts));
    t.is((await store.accounts.findBySub('sub-1'))?.failedSignIns, 10, 'every attempt counted');
    const locks = await Promise.all(Array.from({ length: 6 }, (_, index) => (index % 2 === 0 ? store : other).accounts.lockAfterFailures('sub-1', 5, new Date(now.getTime() + 60 * SECOND))));
    t.is(locks.filter(Boolean).length, 1, 'exactly one caller locks');
  });

  it('recordPasskeyUse moves only that passkey, and never brings back a removed one', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.accounts.create(account('sub-1', 'passkey-use@example.com'));
    const createdAt = new Date(clock.now());
    const passkey = (id: string) => ({ credentialId: id, publicKey: `key-${id}`, counter: 1, name: `Passkey ${id}`, createdAt });
    await store.accounts.update('sub-1', { passkeys: [passkey('a'), passkey('b')] });
    const usedAt = new Date(clock.now() + SECOND);

    t.true(await store.accounts.recordPasskeyUse('sub-1', 'b', 7, usedAt));
    let passkeys = (await store.accounts.findBySub('sub-1'))!.passkeys;
    t.deepEqual(passkeys.map((key) => [key.credentialId, key.counter, key.lastUsedAt?.getTime()]), [['a', 1, undefined], ['b', 7, usedAt.getTime()]]);

    await store.accounts.update('sub-1', { passkeys: [passkey('a')] });
    t.false(await store.accounts.recordPasskeyUse('sub-1', 'b', 8, usedAt), 'a removed passkey is not written back');
    passkeys = (await store.accounts.findBySub('sub-1'))!.passkeys;
    t.deepEqual(passkeys.map((key) => key.credentialId), ['a']);
    t.false(await store.accounts.recordPasskeyUse('sub-unknown', 'a', 8, usedAt));
  });

  it('consumeRecoveryCode removes exactly that code, and only once', async (t) => {
    const { store } = await setUp(t, createLane);
    await store.accounts.create(account('sub-1', 'codes@example.com'));
    await store.accounts.create(account('sub-2', 'other@example.com'));
    await store.accounts.update('sub-1', { recoveryCodes: ['hash-a', 'hash-b', 'hash-c'] });
    await store.accounts.update('sub-2', { recoveryCodes: ['hash-b'] });

    t.true(await store.accounts.consumeRecoveryCode('sub-1', 'hash-b'));
    t.false(await store.accounts.consumeRecoveryCode('sub-1', 'hash-b'), 'a used code is gone');
    t.false(await store.accounts.consumeRecoveryCode('sub-1', 'hash-z'));
    t.false(await store.accounts.consumeRecoveryCode('sub-unknown', 'hash-a'));
    t.deepEqual((await store.accounts.findBySub('sub-1'))?.recoveryCodes, ['hash-a', 'hash-c']);
    t.deepEqual((await store.accounts.findBySub('sub-2'))?.recoveryCodes, ['hash-b'], "another account's codes are its own");
  });

  it('concurrent uses of one recovery code through two store instances let exactly one through', async (t) => {
    const { store, open } = await setUp(t, createLane);
    const other = await open();
    await store.accounts.create(account('sub-1', 'race@example.com'));
    await store.accounts.update('sub-1', { recoveryCodes: ['hash-a', 'hash-b', 'hash-c'] });

    const results = await Promise.all(Array.from({ length: 8 }, (_, index) => (index % 2 === 0 ? store : other).accounts.consumeRecoveryCode('sub-1', 'hash-b')));

    t.is(results.filter(Boolean).length, 1);
    t.deepEqual((await store.accounts.findBySub('sub-1'))?.recoveryCodes, ['hash-a', 'hash-c']);
  });

  it('advanceTotpStep accepts only a later step, and nothing without TOTP', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.accounts.create(account('sub-1', 'totp@example.com'));
    t.false(await store.accounts.advanceTotpStep('sub-1', 1), 'no TOTP yet');
    t.false(await store.accounts.advanceTotpStep('sub-unknown', 1));
    const confirmedAt = new Date(clock.now());
    await store.accounts.update('sub-1', { totp: { encryptedSecret: 'sealed', confirmedAt, lastStep: 100 } });

    t.false(await store.accounts.advanceTotpStep('sub-1', 100), 'the same step is a replay');
    t.false(await store.accounts.advanceTotpStep('sub-1', 99), 'an earlier step is a replay');
    t.true(await store.accounts.advanceTotpStep('sub-1', 102));
    t.false(await store.accounts.advanceTotpStep('sub-1', 101));
    t.deepEqual((await store.accounts.findBySub('sub-1'))?.totp, { encryptedSecret: 'sealed', confirmedAt, lastStep: 102 });

    await store.accounts.update('sub-1', { totp: null });
    t.false(await store.accounts.advanceTotpStep('sub-1', 200), 'removed TOTP accepts nothing');
  });

  it('concurrent advances to one TOTP step through two store instances let exactly one through', async (t) => {
    const { store, open } = await setUp(t, createLane);
    const other = await open();
    await store.accounts.create(account('sub-1', 'replay@example.com'));
    await store.accounts.update('sub-1', { totp: { encryptedSecret: 'sealed', lastStep: 10 } });

    const results = await Promise.all(Array.from({ length: 8 }, (_, index) => (index % 2 === 0 ? store : other).accounts.advanceTotpStep('sub-1', 11)));

    t.is(results.filter(Boolean).length, 1);
    t.is((await other.accounts.findBySub('sub-1'))?.totp?.lastStep, 11);
  });

  it('list returns accounts oldest first and pages with limit and offset', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    // Subs in reverse alphabetical order, so sorting by sub would give the wrong answer.
    for (const sub of ['e', 'd', 'c', 'b', 'a']) {
      await store.accounts.create(account(sub, `${sub}@example.com`));
      clock.advance(SECOND);
    }
    const subs = async (options?: { limit?: number; offset?: number }) => (await store.accounts.list(options)).map((a) => a.sub);

    t.deepEqual(await subs(), ['e', 'd', 'c', 'b', 'a']);
    t.deepEqual(await subs({ limit: 2 }), ['e', 'd']);
    t.deepEqual(await subs({ limit: 2, offset: 2 }), ['c', 'b']);
    t.deepEqual(await subs({ offset: 4 }), ['a']);
    t.deepEqual(await subs({ limit: 0 }), []);
  });

  it('search by email prefix answers email order page by page, and nothing for a prefix no email has', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    // Created in an order unlike the email order, so a page in creation order would be wrong.
    for (const [sub, email] of [['s1', 'bob@example.com'], ['s2', 'ann@example.com'], ['s3', 'anna@example.com'], ['s4', 'al@example.com'], ['s5', 'ann@example.org']]) {
      await store.accounts.create(account(sub!, email!));
      clock.advance(SECOND);
    }
    const emails = (page: { accounts: Account[] }) => page.accounts.map((found) => found.email);

    const first = await store.accounts.search({ emailPrefix: 'ann', limit: 2 });
    t.deepEqual(emails(first), ['ann@example.com', 'ann@example.org']);
    t.truthy(first.next);
    const second = await store.accounts.search({ emailPrefix: 'ann', limit: 2, cursor: first.next! });
    t.deepEqual(emails(second), ['anna@example.com']);
    t.is(second.next, undefined);

    t.deepEqual(emails(await store.accounts.search({ emailPrefix: 'a', limit: 10 })), ['al@example.com', 'ann@example.com', 'ann@example.org', 'anna@example.com']);
    t.deepEqual(emails(await store.accounts.search({ emailPrefix: 'ann@example.c', limit: 10 })), ['ann@example.com']);
    t.deepEqual(await store.accounts.search({ emailPrefix: 'carol', limit: 10 }), { accounts: [] });
    t.deepEqual(await store.accounts.search({ emailPrefix: 'ann', limit: 0 }), { accounts: [] });
    // The whole account, as findBySub reads it.
    t.deepEqual((await store.accounts.search({ emailPrefix: 'bob', limit: 1 })).accounts, [(await store.accounts.findBySub('s1'))!]);
  });

  it('search by part of an email, role and status answers oldest first page by page; count counts all, or the locked ones', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    for (const sub of ['e', 'd', 'c', 'b', 'a']) {
      await store.accounts.create(account(sub, `${sub}.team@example.com`, sub === 'd' || sub === 'b' ? { roles: ['auditor'] } : {}));
      clock.advance(SECOND);
    }
    await store.accounts.create(account('x', 'x.other@example.com', { roles: ['auditor'] }));
    await store.accounts.update('c', { disabled: true });
    // Locked as well as disabled: counted as disabled, not locked.
    await store.accounts.update('c', { lockedUntil: new Date(clock.now() + 60 * SECOND) });
    await store.accounts.update('b', { lockedUntil: new Date(clock.now() + 60 * SECOND) });
    // A lock that has run out leaves the account active.
    await store.accounts.update('a', { lockedUntil: new Date(clock.now() - SECOND) });
    const subs = (page: { accounts: Account[] }) => page.accounts.map((found) => found.sub);

    const first = await store.accounts.search({ query: '.team@', limit: 2 });
    t.deepEqual(subs(first), ['e', 'd']);
    const second = await store.accounts.search({ query: '.team@', limit: 2, cursor: first.next! });
    t.deepEqual(subs(second), ['c', 'b']);
    const third = await store.accounts.search({ query: '.team@', limit: 2, cursor: second.next! });
    t.deepEqual(subs(third), ['a']);
    t.is(third.next, undefined);

    t.deepEqual(subs(await store.accounts.search({ role: 'auditor', limit: 10 })), ['d', 'b', 'x']);
    t.deepEqual(subs(await store.accounts.search({ role: 'auditor', query: 'team', limit: 10 })), ['d', 'b']);
    t.deepEqual(subs(await store.accounts.search({ status: 'disabled', limit: 10 })), ['c']);
    t.deepEqual(subs(await store.accounts.search({ status: 'locked', limit: 10 })), ['b']);
    t.deepEqual(subs(await store.accounts.search({ status: 'active', query: 'team', limit: 10 })), ['e', 'd', 'a']);
    t.deepEqual(subs(await store.accounts.search({ status: 'active', at: new Date(clock.now() + 120 * SECOND), role: 'auditor', limit: 10 })), ['d', 'b', 'x']);
    // Wildcards of SQL and regular expressions are plain characters here.
    t.deepEqual(await store.accounts.search({ query: '%', limit: 10 }), { accounts: [] });
    t.deepEqual(await store.accounts.search({ query: '.*', limit: 10 }), { accounts: [] });
    t.deepEqual(subs(await store.accounts.search({ limit: 10 })), ['e', 'd', 'c', 'b', 'a', 'x']);

    t.is(await store.accounts.count(), 6);
    t.is(await store.accounts.count({ lockedAt: new Date(clock.now()) }), 1);
    t.is(await store.accounts.count({ lockedAt: new Date(clock.now() + 120 * SECOND) }), 0);
  });

  it('search by part of a name finds the full, given or family name, whatever its case, as well as emails', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    await store.accounts.create(account('ada', 'countess@example.com', { name: 'Ada King', givenName: 'Augusta Ada', familyName: 'Lovelace' }));
    clock.advance(SECOND);
    await store.accounts.create(account('grace', 'grace@example.com', { givenName: 'Grace', familyName: 'Hopper' }));
    clock.advance(SECOND);
    await store.accounts.create(account('lovelace-fan', 'lovelace.fan@example.com'));
    const subs = async (query: string) => (await store.accounts.search({ query, limit: 10 })).accounts.map((found) => found.sub);

    t.deepEqual(await subs('LOVELACE'), ['ada', 'lovelace-fan'], 'a family name, in any case, and an email');
    t.deepEqual(await subs('augusta'), ['ada'], 'a given name');
    t.deepEqual(await subs('ada k'), ['ada'], 'the full name');
    t.deepEqual(await subs('hopper'), ['grace']);
    t.deepEqual(await subs('nobody'), []);
  });

  it('search refuses a cursor it did not give, or one of a search in another order', async (t) => {
    const { store } = await setUp(t, createLane);
    await store.accounts.create(account('a', 'a@example.com'));
    await store.accounts.create(account('b', 'b@example.com'));
    const byPrefix = await store.accounts.search({ emailPrefix: 'a', limit: 1 });
    const oldestFirst = await store.accounts.search({ limit: 1 });
    t.truthy(oldestFirst.next);
    for (const cursor of ['forged', '', Buffer.from('["e",1]').toString('base64url'), oldestFirst.next!]) {
      await t.throwsAsync(store.accounts.search({ emailPrefix: 'a', limit: 1, cursor }), { code: 'ERR_INVALID_INPUT' });
    }
    t.is(byPrefix.next, undefined);
  });

  // --- clients ------------------------------------------------------------------------------------

  it('a client can be created, found, listed, updated and deleted, and each change bumps the clients revision', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const before = await store.revisions.get('clients');
    const metadata = { client_id: 'app-1', redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'client_secret_basic', jwks: {} };

    const created = await store.clients.create({ clientId: 'app-1', metadata });
    t.deepEqual(created, { clientId: 'app-1', metadata, createdAt: new Date(clock.now()) });
    t.deepEqual(await store.clients.find('app-1'), created);
    clock.advance(SECOND);
    const second = await store.clients.create({ clientId: 'app-0', metadata: { client_id: 'app-0' } });
    t.deepEqual(await store.clients.list(), [created, second], 'oldest first');
    t.is(await store.revisions.get('clients'), before + 2);

    t.true(await store.clients.update('app-1', { client_id: 'app-1', grant_types: ['client_credentials'] }));
    t.deepEqual((await store.clients.find('app-1'))?.metadata, { client_id: 'app-1', grant_types: ['client_credentials'] }, 'metadata is replaced, not merged');
    t.is(await store.revisions.get('clients'), before + 3);

    t.true(await store.clients.delete('app-1'));
    t.is(await store.clients.find('app-1'), undefined);
    t.deepEqual(await store.clients.list(), [second]);
    t.is(await store.revisions.get('clients'), before + 4);
  });

  it('creating a client with a taken id fails with ERR_CLIENT_EXISTS and changes nothing', async (t) => {
    const { store } = await setUp(t, createLane);
    await store.clients.create({ clientId: 'app-1', metadata: { version: 1 } });
    const revision = await store.revisions.get('clients');

    await t.throwsAsync(store.clients.create({ clientId: 'app-1', metadata: { version: 2 } }), { code: 'ERR_CLIENT_EXISTS' });
    t.deepEqual((await store.clients.find('app-1'))?.metadata, { version: 1 });
    t.is(await store.revisions.get('clients'), revision);
  });

  it('concurrent creations of one client id through two store instances let exactly one through', async (t) => {
    const { store, open } = await setUp(t, createLane);
    const other = await open();
    const before = await store.revisions.get('clients');
    const attempts = Array.from({ length: 8 }, (_, index) => (index % 2 === 0 ? store : other).clients.create({ clientId: 'race', metadata: { index } }));

    const results = await Promise.allSettled(attempts);
    t.is(results.filter((result) => result.status === 'fulfilled').length, 1);
    t.true(results.every((result) => result.status === 'fulfilled' || isAppError(result.reason, 'ERR_CLIENT_EXISTS')));
    t.is(await store.revisions.get('clients'), before + 1);
  });

  it('updating or deleting an unknown client returns false and bumps nothing', async (t) => {
    const { store } = await setUp(t, createLane);
    const revision = await store.revisions.get('clients');

    t.false(await store.clients.update('ghost', { client_id: 'ghost' }));
    t.false(await store.clients.delete('ghost'));
    t.is(await store.clients.find('ghost'), undefined);
    t.is(await store.revisions.get('clients'), revision);
  });

  // --- resource servers ---------------------------------------------------------------------------

  it('a resource server can be created, found, listed oldest first and deleted, and each change bumps the resources revision', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const before = await store.revisions.get('resources');
    const clientsBefore = await store.revisions.get('clients');

    const created = await store.resources.create(resource('https://api.example/z', { name: 'Orders API', scopes: ['orders:read'], format: 'opaque', ttlSeconds: 300 }));
    t.deepEqual(created, { audience: 'https://api.example/z', name: 'Orders API', scopes: ['orders:read'], format: 'opaque', ttlSeconds: 300, createdAt: new Date(clock.now()) });
    t.deepEqual(await store.resources.find('https://api.example/z'), created);
    clock.advance(SECOND);
    // Alphabetically first, created second: list order is by age, not by audience.
    const second = await store.resources.create(resource('https://api.example/a', { scopes: [] }));
    t.false('name' in second, 'an absent name stays absent');
    t.deepEqual(await store.resources.find('https://api.example/a'), second);
    t.deepEqual(await store.resources.list(), [created, second]);
    t.is(await store.revisions.get('resources'), before + 2);

    t.true(await store.resources.delete('https://api.example/z'));
    t.is(await store.resources.find('https://api.example/z'), undefined);
    t.deepEqual(await store.resources.list(), [second]);
    t.is(await store.revisions.get('resources'), before + 3);
    t.is(await store.revisions.get('clients'), clientsBefore, 'resource writes leave the clients revision alone');
  });

  it('a resource server keeps the roles its scopes are limited to, even for scopes with dots and dollars, and has none when given none', async (t) => {
    const { store } = await setUp(t, createLane);
    const scopeRoles = { 'orders.write': ['admin', 'ops'], '$billing': ['finance'] };
    const created = await store.resources.create(resource('https://api.example/roles', { scopes: ['orders.write', '$billing', 'read'], scopeRoles }));
    t.deepEqual(created.scopeRoles, scopeRoles);
    t.deepEqual((await store.resources.find('https://api.example/roles'))?.scopeRoles, scopeRoles);
    t.deepEqual((await store.resources.list()).find((r) => r.audience === 'https://api.example/roles')?.scopeRoles, scopeRoles);
    const plain = await store.resources.create(resource('https://api.example/plain'));
    t.false('scopeRoles' in plain);
    t.false('scopeRoles' in (await store.resources.find('https://api.example/plain'))!);
  });

  it('a resource server keeps the clients it accepts in the code flow, and names none when given none', async (t) => {
    const { store } = await setUp(t, createLane);
    const created = await store.resources.create(resource('https://api.example/named', { clients: ['rp-1', 'rp-2'] }));
    t.deepEqual(created.clients, ['rp-1', 'rp-2']);
    t.deepEqual((await store.resources.find('https://api.example/named'))?.clients, ['rp-1', 'rp-2']);
    t.deepEqual((await store.resources.list()).find((r) => r.audience === 'https://api.example/named')?.clients, ['rp-1', 'rp-2']);
    const open = await store.resources.create(resource('https://api.example/open'));
    t.false('clients' in open);
    t.false('clients' in (await store.resources.find('https://api.example/open'))!);
  });

  it('a resource server keeps the signing algorithm of its JWT access tokens, and has none when given none', async (t) => {
    const { store } = await setUp(t, createLane);
    const created = await store.resources.create(resource('https://api.example/es256', { scopes: ['read'], signingAlg: 'ES256' }));
    t.is(created.signingAlg, 'ES256');
    t.is((await store.resources.find('https://api.example/es256'))?.signingAlg, 'ES256');
    t.is((await store.resources.list()).find((r) => r.audience === 'https://api.example/es256')?.signingAlg, 'ES256');
    await store.resources.create(resource('https://api.example/default'));
    t.false('signingAlg' in (await store.resources.find('https://api.example/default'))!);
  });

  it('a created resource server does not change when the caller later changes its input', async (t) => {
    const { store } = await setUp(t, createLane);
    const input = resource('https://api.example', { scopes: ['read'] });
    const created = await store.resources.create(input);
    input.scopes.push('admin');

    t.deepEqual(created.scopes, ['read']);
    t.deepEqual((await store.resources.find('https://api.example'))?.scopes, ['read']);
  });

  it('creating a resource server with a taken audience fails with ERR_RESOURCE_EXISTS and changes nothing', async (t) => {
    const { store } = await setUp(t, createLane);
    const original = await store.resources.create(resource('https://api.example', { name: 'First' }));
    const revision = await store.revisions.get('resources');

    const error = await t.throwsAsync(store.resources.create(resource('https://api.example', { name: 'Second', format: 'opaque' })), { code: 'ERR_RESOURCE_EXISTS' });
    t.true(isAppError(error, 'ERR_RESOURCE_EXISTS') && error.status === 409);
    t.deepEqual(await store.resources.list(), [original]);
    t.is(await store.revisions.get('resources'), revision);
  });

  it('concurrent creations of one audience through two store instances let exactly one through', async (t) => {
    const { store, open } = await setUp(t, createLane);
    const other = await open();
    const before = await store.revisions.get('resources');
    const attempts = Array.from({ length: 8 }, (_, index) =>
      (index % 2 === 0 ? store : other).resources.create(resource('https://race.example', { name: `attempt-${index}` })),
    );

    const results = await Promise.allSettled(attempts);
    t.is(results.filter((result) => result.status === 'fulfilled').length, 1);
    t.true(results.every((result) => result.status === 'fulfilled' || isAppError(result.reason, 'ERR_RESOURCE_EXISTS')));
    t.is((await store.resources.list()).length, 1);
    t.is(await store.revisions.get('resources'), before + 1);
  });

  it('deleting an unknown resource server returns false and bumps nothing', async (t) => {
    const { store } = await setUp(t, createLane);
    const revision = await store.revisions.get('resources');

    t.false(await store.resources.delete('https://ghost.example'));
    t.is(await store.resources.find('https://ghost.example'), undefined);
    t.deepEqual(await store.resources.list(), []);
    t.is(await store.revisions.get('resources'), revision);
  });

  it('audiences are compared exactly as strings: no case folding, no trailing-slash match, no query operators', async (t) => {
    const { store } = await setUp(t, createLane);
    await store.resources.create(resource('https://api.example/v1'));
    const revision = await store.revisions.get('resources');
    const near = ['https://api.example/v1/', 'HTTPS://API.EXAMPLE/V1', 'https://api.example/v', ' https://api.example/v1', 'https://api.example/v_'];
    const operators = [{ $ne: 'nothing' }, { $regex: '.*' }, { $exists: true }] as unknown as string[];

    for (const audience of [...near, ...operators]) {
      t.is(await store.resources.find(audience), undefined, `find ${JSON.stringify(audience)}`);
      t.false(await store.resources.delete(audience), `delete ${JSON.stringify(audience)}`);
    }
    t.is((await store.resources.list()).length, 1);
    t.is(await store.revisions.get('resources'), revision);

    // A near-miss is a different audience, so it can be created alongside.
    await store.resources.create(resource('https://api.example/v1/'));
    t.deepEqual((await store.resources.list()).map((r) => r.audience).sort(), ['https://api.example/v1', 'https://api.example/v1/']);
  });

  // --- upstream providers and identities ----------------------------------------------------------

  it('an upstream provider can be created, found, listed oldest first and deleted, and each change bumps the upstreams revision', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const before = await store.revisions.get('upstreams');
    const clientsBefore = await store.revisions.get('clients');
    const settings = { name: 'Zeta ID', kind: 'oidc', issuer: 'https://id.example', clientId: 'tessera', scopes: ['openid', 'email'], trustEmail: false };
    const created = await store.upstreams.create({ id: 'zeta', settings, encryptedClientSecret: 'v1.sealed' });
    t.deepEqual(created, { id: 'zeta', settings, encryptedClientSecret: 'v1.sealed', createdAt: new Date(clock.now()) });
    t.deepEqual(await store.upstreams.find('zeta'), created);
    clock.advance(SECOND);
    const second = await store.upstreams.create({ id: 'alpha', settings: { ...settings, name: 'Alpha' }, encryptedClientSecret: 'v1.other' });
    t.deepEqual(await store.upstreams.list(), [created, second]);
    t.is(await store.revisions.get('upstreams'), before + 2);
    await t.throwsAsync(store.upstreams.create({ id: 'zeta', settings, encryptedClientSecret: 'v1.again' }), { code: 'ERR_UPSTREAM_EXISTS' });
    t.deepEqual(await store.upstreams.find('zeta'), created, 'a refused create leaves the first one as it was');

    t.true(await store.upstreams.delete('zeta'));
    t.false(await store.upstreams.delete('zeta'));
    t.is(await store.upstreams.find('zeta'), undefined);
    t.deepEqual(await store.upstreams.list(), [second]);
    t.is(await store.revisions.get('upstreams'), before + 3);
    t.is(await store.revisions.get('clients'), clientsBefore, 'upstream writes leave the clients revision alone');
  });

  it('an upstream identity belongs to one account only, keyed by upstream and subject, and is listed by account', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const at = new Date(clock.now());
    const first = await store.identities.create({ upstreamId: 'google', subject: '1001', accountSub: 'sub-1', email: 'ada@example.com', createdAt: at });
    t.deepEqual(first, { upstreamId: 'google', subject: '1001', accountSub: 'sub-1', email: 'ada@example.com', createdAt: at });
    t.deepEqual(await store.identities.find('google', '1001'), first);
    t.is(await store.identities.find('github', '1001'), undefined, 'the same subject at another upstream is another identity');
    const later = new Date(clock.now() + SECOND);
    const second = await store.identities.create({ upstreamId: 'github', subject: '1001', accountSub: 'sub-1', createdAt: later });
    t.false('email' in second);
    await store.identities.create({ upstreamId: 'google', subject: '2002', accountSub: 'sub-2', createdAt: at });

    // Concurrent links of one upstream identity: exactly one wins, whichever account asked.
    const attempts = await Promise.allSettled(['sub-3', 'sub-4', 'sub-5'].map((accountSub) =>
      store.identities.create({ upstreamId: 'gitlab', subject: '7', accountSub, createdAt: at })));
    t.is(attempts.filter((attempt) => attempt.status === 'fulfilled').length, 1);
    for (const attempt of attempts) if (attempt.status === 'rejected') t.true(isAppError(attempt.reason, 'ERR_IDENTITY_TAKEN'));

    t.deepEqual(await store.identities.listByAccount('sub-1'), [first, second]);
    t.false(await store.identities.delete('google', '1001', 'sub-2'), 'an identity is only removed from the account it belongs to');
    t.true(await store.identities.delete('google', '1001', 'sub-1'));
    t.deepEqual(await store.identities.listByAccount('sub-1'), [second]);
    t.deepEqual((await store.identities.listByAccount('sub-2')).map((identity) => identity.subject), ['2002']);
  });

  // --- keys ---------------------------------------------------------------------------------------

  it('the first rotation stores the keys as current and bumps the keys revision', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const before = await store.revisions.get('keys');
    const t0 = clock.now();

    await store.keys.rotate([key('sig-1', 'sig', t0), key('cookie-1', 'cookie', t0)], retirement(t0, DAY));

    const listed = await store.keys.list();
    t.deepEqual(
      [...listed].sort((a, b) => a.kid.localeCompare(b.kid)),
      [key('cookie-1', 'cookie', t0), key('sig-1', 'sig', t0)],
    );
    t.is(await store.revisions.get('keys'), before + 1);
  });

  it('a rotation retires only the current keys of the uses it adds', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const t0 = clock.now();
    await store.keys.rotate([key('sig-1', 'sig', t0), key('cookie-1', 'cookie', t0)], retirement(t0, DAY));
    const t1 = t0 + SECOND;
    // Two signing keys at once (one per algorithm family), as the key service rotates them.
    await store.keys.rotate([key('sig-2', 'sig', t1), { ...key('sig-2-rs', 'sig', t1), alg: 'RS256' }], retirement(t1, DAY));
    const currentKids = async () => (await store.keys.list()).filter((k) => k.retiredAt === undefined).map((k) => k.kid).sort();
    t.deepEqual(await currentKids(), ['cookie-1', 'sig-2', 'sig-2-rs'], 'keys added together never retire each other');
    const t2 = t0 + 2 * SECOND;
    await store.keys.rotate([key('sig-3', 'sig', t2)], retirement(t2, DAY));

    const byKid = new Map((await store.keys.list()).map((k) => [k.kid, k]));
    t.deepEqual(byKid.get('sig-1'), { ...key('sig-1', 'sig', t0), ...retirement(t1, DAY) }, 'an already retired key keeps its first retirement');
    t.deepEqual(byKid.get('sig-2'), { ...key('sig-2', 'sig', t1), ...retirement(t2, DAY) });
    t.deepEqual(byKid.get('sig-2-rs'), { ...key('sig-2-rs', 'sig', t1), alg: 'RS256', ...retirement(t2, DAY) });
    t.deepEqual(byKid.get('sig-3'), key('sig-3', 'sig', t2));
    t.deepEqual(byKid.get('cookie-1'), key('cookie-1', 'cookie', t0), 'a sig rotation leaves cookie keys alone');

    const t3 = t0 + 3 * SECOND;
    await store.keys.rotate([key('cookie-2', 'cookie', t3)], retirement(t3, DAY));
    t.deepEqual(await currentKids(), ['cookie-2', 'sig-3']);
  });

  it('key list leaves out expired keys and returns the rest oldest first', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const t0 = clock.now();
    await store.keys.rotate([key('k-a', 'sig', t0)], retirement(t0, DAY));
    await store.keys.rotate([key('k-b', 'sig', t0 + SECOND)], retirement(t0 + SECOND, 10 * SECOND));
    await store.keys.rotate([key('k-c', 'sig', t0 + 2 * SECOND)], retirement(t0 + 2 * SECOND, 20 * SECOND));
    const kids = async () => (await store.keys.list()).map((k) => k.kid);

    t.deepEqual(await kids(), ['k-a', 'k-b', 'k-c']);
    clock.advance(11 * SECOND);
    t.deepEqual(await kids(), ['k-b', 'k-c'], 'k-a left the list when its expiry passed');
    clock.advance(11 * SECOND);
    t.deepEqual(await kids(), ['k-c']);
  });

  it('concurrent rotations through two store instances leave the keys of exactly one rotation current', async (t) => {
    const { store, open, clock } = await setUp(t, createLane);
    const other = await open();
    const before = await store.revisions.get('keys');
    const t0 = clock.now();
    // Like the key service: one signing key per algorithm family, plus a cookie key, per rotation.
    const rotation = (index: number) => [
      { ...key(`sig-rs-${index}`, 'sig', t0 + index), alg: 'RS256' },
      key(`sig-es-${index}`, 'sig', t0 + index),
      key(`cookie-${index}`, 'cookie', t0 + index),
    ];

    await Promise.all(
      Array.from({ length: 6 }, (_, index) => (index % 2 === 0 ? store : other).keys.rotate(rotation(index), retirement(t0 + index, DAY))),
    );

    const listed = await store.keys.list();
    t.is(listed.length, 18);
    const current = listed.filter((k) => k.retiredAt === undefined).map((k) => k.kid);
    const winner = current[0]?.replace(/^.*-/, '');
    t.deepEqual(current.sort(), [`cookie-${winner}`, `sig-es-${winner}`, `sig-rs-${winner}`]);
    t.is(await store.revisions.get('keys'), before + 6);
  });

  // --- rate limits --------------------------------------------------------------------------------
  // The limiters count in wall-clock time (rate-limiter-flexible's own clock), so these tests wait
  // briefly instead of moving the injected clock.

  it('a rate limiter allows `points` actions per key, then rejects with the time until the next', async (t) => {
    const { store } = await setUp(t, createLane);
    const limiter = store.rateLimiter({ keyPrefix: 'signin:ip', points: 3, duration: 60 });

    const allowed = [];
    for (let index = 0; index < 3; index += 1) allowed.push(await limiter.consume('198.51.100.7'));
    t.deepEqual(allowed.map((res) => [res.consumedPoints, res.remainingPoints]), [[1, 2], [2, 1], [3, 0]]);
    t.true(allowed[0]!.isFirstInDuration);

    const rejected = await limitRejection(t, limiter.consume('198.51.100.7'));
    t.is(rejected.remainingPoints, 0);
    t.true(rejected.msBeforeNext > 0 && rejected.msBeforeNext <= 60 * SECOND, String(rejected.msBeforeNext));

    t.is((await limiter.consume('203.0.113.9')).remainingPoints, 2, 'other keys count separately');
    const otherLimit = store.rateLimiter({ keyPrefix: 'signin:account', points: 3, duration: 60 });
    t.is((await otherLimit.consume('198.51.100.7')).remainingPoints, 2, 'so do other prefixes');
    t.is((await limiter.get('198.51.100.7'))?.consumedPoints, 4);
    t.true(await limiter.delete('198.51.100.7'));
    t.is(await limiter.get('198.51.100.7'), null);
    t.is((await limiter.consume('198.51.100.7')).consumedPoints, 1, 'a deleted key starts over');
  });

  it('two store instances on one database share a rate limit, and a burst through both never gets past it', async (t) => {
    const { store, open } = await setUp(t, createLane);
    const other = await open();
    const options = { keyPrefix: 'shared', points: 6, duration: 60 };
    const limiters = [store.rateLimiter(options), other.rateLimiter(options)];

    const counted = [];
    for (let index = 0; index < 6; index += 1) counted.push((await limiters[index % 2]!.consume('one-by-one')).consumedPoints);
    t.deepEqual(counted, [1, 2, 3, 4, 5, 6]);
    await limitRejection(t, limiters[0]!.consume('one-by-one'));
    await limitRejection(t, limiters[1]!.consume('one-by-one'));

    const burst = await Promise.allSettled(Array.from({ length: 10 }, (_, index) => limiters[index % 2]!.consume('burst')));
    t.true(burst.every((result) => result.status === 'fulfilled' || result.reason instanceof RateLimiterRes));
    // Exactly 6 on MongoDB and SQLite; an emulator that reads findAndModify's result apart from
    // the update may report a later count and let fewer through, never more.
    const allowed = burst.filter((result) => result.status === 'fulfilled').length;
    t.true(allowed >= 1 && allowed <= 6, `${allowed} allowed`);
    t.is((await limiters[1]!.get('burst'))?.consumedPoints, 10, 'no action went uncounted');
  });

  itOnItsOwn('a rate limit starts over once its window has passed', async (t) => {
    const { store } = await setUp(t, createLane);
    const limiter = store.rateLimiter({ keyPrefix: 'window', points: 1, duration: 1 });
    await limiter.consume('key');
    const rejected = await limitRejection(t, limiter.consume('key'));

    await delay(rejected.msBeforeNext + 100);

    t.is(await limiter.get('key'), null, 'the expired counter reads as absent');
    const res = await limiter.consume('key');
    t.is(res.consumedPoints, 1);
    t.true(res.isFirstInDuration);
  });

  itOnItsOwn('a key over the limit stays blocked for blockDuration, beyond its window and for every instance', async (t) => {
    const { store, open } = await setUp(t, createLane);
    const other = await open();
    const options = { keyPrefix: 'blocking', points: 1, duration: 1, blockDuration: 3 };
    const limiter = store.rateLimiter(options);
    await limiter.consume('key');

    const blocked = await limitRejection(t, limiter.consume('key'));
    t.true(blocked.msBeforeNext > 2 * SECOND, `blocked for the block duration, not the window: ${blocked.msBeforeNext}`);

    await delay(1200);
    const stillBlocked = await limitRejection(t, other.rateLimiter(options).consume('key'));
    t.true(stillBlocked.msBeforeNext > 0 && stillBlocked.msBeforeNext < 2 * SECOND, String(stillBlocked.msBeforeNext));
  });

  // --- revisions, ping, durability -----------------------------------------------------------------

  it('an unknown revision reads 0 and bump returns each new value', async (t) => {
    const { store } = await setUp(t, createLane);
    t.is(await store.revisions.get('clients'), 0);
    t.is(await store.revisions.bump('clients'), 1);
    t.is(await store.revisions.bump('clients'), 2);
    t.is(await store.revisions.get('clients'), 2);
    t.is(await store.revisions.get('keys'), 0, 'revisions are counted per name');
  });

  it('concurrent bumps through two store instances are never lost', async (t) => {
    const { store, open } = await setUp(t, createLane);
    const other = await open();
    const values = await Promise.all(Array.from({ length: 20 }, (_, index) => (index % 2 === 0 ? store : other).revisions.bump('keys')));

    t.deepEqual([...values].sort((a, b) => a - b), Array.from({ length: 20 }, (_, index) => index + 1));
    t.is(await other.revisions.get('keys'), 20);
  });

  it('ping succeeds while the store is open and fails with ERR_STORE_UNAVAILABLE once it is closed', async (t) => {
    const { store } = await setUp(t, createLane);
    await t.notThrowsAsync(store.ping());
    await store.close();
    await t.throwsAsync(store.ping(), { code: 'ERR_STORE_UNAVAILABLE' });
    await t.notThrowsAsync(store.close(), 'closing twice is harmless');
  });

  // --- audit trail ------------------------------------------------------------------------------

  it('audit records come back newest first, filtered by account, client, type and time, each field as written', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const t0 = clock.now();
    const full = auditRecord('e1', 'signin.failed', t0, {
      sub: 'sub-1', clientId: 'app-1', ip: '192.0.2.1', requestId: 'req-1', details: { reason: 'wrong_password', scopes: ['openid', 'email'], count: 2, ok: false },
    });
    await store.audit.append([
      full,
      auditRecord('e2', 'signin.succeeded', t0 + SECOND, { sub: 'sub-1', clientId: 'app-2' }),
      auditRecord('e3', 'client.created', t0 + 2 * SECOND, { clientId: 'app-1' }),
      auditRecord('e4', 'signin.failed', t0 + 3 * SECOND, { sub: 'sub-2' }),
    ]);
    await store.audit.append([]);
    const ids = async (query: Partial<AuditQuery>) => (await store.audit.query({ limit: 10, ...query })).map((record) => record.id);

    t.deepEqual(await ids({}), ['e4', 'e3', 'e2', 'e1']);
    t.deepEqual((await store.audit.query({ limit: 10, clientId: 'app-1', types: ['signin.failed'] })), [full]);
    t.deepEqual(await ids({ sub: 'sub-1' }), ['e2', 'e1']);
    t.deepEqual(await ids({ clientId: 'app-1' }), ['e3', 'e1']);
    t.deepEqual(await ids({ types: ['signin.failed', 'client.created'] }), ['e4', 'e3', 'e1']);
    t.deepEqual(await ids({ since: new Date(t0 + SECOND), until: new Date(t0 + 3 * SECOND) }), ['e3', 'e2'], 'since is inclusive, until exclusive');
    t.deepEqual(await ids({ sub: 'sub-1', types: ['signin.succeeded'], since: new Date(t0) }), ['e2']);
    t.deepEqual(await ids({ sub: 'nobody' }), []);
    t.deepEqual(await ids({ limit: 2 }), ['e4', 'e3']);
    t.deepEqual(await ids({ limit: 0 }), []);
  });

  it('audit queries page with a before position; events of the same millisecond are ordered by id', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const t0 = clock.now();
    await store.audit.append(['a', 'c', 'b', 'd'].map((id) => auditRecord(id, 'token.issued', t0, { sub: 'sub-1' })));
    await store.audit.append([auditRecord('z', 'token.issued', t0 - SECOND, { sub: 'sub-1' })]);
    const page = async (before?: { at: Date; id: string }) =>
      (await store.audit.query({ limit: 2, sub: 'sub-1', ...(before && { before }) })).map((record) => record.id);

    t.deepEqual(await page(), ['d', 'c']);
    t.deepEqual(await page({ at: new Date(t0), id: 'c' }), ['b', 'a']);
    t.deepEqual(await page({ at: new Date(t0), id: 'a' }), ['z']);
    t.deepEqual(await page({ at: new Date(t0 - SECOND), id: 'z' }), []);
  });

  it('appending audit records again (a retried batch) keeps one copy of each', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const first = auditRecord('a1', 'signin.failed', clock.now());
    await store.audit.append([first]);
    await store.audit.append([first, auditRecord('a2', 'signin.failed', clock.now() + SECOND)]);

    t.deepEqual((await store.audit.query({ limit: 10 })).map((record) => record.id), ['a2', 'a1']);
  });

  it('an audit record is absent once its retention period is over', async (t) => {
    const { store, clock } = await setUp(t, createLane);
    const t0 = clock.now();
    await store.audit.append([
      auditRecord('short', 'signin.failed', t0, { expiresAt: new Date(t0 + DAY) }),
      auditRecord('long', 'signin.failed', t0, { expiresAt: new Date(t0 + 90 * DAY) }),
    ]);
    clock.advance(DAY);

    t.deepEqual((await store.audit.query({ limit: 10 })).map((record) => record.id), ['long']);
  });

  it('everything written survives closing and reopening the store', async (t) => {
    const { store, open, clock } = await setUp(t, createLane);
    const t0 = clock.now();
    await store.oidc.upsert('Session', 's-1', { uid: 'u-1', accountId: 'sub-1' }, 3600);
    await store.oidc.upsert('Grant', 'g-1', { accountId: 'sub-1' });
    await store.oidc.consume('Session', 's-1');
    await store.accounts.create(account('sub-1', 'keep@example.com', { name: 'Kept', roles: ['admin'] }));
    await store.accounts.update('sub-1', {
      totp: { encryptedSecret: 'sealed', confirmedAt: new Date(t0), lastStep: 5 },
      passkeys: [passkey('cred-1', t0, { transports: ['internal'] })],
      recoveryCodes: ['hash-a'],
      lockedUntil: new Date(t0 + DAY),
      emailOtp: true,
    });
    const created = await store.accounts.findBySub('sub-1');
    const client = await store.clients.create({ clientId: 'app-1', metadata: { client_id: 'app-1' } });
    const api = await store.resources.create(resource('https://api.example', { name: 'Kept API', format: 'opaque' }));
    await store.keys.rotate([key('sig-1', 'sig', t0)], retirement(t0, DAY));
    const clientsRevision = await store.revisions.get('clients');
    const resourcesRevision = await store.revisions.get('resources');
    await store.close();

    const reopened = await open();
    t.deepEqual(await reopened.oidc.findByUid('Session', 'u-1'), { uid: 'u-1', accountId: 'sub-1', consumed: Math.floor(t0 / 1000) });
    t.deepEqual(await reopened.oidc.find('Grant', 'g-1'), { accountId: 'sub-1' });
    t.deepEqual(await reopened.oidc.findByAccountId('Grant', 'sub-1'), [{ id: 'g-1', payload: { accountId: 'sub-1' } }]);
    t.deepEqual(await reopened.accounts.findByEmail('keep@example.com'), created);
    t.deepEqual(await reopened.clients.list(), [client]);
    t.deepEqual(await reopened.keys.list(), [key('sig-1', 'sig', t0)]);
    t.is(await reopened.revisions.get('clients'), clientsRevision);
    t.deepEqual(await reopened.resources.list(), [api]);
    t.deepEqual(await reopened.resources.find('https://api.example'), api);
    t.is(await reopened.revisions.get('resources'), resourcesRevision);
    await t.throwsAsync(reopened.resources.create(resource('https://api.example')), { code: 'ERR_RESOURCE_EXISTS' }, 'so does audience uniqueness');
    await t.throwsAsync(reopened.accounts.create(account('sub-2', 'keep@example.com')), { code: 'ERR_EMAIL_TAKEN' }, 'uniqueness survives too');
  });
}

// --- lanes ------------------------------------------------------------------------------------------

async function sqliteLane(): Promise<Lane & { file: string }> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'tessera-store-'));
  // A nested path, so every test also checks that open() creates missing parent directories.
  const file = path.join(directory, 'data', 'tessera.db');
  return {
    file,
    open: (options = {}) => openSqliteStore({ file, ...options }),
    dispose: () => rm(directory, { recursive: true, force: true }),
  };
}

function mongoLane(transactions?: boolean): LaneFactory {
  return async () => {
    const lane = await startMongoLane();
    return {
      open: (options = {}) => openMongoStore({ uri: lane.uri, ...(transactions === undefined ? {} : { transactions }), ...options }),
      dispose: () => lane.stop(),
    };
  };
}

defineContract('sqlite', sqliteLane);
defineContract('mongodb', mongoLane());
// Standalone mongod has no transactions: the ordered-writes fallback must keep the same contract.
defineContract('mongodb without transactions', mongoLane(false));

// --- backend-specific -------------------------------------------------------------------------------

test('sqlite: open creates a WAL database at the current schema version, and refuses a newer one', async (t) => {
  const lane = await sqliteLane();
  t.teardown(() => lane.dispose());
  const store = await lane.open();
  await store.close();

  const raw = new DatabaseSync(lane.file);
  t.deepEqual({ ...raw.prepare('PRAGMA journal_mode').get() }, { journal_mode: 'wal' });
  t.deepEqual({ ...raw.prepare('PRAGMA user_version').get() }, { user_version: SQLITE_SCHEMA_VERSION });
  raw.exec('PRAGMA user_version = 999');
  raw.close();

  await t.throwsAsync(lane.open(), { code: 'ERR_STORE_UNAVAILABLE', message: /schema version 999/ });
});

test('sqlite: a database at schema version 1, from before resource servers, upgrades in place and keeps its data', async (t) => {
  const lane = await sqliteLane();
  t.teardown(() => lane.dispose());
  // Built as Tessera did before resources: only the first migration, written to by hand. Shipped
  // migrations never change, so this is exactly what such a database holds.
  await mkdir(path.dirname(lane.file), { recursive: true });
  const old = new DatabaseSync(lane.file);
  old.exec(SQLITE_MIGRATIONS[0]!);
  old.exec('PRAGMA user_version = 1');
  old.prepare("INSERT INTO clients (client_id, metadata, created_at) VALUES ('old-app', '{\"client_id\":\"old-app\"}', 1700000000000)").run();
  old.prepare("INSERT INTO revisions (name, value) VALUES ('clients', 7)").run();
  old.close();

  const store = await lane.open();
  t.teardown(() => store.close());
  t.deepEqual(await store.clients.list(), [{ clientId: 'old-app', metadata: { client_id: 'old-app' }, createdAt: new Date(1700000000000) }]);
  t.is(await store.revisions.get('clients'), 7);
  t.deepEqual(await store.resources.list(), []);
  t.is(await store.revisions.get('resources'), 0);
  const created = await store.resources.create(resource('https://api.example'));
  t.deepEqual(await store.resources.find('https://api.example'), created);
  t.is(await store.revisions.get('resources'), 1);

  const raw = new DatabaseSync(lane.file, { readOnly: true });
  t.teardown(() => raw.close());
  t.deepEqual({ ...raw.prepare('PRAGMA user_version').get() }, { user_version: SQLITE_SCHEMA_VERSION });
});

test('sqlite: a database at schema version 2, from before account security, upgrades in place with empty defaults', async (t) => {
  const lane = await sqliteLane();
  t.teardown(() => lane.dispose());
  // Built as Tessera did before account security: the first two migrations, written to by hand.
  await mkdir(path.dirname(lane.file), { recursive: true });
  const old = new DatabaseSync(lane.file);
  old.exec(SQLITE_MIGRATIONS[0]!);
  old.exec(SQLITE_MIGRATIONS[1]!);
  old.exec('PRAGMA user_version = 2');
  old
    .prepare(
      `INSERT INTO accounts (sub, email, email_verified, password_hash, name, given_name, family_name, disabled, created_at, updated_at)
       VALUES ('old-sub', 'old@example.com', 1, 'old-hash', 'Old Name', NULL, NULL, 0, 1700000000000, 1700000001000)`,
    )
    .run();
  const farFuture = Date.now() + 365 * DAY;
  // A grant keeps its key across migration 8 (a session, keyed by its cookie value then, does not).
  old.prepare(`INSERT INTO oidc (model, id, payload, expires_at) VALUES ('Grant', 'old-grant', '{"jti":"old-grant","accountId":"old-sub"}', ${farFuture})`).run();
  old.prepare(`INSERT INTO oidc (model, id, payload, expires_at) VALUES ('Grant', 'anonymous', '{"jti":"anonymous"}', ${farFuture})`).run();
  old.prepare(`INSERT INTO oidc (model, id, payload, uid, expires_at) VALUES ('Session', 'old-session', '{"uid":"u-1","accountId":"old-sub"}', 'u-1', ${farFuture})`).run();
  old.close();

  const store = await lane.open();
  t.teardown(() => store.close());
  const expected = {
    sub: 'old-sub',
    email: 'old@example.com',
    emailVerified: true,
    passwordHash: 'old-hash',
    name: 'Old Name',
    disabled: false,
    ...SECURITY_DEFAULTS,
    createdAt: new Date(1700000000000),
    updatedAt: new Date(1700000001000),
  };
  t.deepEqual(await store.accounts.findBySub('old-sub'), expected);
  t.deepEqual(await store.accounts.list(), [expected]);
  t.deepEqual(await store.oidc.findByAccountId('Grant', 'old-sub'), [{ id: 'old-grant', payload: { jti: 'old-grant', accountId: 'old-sub' } }]);
  t.deepEqual(await store.oidc.findByAccountId('Session', 'old-sub'), [], 'migration 8 removed the session keyed by its cookie value');
  t.false(await store.accounts.advanceTotpStep('old-sub', 1));
  t.false(await store.accounts.consumeRecoveryCode('old-sub', 'hash'));
  t.deepEqual(await store.accounts.countSignInAttempt('old-sub', new Date()), { attempts: 1 });
  t.is((await store.rateLimiter({ keyPrefix: 'upgraded', points: 1, duration: 60 }).consume('key')).consumedPoints, 1);

  const raw = new DatabaseSync(lane.file, { readOnly: true });
  t.teardown(() => raw.close());
  t.deepEqual({ ...raw.prepare('PRAGMA user_version').get() }, { user_version: SQLITE_SCHEMA_VERSION });
});

/** A database file as Tessera left it at schema `version`: its first migrations, run by hand. */
async function sqliteAtVersion(file: string, version: number): Promise<DatabaseSync> {
  await mkdir(path.dirname(file), { recursive: true });
  const old = new DatabaseSync(file);
  for (const migration of SQLITE_MIGRATIONS.slice(0, version)) old.exec(migration);
  old.exec(`PRAGMA user_version = ${version}`);
  return old;
}

test('sqlite: a database at schema version 5, whose accounts all had a password, upgrades in place and keeps every account field', async (t) => {
  const lane = await sqliteLane();
  t.teardown(() => lane.dispose());
  // Built as Tessera did before accounts without a password: the first five migrations, by hand.
  const old = await sqliteAtVersion(lane.file, 5);
  old
    .prepare(
      `INSERT INTO accounts (sub, email, email_verified, password_hash, name, given_name, family_name, disabled, created_at, updated_at,
         roles, failed_sign_ins, locked_until, lockouts, totp_encrypted_secret, totp_confirmed_at, totp_last_step, recovery_codes, passkeys, email_otp)
       VALUES ('old-sub', 'old@example.com', 1, 'old-hash', 'Old Name', 'Old', 'Name', 0, 1700000000000, 1700000001000,
         '["admin"]', 2, 1700000500000, 1, 'enc-secret', 1700000002000, 42, '["code-hash"]', '[]', 1)`,
    )
    .run();
  old.close();

  const store = await lane.open();
  t.teardown(() => store.close());
  t.deepEqual(await store.accounts.findBySub('old-sub'), {
    sub: 'old-sub',
    email: 'old@example.com',
    emailVerified: true,
    passwordHash: 'old-hash',
    name: 'Old Name',
    givenName: 'Old',
    familyName: 'Name',
    disabled: false,
    roles: ['admin'],
    failedSignIns: 2,
    lockedUntil: new Date(1700000500000),
    lockouts: 1,
    totp: { encryptedSecret: 'enc-secret', confirmedAt: new Date(1700000002000), lastStep: 42 },
    recoveryCodes: ['code-hash'],
    passkeys: [],
    emailOtp: true,
    createdAt: new Date(1700000000000),
    updatedAt: new Date(1700000001000),
  });
  await t.throwsAsync(store.accounts.create(account('new-sub', 'old@example.com')), { code: 'ERR_EMAIL_TAKEN' }, 'the email stays unique');
  const { passwordHash: _none, ...hashless } = account('new-sub', 'new@example.com');
  t.false('passwordHash' in await store.accounts.create(hashless));
  t.deepEqual((await store.accounts.list()).map((listed) => listed.sub), ['old-sub', 'new-sub'], 'oldest first, as the index orders them');

  const raw = new DatabaseSync(lane.file, { readOnly: true });
  t.teardown(() => raw.close());
  t.deepEqual({ ...raw.prepare('PRAGMA user_version').get() }, { user_version: SQLITE_SCHEMA_VERSION });
});

test('sqlite: a database at schema version 11, from before signing algorithms, upgrades in place and keeps its resource servers on RS256', async (t) => {
  const lane = await sqliteLane();
  t.teardown(() => lane.dispose());
  const old = await sqliteAtVersion(lane.file, 11);
  old.prepare(
    `INSERT INTO resources (audience, name, scopes, format, ttl_seconds, scope_roles, clients, created_at)
     VALUES ('https://api.example/old', NULL, '["read"]', 'jwt', 300, NULL, '["rp-1"]', 1700000000000)`,
  ).run();
  old.close();

  const store = await lane.open();
  t.teardown(() => store.close());
  const kept = await store.resources.find('https://api.example/old');
  t.deepEqual(kept, { audience: 'https://api.example/old', scopes: ['read'], format: 'jwt', ttlSeconds: 300, clients: ['rp-1'], createdAt: new Date(1700000000000) });
  const created = await store.resources.create(resource('https://api.example/new', { signingAlg: 'EdDSA', clients: ['rp-2'] }));
  t.deepEqual(await store.resources.find('https://api.example/new'), created);
  t.is(created.signingAlg, 'EdDSA');

  const raw = new DatabaseSync(lane.file, { readOnly: true });
  t.teardown(() => raw.close());
  t.deepEqual({ ...raw.prepare('PRAGMA user_version').get() }, { user_version: SQLITE_SCHEMA_VERSION });
});

test('sqlite: a database at schema version 13 upgrades in place: its tokens leave the account index, its sessions, grants and emailed links are still found by account', async (t) => {
  const lane = await sqliteLane();
  t.teardown(() => lane.dispose());
  const old = await sqliteAtVersion(lane.file, 13);
  const insert = old.prepare('INSERT INTO oidc (model, id, payload, account_id) VALUES (?, ?, ?, ?)');
  for (const model of ['Session', 'Grant', 'PasswordReset', 'AccessToken', 'RefreshToken']) insert.run(model, `${model}-1`, JSON.stringify({ accountId: 'sub-1' }), 'sub-1');
  old.close();

  const store = await lane.open();
  t.teardown(() => store.close());
  t.deepEqual(await store.oidc.findByAccountId('Session', 'sub-1'), [{ id: 'Session-1', payload: { accountId: 'sub-1' } }]);
  t.deepEqual(await store.oidc.findByAccountId('Grant', 'sub-1'), [{ id: 'Grant-1', payload: { accountId: 'sub-1' } }]);
  t.deepEqual(await store.oidc.find('AccessToken', 'AccessToken-1'), { accountId: 'sub-1' });
  await store.oidc.upsert('RefreshToken', 'RefreshToken-2', { accountId: 'sub-1' }, 60);
  await store.oidc.upsert('Session', 'Session-2', { accountId: 'sub-1' }, 60);

  const raw = new DatabaseSync(lane.file, { readOnly: true });
  t.teardown(() => raw.close());
  const indexed = raw.prepare('SELECT model, id FROM oidc WHERE account_id IS NOT NULL ORDER BY model, id').all().map((row) => `${String(row.model)} ${String(row.id)}`);
  t.deepEqual(indexed, ['Grant Grant-1', 'PasswordReset PasswordReset-1', 'Session Session-1', 'Session Session-2']);
  t.deepEqual({ ...raw.prepare('PRAGMA user_version').get() }, { user_version: SQLITE_SCHEMA_VERSION });
});

test('sqlite: two processes writing one database file at the same time lose no writes', async (t) => {
  const lane = await sqliteLane();
  t.teardown(() => lane.dispose());
  const store = await lane.open();
  t.teardown(() => store.close());
  const writes = 300;
  // The other process is a real one, as the CLI is next to a running server.
  const script = `
    import { openSqliteStore } from ${JSON.stringify(new URL('../src/store/sqlite/open.ts', import.meta.url).href)};
    const store = await openSqliteStore({ file: process.argv[1] });
    process.stdout.write('ready\\n');
    for (let i = 0; i < ${writes}; i += 1) await store.clients.create({ clientId: 'child-' + i, metadata: {} });
    await store.close();`;
  const child = spawn(process.execPath, ['--input-type=module', '--eval', script, lane.file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  // Start writing only once the child is about to, so the two really overlap.
  await Promise.race([new Promise<void>((resolve) => child.stdout.once('data', () => resolve())), exited]);

  for (let i = 0; i < writes; i += 1) {
    await store.clients.create({ clientId: `parent-${i}`, metadata: {} });
    await setImmediatePromise();
  }

  t.is(await exited, 0, stderr);
  t.is((await store.clients.list()).length, 2 * writes);
  t.is(await store.revisions.get('clients'), 2 * writes);
});

test('sqlite: expired oidc records are purged in the background, live ones are kept', async (t) => {
  const lane = await sqliteLane();
  t.teardown(() => lane.dispose());
  const clock = manualClock();
  const store = await openSqliteStore({ file: lane.file, clock: clock.now, purgeIntervalSeconds: 0.02 });
  t.teardown(() => store.close());
  await store.oidc.upsert('AccessToken', 'short', { jti: 'short' }, 1);
  await store.oidc.upsert('AccessToken', 'long', { jti: 'long' }, 100);
  await store.oidc.upsert('Grant', 'forever', { jti: 'forever' });
  clock.advance(2 * SECOND);

  const raw = new DatabaseSync(lane.file, { readOnly: true });
  t.teardown(() => raw.close());
  const remaining = () => (raw.prepare('SELECT id FROM oidc ORDER BY id').all() as Array<{ id: string }>).map((row) => row.id);
  for (let waited = 0; remaining().length > 2 && waited < 2000; waited += 20) await delay(20);

  t.deepEqual(remaining(), ['forever', 'long']);
});

test('sqlite: expired rate limit counters are purged in the background, live ones are kept', async (t) => {
  const lane = await sqliteLane();
  t.teardown(() => lane.dispose());
  const store = await openSqliteStore({ file: lane.file, purgeIntervalSeconds: 0.02 });
  t.teardown(() => store.close());
  await store.rateLimiter({ keyPrefix: 'live', points: 5, duration: 60 }).consume('key');
  await store.rateLimiter({ keyPrefix: 'forever', points: 5, duration: 0 }).consume('key');
  // Counters expire by the wall clock; one that already has is written directly rather than waited for.
  const raw = new DatabaseSync(lane.file);
  t.teardown(() => raw.close());
  raw.prepare('INSERT INTO rate_limits (key, points, expire) VALUES (:key, 3, :expire)').run({ key: 'expired:key', expire: Date.now() - SECOND });
  const remaining = () => (raw.prepare('SELECT key FROM rate_limits ORDER BY key').all() as Array<{ key: string }>).map((row) => row.key);
  for (let waited = 0; remaining().length > 2 && waited < 2000; waited += 20) await delay(20);

  t.deepEqual(remaining(), ['forever:key', 'live:key']);
});

test('sqlite: audit records past their retention are purged in the background, live ones are kept', async (t) => {
  const lane = await sqliteLane();
  t.teardown(() => lane.dispose());
  const clock = manualClock();
  const store = await openSqliteStore({ file: lane.file, clock: clock.now, purgeIntervalSeconds: 0.02 });
  t.teardown(() => store.close());
  await store.audit.append([
    auditRecord('old', 'signin.failed', clock.now(), { expiresAt: new Date(clock.now() + SECOND) }),
    auditRecord('new', 'signin.failed', clock.now()),
  ]);
  clock.advance(2 * SECOND);

  const raw = new DatabaseSync(lane.file, { readOnly: true });
  t.teardown(() => raw.close());
  const remaining = () => (raw.prepare('SELECT id FROM audit_events ORDER BY id').all() as Array<{ id: string }>).map((row) => row.id);
  for (let waited = 0; remaining().length > 1 && waited < 2000; waited += 20) await delay(20);

  t.deepEqual(remaining(), ['new']);
});

test('mongodb: open creates the TTL, lookup and unique indexes', async (t) => {
  const lane = await startMongoLane();
  t.teardown(() => lane.stop());
  const store = await openMongoStore({ uri: lane.uri });
  await store.close();

  const connection = await mongoose.createConnection(lane.uri, { autoCreate: false, autoIndex: false }).asPromise();
  t.teardown(() => connection.close());
  const indexes = async (collection: string) => {
    const list = await connection.collection(collection).indexes();
    return Object.fromEntries(list.map((index) => [index.name, index]));
  };
  const oidc = await indexes('oidc');
  t.like(oidc.expiresAt_ttl, { key: { expiresAt: 1 }, expireAfterSeconds: 0 });
  t.like(oidc.model_uid, { key: { model: 1, uid: 1 } });
  t.like(oidc.model_userCode, { key: { model: 1, userCode: 1 } });
  t.like(oidc.model_grantId, { key: { model: 1, grantId: 1 } });
  t.like(oidc.model_accountId, { key: { model: 1, 'payload.accountId': 1 } });
  t.like((await indexes('accounts')).email_unique, { key: { email: 1 }, unique: true });
  t.like((await indexes('accounts')).externalId_unique, { key: { externalId: 1 }, unique: true });
  const rateLimits = await indexes('rate_limits');
  t.like(rateLimits.key_unique, { key: { key: 1 }, unique: true });
  t.like(rateLimits.expire_ttl, { key: { expire: -1 }, expireAfterSeconds: 0 });
  t.like((await indexes('resources')).createdAt_id, { key: { createdAt: 1, _id: 1 } });
  const audit = await indexes('audit_events');
  t.like(audit.expiresAt_ttl, { key: { expiresAt: 1 }, expireAfterSeconds: 0 });
  t.like(audit.at_id, { key: { at: -1, _id: -1 } });
  t.like(audit.sub_at_id, { key: { sub: 1, at: -1, _id: -1 } });
  t.like(audit.clientId_at_id, { key: { clientId: 1, at: -1, _id: -1 } });
  t.like(audit.type_at_id, { key: { type: 1, at: -1, _id: -1 } });
});

test('mongodb: an account document from before account security reads with empty defaults and takes the atomic operations', async (t) => {
  const lane = await startMongoLane();
  t.teardown(() => lane.stop());
  const store = await openMongoStore({ uri: lane.uri });
  t.teardown(() => store.close());
  // Written as Tessera did before account security, straight through the driver.
  const connection = await mongoose.createConnection(lane.uri, { autoCreate: false, autoIndex: false }).asPromise();
  t.teardown(() => connection.close());
  await connection.collection<Record<string, unknown> & { _id: string }>('accounts').insertOne({
    _id: 'old-sub',
    email: 'old@example.com',
    emailVerified: true,
    passwordHash: 'old-hash',
    disabled: false,
    createdAt: new Date(1700000000000),
    updatedAt: new Date(1700000001000),
  });

  const expected = {
    sub: 'old-sub',
    email: 'old@example.com',
    emailVerified: true,
    passwordHash: 'old-hash',
    disabled: false,
    ...SECURITY_DEFAULTS,
    createdAt: new Date(1700000000000),
    updatedAt: new Date(1700000001000),
  };
  t.deepEqual(await store.accounts.findBySub('old-sub'), expected);
  t.deepEqual(await store.accounts.findByEmail('old@example.com'), expected);
  t.false(await store.accounts.advanceTotpStep('old-sub', 1));
  t.false(await store.accounts.consumeRecoveryCode('old-sub', 'hash'));
  t.deepEqual(await store.accounts.countSignInAttempt('old-sub', new Date()), { attempts: 1 });
  t.true(await store.accounts.update('old-sub', { roles: ['admin'], lockedUntil: null }));
  t.like(await store.accounts.findBySub('old-sub'), { roles: ['admin'], failedSignIns: 1, recoveryCodes: [], passkeys: [] });
});

test('mongodb: an unreachable server fails open with ERR_STORE_UNAVAILABLE', async (t) => {
  const port = await closedPort();
  await t.throwsAsync(openMongoStore({ uri: `mongodb://127.0.0.1:${port}/tessera`, serverSelectionTimeoutMS: 300 }), { code: 'ERR_STORE_UNAVAILABLE' });
});

test('openStore picks MongoDB when a URI is configured and SQLite in the data directory otherwise', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tessera-open-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const lane = await startMongoLane();
  t.teardown(() => lane.stop());

  const sqlite = await openStore({ dataDir, mongodbUri: undefined });
  await sqlite.revisions.bump('keys');
  await sqlite.close();
  const mongo = await openStore({ dataDir, mongodbUri: lane.uri });
  await mongo.close();

  t.is(sqlite.kind, 'sqlite');
  t.is(mongo.kind, 'mongodb');
  const raw = new DatabaseSync(path.join(dataDir, 'tessera.db'), { readOnly: true });
  t.deepEqual({ ...raw.prepare("SELECT value FROM revisions WHERE name = 'keys'").get() }, { value: 1 });
  raw.close();
});

/** A port nothing listens on: bound by the kernel, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('No TCP address.');
  return address.port;
}
