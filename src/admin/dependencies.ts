/**
 * What the admin API works with: the same domain services the CLI uses (services.ts), the running
 * provider (sessions and grants go through its models), and the audit trail.
 */
import type { Provider } from 'oidc-provider';

import type { Config } from '../config.ts';
import type { AuditService } from '../domain/audit.ts';
import type { NewSecurityEvent } from '../domain/events.ts';
import type { Logger } from '../log.ts';
import type { Services } from '../services.ts';
import type { KeyRepository, OidcStore, RevisionRepository } from '../store/port.ts';

export interface AdminApiDependencies {
  readonly config: Config;
  readonly logger: Logger;
  readonly services: Pick<Services,
    'accounts' | 'roles' | 'clients' | 'resources' | 'keys' | 'secondFactors' | 'passwordReset' | 'emailVerification' | 'rateLimits' | 'backchannelLogout' | 'endAllSessions'>;
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
