/**
 * The benchmark's yardstick: a bare oidc-provider with its in-memory adapter and the same protocol
 * choices as Tessera (RS256, JWT access tokens for the API, PKCE, opaque userinfo tokens, an mTLS
 * listener for tls_client_auth). Its interactions finish login and consent without any page or
 * password check, so it shows the protocol's own cost. Run as a child process by bench/run.ts:
 * it reads its settings from BASELINE_* variables and prints "ready" once listening on https (plain
 * http with BASELINE_PLAIN=1, like Tessera behind a TLS-terminating proxy in the bench's http set).
 * It holds the same key families as Tessera (RSA, P-256, Ed25519), so its JWKS is as big, and one
 * audience per signing algorithm (BASELINE_AUDIENCES, a JSON object of algorithm to audience).
 *
 * BASELINE_DB=FILE gives it, instead of the in-memory adapter, the plainest durable one: a SQLite
 * file (WAL, synchronous=FULL, as Tessera opens its own), one statement per adapter call, nothing
 * cached. That is what the bare provider costs once its records outlive the process, which is the
 * fair yardstick for the endpoints that write (refresh) or read records (introspection, userinfo).
 */
import http from 'node:http';
import https from 'node:https';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { DatabaseSync } from 'node:sqlite';
import type { TLSSocket } from 'node:tls';

import Provider, { type Adapter, type AdapterPayload, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';

const env = process.env;
const port = Number(env.BASELINE_PORT);
const plain = env.BASELINE_PLAIN === '1';
const issuer = `${plain ? 'http' : 'https'}://localhost:${port}`;
const audiences = JSON.parse(env.BASELINE_AUDIENCES!) as Record<string, string>;
const audience = audiences.RS256!;
const algOf = new Map(Object.entries(audiences).map(([alg, uri]) => [uri, alg]));
const redirectUri = env.BASELINE_REDIRECT_URI!;

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
const ed = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });

function certificateOf(ctx: KoaContextWithOIDC): string | undefined {
  const socket = ctx.req.socket as TLSSocket;
  const peer = socket.getPeerCertificate?.();
  return peer?.raw ? new X509Certificate(peer.raw).toString() : undefined;
}

/** oidc-provider's adapter on one SQLite table, the way its documentation's example adapters keep records. */
function sqliteAdapter(file: string): new (model: string) => Adapter {
  const db = new DatabaseSync(file);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = FULL');
  db.exec('PRAGMA wal_autocheckpoint = 10000');
  db.exec(`CREATE TABLE IF NOT EXISTS oidc (model TEXT NOT NULL, id TEXT NOT NULL, payload TEXT NOT NULL, grant_id TEXT, uid TEXT,
    user_code TEXT, expires_at INTEGER, PRIMARY KEY (model, id)) WITHOUT ROWID`);
  db.exec('CREATE INDEX IF NOT EXISTS oidc_grant ON oidc (grant_id)');
  db.exec('CREATE INDEX IF NOT EXISTS oidc_uid ON oidc (uid)');
  const upsert = db.prepare(`INSERT INTO oidc (model, id, payload, grant_id, uid, user_code, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
    user_code = excluded.user_code, expires_at = excluded.expires_at`);
  const live = '(expires_at IS NULL OR expires_at > ?)';
  const find = db.prepare(`SELECT payload FROM oidc WHERE model = ? AND id = ? AND ${live}`);
  const findByUid = db.prepare(`SELECT payload FROM oidc WHERE model = ? AND uid = ? AND ${live}`);
  const findByUserCode = db.prepare(`SELECT payload FROM oidc WHERE model = ? AND user_code = ? AND ${live}`);
  const consume = db.prepare(`UPDATE oidc SET payload = json_set(payload, '$.consumed', ?) WHERE model = ? AND id = ?`);
  const destroy = db.prepare('DELETE FROM oidc WHERE model = ? AND id = ?');
  const revoke = db.prepare('DELETE FROM oidc WHERE grant_id = ?');
  const parsed = (row: unknown) => (row ? JSON.parse((row as { payload: string }).payload) as AdapterPayload : undefined);
  const text = (value: unknown) => (typeof value === 'string' ? value : null);
  return class SqliteAdapter implements Adapter {
    readonly model: string;
    constructor(model: string) {
      this.model = model;
    }
    async upsert(id: string, payload: AdapterPayload, expiresIn: number) {
      upsert.run(this.model, id, JSON.stringify(payload), text(payload.grantId), text(payload.uid), text(payload.userCode), expiresIn ? Date.now() + expiresIn * 1000 : null);
    }
    async find(id: string) { return parsed(find.get(this.model, id, Date.now())); }
    async findByUid(uid: string) { return parsed(findByUid.get(this.model, uid, Date.now())); }
    async findByUserCode(userCode: string) { return parsed(findByUserCode.get(this.model, userCode, Date.now())); }
    async consume(id: string) { consume.run(Math.floor(Date.now() / 1000), this.model, id); }
    async destroy(id: string) { destroy.run(this.model, id); }
    async revokeByGrantId(grantId: string) { revoke.run(grantId); }
  };
}

const configuration: Configuration = {
  ...(env.BASELINE_DB && { adapter: sqliteAdapter(env.BASELINE_DB) }),
  clients: [
    { client_id: 'bench-machine', client_secret: env.BASELINE_SECRET!, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
    {
      client_id: 'bench-mtls', grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
      token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: env.BASELINE_MTLS_SUBJECT!, tls_client_certificate_bound_access_tokens: true,
    },
    {
      client_id: 'bench-rp', client_secret: env.BASELINE_SECRET!, grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      redirect_uris: [redirectUri],
    },
  ],
  jwks: { keys: [{ ...rsa, use: 'sig', kid: 'baseline-rsa' }, { ...ec, use: 'sig', kid: 'baseline-ec' }, { ...ed, use: 'sig', kid: 'baseline-ed' }] as never },
  cookies: { keys: ['baseline cookie key that is long enough'] },
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub, email: `${sub}@example.com`, email_verified: true, name: 'Bench Person' }) }),
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  pkce: { required: () => true },
  responseTypes: ['code'],
  rotateRefreshToken: true,
  issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  clientAuthMethods: ['client_secret_basic', 'tls_client_auth', 'none'],
  interactions: { url: (_ctx, interaction) => `/i/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, client) => (client.grantTypeAllowed('client_credentials') ? audience : undefined!),
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => ({
        scope: 'orders:read', audience: indicator, accessTokenTTL: 300, accessTokenFormat: 'jwt',
        jwt: { sign: { alg: (algOf.get(indicator) ?? 'RS256') as 'RS256' } },
      }),
    },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      getCertificate: certificateOf,
      certificateAuthorized: (ctx) => Boolean((ctx.req.socket as TLSSocket).authorized),
      certificateSubjectMatches: () => true,
    },
  },
};

const provider = new Provider(issuer, configuration);

// Offline access normally needs prompt=consent; the baseline flow asks for it explicitly.
provider.use(async function autoInteractions(ctx, next) {
  const match = /^\/i\/([\w-]+)$/.exec(ctx.path);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.prompt.name === 'login') {
    await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: 'bench-person' } }, { mergeWithLastSubmission: false });
    return undefined;
  }
  const grant = new provider.Grant({ accountId: details.session!.accountId, clientId: String(details.params.client_id) });
  const missing = details.prompt.details as { missingOIDCScope?: string[] };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
  return undefined;
});

// One listener that asks for (but does not require) client certificates serves every scenario.
const server = plain ? http.createServer(provider.callback()) : https.createServer({
  cert: env.BASELINE_TLS_CERT, key: env.BASELINE_TLS_KEY, ca: env.BASELINE_CLIENT_CA,
  requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2',
}, provider.callback());
server.listen(port, () => {
  process.stdout.write(`ready ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
