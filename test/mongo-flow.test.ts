/**
 * The same "Sign in with" flow on the MongoDB store: the bundled wire-compatible test server, or
 * the real MongoDB named by MONGODB_URI (a fresh database per run).
 */
import test from 'ava';
import * as jose from 'jose';
import * as oidc from 'openid-client';

import { eventually } from './helpers/eventually.ts';
import { startMongoLane, type MongoLane } from './helpers/mongo-lane.ts';
import { authorizationRequest, authorize, discover, newPerson, signIn, staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { UserAgent } from './helpers/user-agent.ts';

let lane: MongoLane;
let server: TestServer;
let config: oidc.Configuration;

test.before(async () => {
  lane = await startMongoLane();
  server = await startTestServer({ clients: [staticClient()], env: { MONGODB_URI: lane.uri } });
  config = await discover(server.issuer);
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
  await lane?.stop();
});

test('on MongoDB a person registers, consents and the RP gets tokens and userinfo', async (t) => {
  const person = newPerson();
  const { tokens } = await signIn(config, new UserAgent(), person, { register: true });
  t.is(tokens.claims()?.email, person.email);
  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims()!.sub);
  t.is(userinfo.email, person.email);
  const again = await signIn(config, new UserAgent(), person);
  t.is(again.tokens.claims()?.sub, tokens.claims()?.sub, 'the account is found again by email');
});

test('on MongoDB refresh tokens rotate and reuse revokes the grant', async (t) => {
  const { tokens } = await signIn(config, new UserAgent(), newPerson(), { register: true });
  const rotated = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
  const reuse = await t.throwsAsync(oidc.refreshTokenGrant(config, tokens.refresh_token!));
  t.is((reuse as oidc.ResponseBodyError).error, 'invalid_grant');
  const after = await t.throwsAsync(oidc.refreshTokenGrant(config, rotated.refresh_token!));
  t.is((after as oidc.ResponseBodyError).error, 'invalid_grant');
});

test('on MongoDB a reused authorization code fails and revokes the tokens of the first use', async (t) => {
  const request = await authorizationRequest(config);
  const callback = await authorize(new UserAgent(), request, newPerson(), { register: true });
  const checks = { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce };
  const tokens = await oidc.authorizationCodeGrant(config, callback, checks);
  const second = await t.throwsAsync(oidc.authorizationCodeGrant(config, callback, checks));
  t.is((second as oidc.ResponseBodyError).error, 'invalid_grant');
  await t.throwsAsync(oidc.fetchUserInfo(config, tokens.access_token, oidc.skipSubjectCheck));
});

test('on MongoDB a key rotation made elsewhere reaches the running server', async (t) => {
  const added = await server.withServices((services) => services.keys.rotate());
  const newKid = added.find((key) => key.alg === 'RS256')!.kid;
  let kid: string | undefined;
  await eventually(async () => {
    const { tokens } = await signIn(config, new UserAgent(), newPerson(), { register: true });
    kid = jose.decodeProtectedHeader(tokens.id_token!).kid;
    return kid === newKid || undefined;
  }, { timeoutMs: 10_000, intervalMs: 300 });
  t.is(kid, newKid);
});
