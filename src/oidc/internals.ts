/**
 * Every place Tessera reaches past oidc-provider's documented configuration, in one module, so an
 * upgrade of oidc-provider is checked here and nowhere else. Each hook says why it exists.
 * (Checked against oidc-provider 9.13.)
 */
import { createHash } from 'node:crypto';

import { errors, Provider } from 'oidc-provider';

import { clientSecretMatches } from '../domain/clients.ts';
import { TOKEN_USES_FIELD } from '../domain/registration-tokens.ts';
import { clientMayAuthenticate, devicePollTooSoon } from '../http/rate-limit.ts';
import { currentCertificate } from './client-certificates.ts';
import { INTERACTION_ROUTES } from './features/index.ts';


const TOKEN_VALUE = Symbol('tessera.tokenValue');

interface TokenLike { [TOKEN_VALUE]?: string }
interface IdTokenLike {
  ctx?: { oidc?: { route?: string; entities?: { AccessToken?: TokenLike } } };
  extra: Record<string, unknown>;
  set(key: string, value: unknown): void;
}
interface OidcContextLike {
  params?: { scope?: unknown; prompt?: unknown };
  route?: string;
  entities?: { Grant?: { getOIDCScope(): string } };
}

/** What the hooks below hand work to. */
export interface ProviderExtensions {
  /** Logout tokens are queued here and sent in the background (domain/backchannel-logout.ts). */
  backchannelLogout?: { notify(clientId: string, sub: string, sid: string): void } | undefined;
  /**
   * The metadata the Client adapter would answer for an id, when it is already in memory
   * (ClientService.cachedMetadata): a lookup that needs no store read then takes no promise either.
   */
  cachedClientMetadata?: ((clientId: string) => object | undefined) | undefined;
}

export function extendProvider(provider: Provider, extensions: ProviderExtensions = {}): void {
  reusedClientInstances(provider, extensions.cachedClientMetadata);
  hashedClientSecrets(provider);
  atHashAtTokenEndpoint(provider);
  offlineAccessAsksConsent(provider);
  certificateBoundRefreshTokens(provider);
  rateLimitedClientAuthentication(provider);
  sessionUserAgent(provider);
  initialAccessTokenUses(provider);
  deviceSlowDown(provider);
  sidInEveryIdToken(provider);
  if (extensions.backchannelLogout) queuedBackchannelLogout(provider, extensions.backchannelLogout);
}

/**
 * oidc-provider puts `sid` in ID tokens only for clients that registered back-channel logout with
 * `backchannel_logout_session_required` (Client#includeSid). Tessera puts it in every ID token: an
 * app that adds back-channel logout later, or does not ask for it, can still match a logout token
 * (which always names the session) to the sign-in it came from.
 */
function sidInEveryIdToken(provider: Provider): void {
  const prototype = provider.Client.prototype as unknown as { includeSid(): boolean };
  if (typeof prototype.includeSid !== 'function') throw new Error('oidc-provider changed: Client#includeSid is gone');
  prototype.includeSid = function includeSid() {
    return true;
  };
}

/**
 * At RP-initiated logout oidc-provider calls Client#backchannelLogout(sub, sid) for each app of the
 * session and waits for all of them before it answers, so one slow app server would hold up the
 * logout page. The call queues the token instead (it is built and sent by
 * domain/backchannel-logout.ts, with retries) and answers at once.
 */
function queuedBackchannelLogout(provider: Provider, queue: NonNullable<ProviderExtensions['backchannelLogout']>): void {
  const prototype = provider.Client.prototype as unknown as { clientId: string; backchannelLogout(sub: string, sid: string): Promise<void> };
  if (typeof prototype.backchannelLogout !== 'function') throw new Error('oidc-provider changed: Client#backchannelLogout is gone');
  prototype.backchannelLogout = async function queueBackchannelLogout(this: { clientId: string }, sub: string, sid: string) {
    queue.notify(this.clientId, sub, sid);
  };
}

/**
 * RFC 8628 section 3.5: a device polling faster than `interval` is told `slow_down`; oidc-provider
 * has the error but never sends it. The device code grant reads its code through DeviceCode.find,
 * so the check sits there: only at the token endpoint, and only while the code still waits for the
 * person (an answered, denied or expired code is answered at once). Polls are counted in the store
 * (http/rate-limit.ts), keyed by a digest of the device code.
 */
function deviceSlowDown(provider: Provider): void {
  interface DeviceCodeLike { accountId?: string; error?: string; isExpired?: boolean }
  const DeviceCode = provider.DeviceCode as unknown as { find(id: string, ...rest: unknown[]): Promise<DeviceCodeLike | undefined> };
  const find = DeviceCode.find.bind(DeviceCode);
  DeviceCode.find = async function findUnlessPolledTooSoon(id: string, ...rest: unknown[]) {
    const code = await find(id, ...rest);
    const ctx = Provider.ctx;
    if (code && ctx?.oidc?.route === 'token' && !code.accountId && !code.error && !code.isExpired
      && await devicePollTooSoon(ctx, createHash('sha256').update(id).digest('base64url'))) {
      throw new errors.SlowDown();
    }
    return code;
  };
}

/**
 * `tessera registration-tokens create --uses N` writes how many registrations an initial access
 * token allows into its record; oidc-provider keeps only the payload fields it knows, so the field
 * is added to them (features/registration.ts counts the uses).
 */
function initialAccessTokenUses(provider: Provider): void {
  const Token = provider.InitialAccessToken as unknown as { IN_PAYLOAD: string[] };
  const fields = Token.IN_PAYLOAD;
  if (!Array.isArray(fields) || !fields.includes('policies')) throw new Error('oidc-provider changed: InitialAccessToken.IN_PAYLOAD no longer lists its fields');
  Object.defineProperty(Token, 'IN_PAYLOAD', { configurable: true, get: () => [...fields, TOKEN_USES_FIELD] });
}

/**
 * The account page lists where a person is signed in, and oidc-provider's Session keeps no hint of
 * the browser. Each session remembers the User-Agent of the last request that used it, kept with
 * the session's other fields (`userAgent`, at most 256 characters; shown, never trusted).
 */
function sessionUserAgent(provider: Provider): void {
  interface SessionLike { userAgent?: string }
  const Session = provider.Session as unknown as { IN_PAYLOAD: string[]; get(ctx: { get(name: string): string }): Promise<SessionLike> };
  const fields = Session.IN_PAYLOAD;
  if (!Array.isArray(fields) || !fields.includes('accountId')) throw new Error('oidc-provider changed: Session.IN_PAYLOAD no longer lists the session fields');
  Object.defineProperty(Session, 'IN_PAYLOAD', { configurable: true, get: () => [...fields, 'userAgent'] });
  const get = Session.get;
  Session.get = async function getWithUserAgent(this: unknown, ctx) {
    const session = await get.call(this, ctx);
    const userAgent = ctx.get('user-agent').slice(0, 256);
    if (userAgent && session.userAgent !== userAgent) session.userAgent = userAgent;
    return session;
  };
}

/**
 * For a client that comes from the adapter, oidc-provider hashes the JSON of its metadata (SHA-256)
 * on every lookup to find the Client it built from the same metadata before: a measurable share of a
 * client_credentials request. The adapter serves metadata from ClientService's cache, the same object
 * until the client changes, so the Client built from that object is remembered against it (a
 * WeakMap: a changed client arrives as a new object and is built afresh, the old one is collected).
 * Whatever the original lookup answers the first time (a static client of that id included) is what
 * later lookups answer. When ClientService already holds the metadata (`cachedMetadata`, the object
 * the adapter would answer) and a Client was built from it, the lookup skips the adapter's promises.
 */
function reusedClientInstances(provider: Provider, cachedMetadata: ((clientId: string) => object | undefined) | undefined): void {
  const Client = provider.Client as unknown as {
    find(id: string, ...rest: unknown[]): Promise<unknown>;
    adapter: { find(id: string): Promise<unknown> };
  };
  const find = Client.find.bind(Client);
  const built = new WeakMap<object, unknown>();
  // The common case (a client already built from metadata in memory) answers without an async frame.
  Client.find = function findReusingInstances(id: string, ...rest: unknown[]) {
    if (typeof id === 'string' && id) {
      const metadata = cachedMetadata?.(id);
      const client = metadata && built.get(metadata);
      if (client !== undefined) return Promise.resolve(client);
    }
    return findBuilding(id, ...rest);
  };
  async function findBuilding(id: string, ...rest: unknown[]) {
    if (typeof id !== 'string' || !id) return find(id, ...rest);
    const metadata = await Client.adapter.find(id);
    if (!metadata || typeof metadata !== 'object') return find(id, ...rest);
    let client = built.get(metadata);
    if (client === undefined) {
      client = await find(id, ...rest);
      if (client !== undefined) built.set(metadata, client);
    }
    return client;
  }
}

/**
 * A client over its limit of failed requests (http/rate-limit.ts) must not get to try its
 * credentials, but oidc-provider reads the client_id from the body only after its own body parsing.
 * The first client lookup of a request is the authentication's, so it is asked there: a blocked
 * client is "not found", nothing is checked, and the rate-limit middleware turns the answer into 429.
 */
function rateLimitedClientAuthentication(provider: Provider): void {
  const Client = provider.Client as unknown as { find(id: string, ...rest: unknown[]): Promise<unknown> };
  const find = Client.find.bind(Client);
  // Not async: when the answer is known without the store (nearly always), no promise is added.
  Client.find = function findUnlessRateLimited(id: string, ...rest: unknown[]) {
    if (typeof id !== 'string') return find(id, ...rest);
    const allowed = clientMayAuthenticate(Provider.ctx, id);
    if (allowed === true) return find(id, ...rest);
    if (allowed === false) return Promise.resolve(undefined);
    return allowed.then((may) => (may ? find(id, ...rest) : undefined));
  };
}

/**
 * oidc-provider binds refresh tokens to a certificate only for public clients. Tessera binds those
 * of certificate-authenticated clients too (RFC 8705 section 4): a refresh token issued over mTLS
 * then works only with that same certificate, which oidc-provider enforces once the binding is set.
 */
function certificateBoundRefreshTokens(provider: Provider): void {
  interface RefreshTokenLike {
    'x5t#S256'?: string;
    client?: { clientAuthMethod?: string; tlsClientCertificateBoundAccessTokens?: boolean };
    setThumbprint(property: 'x5t', certificate: string): void;
    save(): Promise<string>;
  }
  const prototype = provider.RefreshToken.prototype as unknown as RefreshTokenLike;
  const save = prototype.save;
  prototype.save = function saveBound(this: RefreshTokenLike) {
    const certificate = currentCertificate();
    const method = this.client?.clientAuthMethod;
    if (certificate && !this['x5t#S256'] && this.client?.tlsClientCertificateBoundAccessTokens
      && (method === 'tls_client_auth' || method === 'self_signed_tls_client_auth')) {
      this.setThumbprint('x5t', certificate.pem);
    }
    return save.call(this);
  };
}

/** Stored client secrets are SHA-256 digests (domain/clients.ts); oidc-provider compares plaintext. */
function hashedClientSecrets(provider: Provider): void {
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientSecret: string }, actual: string) {
    return clientSecretMatches(this.clientSecret, actual);
  };
}

/**
 * OIDC Core 3.1.3.6 makes at_hash optional in token-endpoint ID tokens and oidc-provider leaves it
 * out; RPs that check it (and our promise to) need it. The access token's value is remembered when
 * it is saved, and the ID token issued in the same request hashes it (oidc-provider computes the
 * hash from the value when the `at_hash` member is set).
 */
function atHashAtTokenEndpoint(provider: Provider): void {
  const accessTokenPrototype = provider.AccessToken.prototype as unknown as { save(): Promise<string> } & TokenLike;
  const save = accessTokenPrototype.save;
  accessTokenPrototype.save = async function saveAndRemember(this: TokenLike) {
    const value = await save.call(this);
    this[TOKEN_VALUE] = value;
    return value;
  };

  const idTokenPrototype = provider.IdToken.prototype as unknown as IdTokenLike & { issue(options: { use: string }): Promise<string> };
  const issue = idTokenPrototype.issue;
  idTokenPrototype.issue = function issueWithAtHash(this: IdTokenLike, options: { use: string }) {
    const accessToken = this.ctx?.oidc?.entities?.AccessToken?.[TOKEN_VALUE];
    if (options?.use === 'idtoken' && this.ctx?.oidc?.route === 'token' && accessToken && !this.extra.at_hash) {
      this.set('at_hash', accessToken);
    }
    return issue.call(this, options);
  };
}

/**
 * oidc-provider drops `offline_access` unless the request's prompt includes `consent` (OIDC Core 11).
 * Tessera instead always treats an offline_access request as one that needs the person's explicit
 * consent, so RPs need not know to add prompt=consent: the consent page is shown and the refresh
 * token is issued. With prompt=none nothing changes (offline_access is dropped, as the spec says).
 * Once the person's grant for this client (remembered per account, account-grant.ts) holds
 * offline_access, that explicit consent is the "other condition" OIDC Core 11 allows: it is not
 * asked for again. (Before the grant is loaded, `consent` stays in, so the scope is not dropped.)
 * Which routes start or resume an interaction is each feature's to say (features/*, interactionRoutes).
 */
function offlineAccessAsksConsent(provider: Provider): void {
  const prototype = provider.OIDCContext.prototype as object;
  const descriptor = Object.getOwnPropertyDescriptor(prototype, 'prompts');
  if (!descriptor?.get) throw new Error('oidc-provider changed: OIDCContext.prompts is no longer a getter');
  const prompts = descriptor.get;
  Object.defineProperty(prototype, 'prompts', {
    configurable: true,
    get(this: OidcContextLike) {
      const requested = prompts.call(this) as Set<string>;
      const scope = typeof this.params?.scope === 'string' ? this.params.scope.split(' ') : [];
      const granted = this.entities?.Grant?.getOIDCScope().split(' ').includes('offline_access') ?? false;
      if (scope.includes('offline_access') && !granted && !requested.has('none') && this.route !== undefined && INTERACTION_ROUTES.has(this.route)) {
        requested.add('consent');
      }
      return requested;
    },
  });
}

/**
 * oidc-provider's own check of client metadata, the one it runs when it loads a client at a request
 * (`Client.validate`, not in its typings): resolves when the metadata would work, throws
 * InvalidClientMetadata with the reason when not. Used to refuse such a client when it is created
 * (client-metadata-check.ts) rather than at each authorization request.
 */
export async function validateClientMetadata(provider: Provider, metadata: Record<string, unknown>): Promise<void> {
  const Client = provider.Client as unknown as { validate?(metadata: Record<string, unknown>): Promise<void> };
  if (typeof Client.validate !== 'function') throw new Error('oidc-provider changed: Client.validate no longer exists');
  await Client.validate(metadata);
}
