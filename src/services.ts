/**
 * Builds the domain services from configuration and an open store. The server and the CLI both
 * call this, so they share one set of rules for accounts, clients and keys.
 */
import { availableParallelism } from 'node:os';

import { adminResource } from './admin/resource.ts';
import type { Config } from './config.ts';
import { lockoutMessage } from './domain/account-mail.ts';
import { AccountService } from './domain/accounts.ts';
import { AuditService } from './domain/audit.ts';
import { BackchannelLogout } from './domain/backchannel-logout.ts';
import { ClientService, type ClientMetadataCheck } from './domain/clients.ts';
import { SecurityEvents } from './domain/events.ts';
import { notifyFactorChanges } from './domain/factor-notices.ts';
import { KeyService } from './domain/keys.ts';
import { EmailVerification } from './domain/email-verification.ts';
import { LinkTokens } from './domain/link-tokens.ts';
import { LockoutPolicy } from './domain/lockout.ts';
import { brandedMailer, createMailer, type Mailer } from './domain/mailer.ts';
import { PasswordHasher } from './domain/password.ts';
import { PasswordPolicy } from './domain/password-policy.ts';
import { endAllSessions, FORGOT_PASSWORD_PATH, PasswordReset } from './domain/password-reset.ts';
import { MAX_RESOURCE_TTL_SECONDS, ResourceService } from './domain/resources.ts';
import { RegistrationTokens } from './domain/registration-tokens.ts';
import { RoleService } from './domain/roles.ts';
import { SecondFactorService } from './domain/second-factors.ts';
import { loadMasterSecret, type MasterSecret } from './domain/secrets.ts';
import { IdentityService } from './domain/identities.ts';
import { UpstreamService } from './domain/upstreams.ts';
import { UserImport } from './domain/user-import.ts';
import { RateLimits } from './http/rate-limit.ts';
import { createLogger, type Logger } from './log.ts';
import { createAdapterClass } from './oidc/adapter.ts';
import { clientMetadataCheck } from './oidc/client-metadata-check.ts';
import { currentRequest } from './request-context.ts';
import type { Store } from './store/port.ts';

export interface Services {
  readonly accounts: AccountService;
  readonly clients: ClientService;
  readonly resources: ResourceService;
  /** Roles of accounts (`tessera users roles`), released by the `roles` scope and limiting API scopes. */
  readonly roles: RoleService;
  /** Upstream identity providers (Google, GitHub, any OpenID provider) and the identities linked through them. */
  readonly upstreams: UpstreamService;
  readonly identities: IdentityService;
  readonly keys: KeyService;
  readonly mailer: Mailer;
  readonly secret: MasterSecret;
  /** Verification links for new addresses (registration pages and API). */
  readonly emailVerification: EmailVerification;
  readonly passwordReset: PasswordReset;
  /** `tessera users import/export` and the admin API's batch import: accounts with the hashes they came with. */
  readonly userImport: UserImport;
  /** Store-backed rate limits; `rateLimits.secondFactor(ctx, sub)` before checking any second factor. */
  readonly rateLimits: RateLimits;
  /** TOTP, recovery codes, codes by email and passkeys: enrolment, checks, management. */
  readonly secondFactors: SecondFactorService;
  /** Security events (sign-ins, lockouts, changes to factors, clients, keys...): emit here, listen here. */
  readonly events: SecurityEvents;
  /** The audit trail: every security event, kept for AUDIT_RETENTION_DAYS; `audit.query(filter)`. */
  readonly audit: AuditService;
  /** Initial access tokens for dynamic client registration (DYNAMIC_CLIENT_REGISTRATION=token). */
  readonly registrationTokens: RegistrationTokens;
  /** Logout tokens for the apps of sessions that end (OIDC Back-Channel Logout), sent in the background. */
  readonly backchannelLogout: BackchannelLogout;
  /** Ends every session of an account (a disabled user), and queues logout tokens for their apps; returns how many ended. */
  endAllSessions(sub: string): Promise<number>;
  /** Writes what is still queued (audit events); call before closing the store. */
  close(): Promise<void>;
}

/** Seconds of clock skew allowed for validators when deciding how long a retired key stays published. */
const CLOCK_SKEW_SECONDS = 60;

export function buildServices(config: Config, store: Store, logger: Logger = createLogger('silent')): Services {
  const secret = loadMasterSecret(config);
  const events = new SecurityEvents({
    context: currentRequest,
    onListenerError: (error, event) => logger.error({ err: error, event: event.type }, 'a security event listener failed'),
  });
  const audit = new AuditService(store.audit, {
    retentionDays: config.observability.auditRetentionDays,
    onError: (error, state) => logger.error({ err: error, ...state }, 'could not write audit events; they stay queued'),
  });
  audit.subscribe(events);
  // A retired key stays published while anything it signed may still be presented.
  const retainSeconds = Math.max(config.ttl.idToken, config.ttl.accessToken, MAX_RESOURCE_TTL_SECONDS) + CLOCK_SKEW_SECONDS;
  // Clients check their resources exist, and resources create their own clients: tie the knot lazily.
  let resources: ResourceService | undefined;
  // A client oidc-provider would refuse at every request is refused when created, with its reason
  // (oidc/client-metadata-check.ts); the check needs the accounts and resources made below.
  let metadataCheck: ClientMetadataCheck | undefined;
  const checkMetadata: ClientMetadataCheck = (metadata) => metadataCheck!(metadata);
  const clients = new ClientService(store.clients, store.revisions, config.staticClients, (audience) => resources!.find(audience), events, { production: config.env === 'production', checkMetadata });
  // The admin API is a resource server of Tessera's own (admin/resource.ts), there whenever the API is.
  const builtInResources = config.security.adminApi ? [adminResource(config.issuer)] : [];
  resources = new ResourceService(store.resources, store.revisions, clients, config.staticResources, builtInResources);
  const mailer = brandedMailer(createMailer(config.mail, config.dataDir), config.branding);
  const lockout = new LockoutPolicy(store.accounts, { threshold: config.security.lockoutThreshold, seconds: config.security.lockoutSeconds });
  // The owner hears of each lockout once; the mail goes out in the background, so the failed
  // sign-in that locked the account answers as fast as any other.
  lockout.onLocked((account, lockedUntil) => {
    const message = lockoutMessage(account.email, lockedUntil, config.security.lockoutThreshold, `${config.issuer}${FORGOT_PASSWORD_PATH}`, config.defaultLocale);
    logger.warn({ sub: account.sub, lockedUntil }, 'account locked after failed sign-ins');
    events.emit({ type: 'account.locked', sub: account.sub, details: { lockedUntil: lockedUntil.toISOString() } });
    mailer.send(message).catch((error: unknown) => logger.error({ err: error, sub: account.sub }, 'could not send the lockout notice'));
  });
  notifyFactorChanges(events, store.accounts, mailer, `${config.issuer}${FORGOT_PASSWORD_PATH}`, config.defaultLocale, (error, sub) => logger.error({ err: error, sub }, 'could not send the sign-in method notice'));
  const keys = new KeyService(store.keys, secret.value, retainSeconds, events);
  const backchannelLogout = new BackchannelLogout({
    issuer: config.issuer,
    production: config.env === 'production',
    findClient: (clientId) => clients.findMetadata(clientId),
    signingKeys: async () => (await keys.material()).signingKeys,
    onOutcome(outcome, { clientId, error, attempt }) {
      if (outcome === 'delivered') logger.debug({ clientId, attempt }, 'back-channel logout token delivered');
      else if (outcome === 'retried') logger.warn({ clientId, attempt, err: error }, 'back-channel logout token not delivered; will retry');
      else logger.error({ clientId, attempt, err: error }, outcome === 'dropped' ? 'back-channel logout queue full; token dropped' : 'back-channel logout token not delivered; giving up');
    },
  });
  const accounts = new AccountService(store.accounts, new PasswordHasher(config.argon2, passwordHashingSlots(config.threadPoolSize)), {
    policy: new PasswordPolicy(config.security.passwordMinLength),
    lockout,
    events,
  });
  const upstreams = new UpstreamService({
    repository: store.upstreams,
    revisions: store.revisions,
    staticUpstreams: config.staticUpstreams,
    masterSecret: secret.value,
    issuer: config.issuer,
    production: config.env === 'production',
    pollSeconds: config.storePollSeconds,
    events,
  });
  const identities = new IdentityService(store.identities, store.accounts, events);
  metadataCheck = clientMetadataCheck({
    config,
    accounts,
    resources,
    adapter: createAdapterClass({ oidc: store.oidc, clients, refreshReuseGraceSeconds: config.refreshReuseGraceSeconds }),
    oidc: store.oidc,
  });
  return {
    accounts,
    clients,
    resources,
    upstreams,
    identities,
    roles: new RoleService(store.accounts, events),
    userImport: new UserImport(store.accounts),
    keys,
    mailer,
    secret,
    emailVerification: new EmailVerification({
      accounts: store.accounts,
      tokens: new LinkTokens(store.oidc, 'EmailVerification', config.ttl.emailVerification),
      mailer,
      issuer: config.issuer,
    }),
    passwordReset: new PasswordReset({
      accounts,
      repository: store.accounts,
      oidc: store.oidc,
      tokens: new LinkTokens(store.oidc, 'PasswordReset', config.ttl.passwordReset),
      mailer,
      issuer: config.issuer,
      revokeAppTokens: config.security.revokeAppTokensOnPasswordChange,
      identities,
      logout: backchannelLogout,
    }),
    rateLimits: new RateLimits(config.security.rateLimits, config.tls.trustedProxies, store),
    secondFactors: new SecondFactorService(store.accounts, store.oidc, mailer, {
      issuer: config.issuer,
      webauthn: config.webauthn,
      emailCodes: Boolean(config.mail.smtpUrl),
      masterSecret: secret.value,
      events,
    }),
    events,
    audit,
    registrationTokens: new RegistrationTokens(store.oidc, events),
    backchannelLogout,
    endAllSessions: (sub) => endAllSessions(store.oidc, sub, backchannelLogout),
    close: () => audit.close(),
  };
}

/**
 * How many password hashes run at once: at most one per core, and one fewer than the thread pool
 * has (at least one), so a thread stays free for the store's disk syncs and token signatures while
 * sign-ins queue for argon2 (store/sqlite/wal-sync.ts, bin/tessera).
 */
function passwordHashingSlots(threadPoolSize: number): number {
  return Math.max(1, Math.min(availableParallelism(), threadPoolSize - 1));
}
