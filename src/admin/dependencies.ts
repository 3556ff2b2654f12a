/**
 * What the admin API works with: the same domain services the CLI uses (built in services.ts, named
 * here by their own types, since services.ts sits above admin/ and imports from it), the running
 * provider (sessions and grants go through its models), and the audit trail.
 */
import type { Provider } from 'oidc-provider';

import type { Config } from '../config.ts';
import type { AccountService } from '../domain/accounts.ts';
import type { AuditService } from '../domain/audit.ts';
import type { SessionLogout } from '../domain/backchannel-logout.ts';
import type { ClientService } from '../domain/clients.ts';
import type { EmailVerification } from '../domain/email-verification.ts';
import type { IdentityService } from '../domain/identities.ts';
import type { NewSecurityEvent } from '../domain/events.ts';
import type { KeyService } from '../domain/keys.ts';
import type { PasswordReset } from '../domain/password-reset.ts';
import type { ResourceService } from '../domain/resources.ts';
import type { RoleService } from '../domain/roles.ts';
import type { SecondFactorService } from '../domain/second-factors.ts';
import type { UpstreamService } from '../domain/upstreams.ts';
import type { UserImport } from '../domain/user-import.ts';
import type { RateLimits } from '../http/rate-limit.ts';
import type { Logger } from '../log.ts';
import type { KeyRepository, OidcStore, RevisionRepository } from '../store/port.ts';

export interface AdminApiDependencies {
  readonly config: Config;
  readonly logger: Logger;
  readonly services: {
    readonly accounts: AccountService;
    readonly roles: RoleService;
    readonly clients: ClientService;
    readonly resources: ResourceService;
    readonly upstreams: UpstreamService;
    readonly identities: IdentityService;
    readonly keys: KeyService;
    readonly secondFactors: SecondFactorService;
    readonly passwordReset: PasswordReset;
    readonly emailVerification: EmailVerification;
    readonly rateLimits: RateLimits;
    readonly userImport: UserImport;
    /** Logout tokens for the apps of the sessions the API ends. */
    readonly backchannelLogout: SessionLogout;
    /** Ends every session of a user (disabling them), with logout tokens for their apps. */
    endAllSessions(sub: string): Promise<number>;
  };
  readonly provider: () => Provider;
  /** Makes this instance see a change at once (caches, a new signing key), without waiting for its poll. */
  readonly refresh: () => Promise<void>;
  /** Sessions and grants, found by account (as the account page does). */
  readonly oidc: OidcStore;
  /** Public signing keys and their revision, for checking tokens. */
  readonly keys: Pick<KeyRepository, 'list'>;
  readonly revisions: Pick<RevisionRepository, 'get'>;
  /** The security-event bus: every admin write emits `admin.action` on it. */
  readonly events: { emit(event: NewSecurityEvent): void } | undefined;
  /** The audit trail, for GET /audit-events; absent, that endpoint answers 503. */
  readonly audit: Pick<AuditService, 'query'> | undefined;
}
