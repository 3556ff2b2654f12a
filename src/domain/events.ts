/**
 * Security events: what happened to accounts, clients, keys and tokens, on a typed in-process bus.
 * Domain services and routes emit; the audit trail (audit.ts) and the metrics
 * (observability/metrics.ts) listen.
 *
 * An event never carries a secret: no password, code, token, client secret or recovery code, and
 * never a token's id (an opaque token's id IS the token). Details hold names, counts and reasons.
 *
 * Emitting never fails and never waits: listeners run synchronously and must be cheap (the audit
 * trail only queues the event); an error in a listener is reported and swallowed, so a broken
 * listener can never fail or slow the request that emitted.
 */

/** Every event type, with a stable name: audit queries, metrics and alerts match on these strings. */
export const SECURITY_EVENT_TYPES = [
  // Signing in (password, second factor, passkey) and lockout.
  'signin.succeeded',
  'signin.failed',
  'account.locked',
  'account.unlocked',
  // Accounts.
  'account.created',
  'account.disabled',
  'account.enabled',
  'email.verified',
  'password.changed',
  'password.reset',
  'role.added',
  'role.removed',
  // Second factors and passkeys.
  'second_factor.added',
  'second_factor.removed',
  'recovery_codes.generated',
  'passkey.added',
  'passkey.removed',
  // Identities at upstream providers (Google, GitHub, ...): one proved who someone is (the first
  // factor; the sign-in completes with signin.succeeded), linked to an account, unlinked.
  'identity.signed_in',
  'identity.linked',
  'identity.unlinked',
  // What people let apps do, and the sessions they are signed in with.
  'consent.given',
  'consent.denied',
  'consent.revoked',
  'session.ended',
  // Tokens (see provider-host.ts for which issuances are recorded).
  'token.issued',
  'token.revoked',
  // Configuration an operator changes.
  'client.created',
  'client.changed',
  'client.deleted',
  'resource.created',
  'resource.deleted',
  'upstream.created',
  'upstream.deleted',
  'key.rotated',
  'registration_token.created',
  'admin.action',
] as const;

export type SecurityEventType = (typeof SECURITY_EVENT_TYPES)[number];

const KNOWN_TYPES: ReadonlySet<string> = new Set(SECURITY_EVENT_TYPES);

export function isSecurityEventType(value: unknown): value is SecurityEventType {
  return typeof value === 'string' && KNOWN_TYPES.has(value);
}

/** Detail values are plain data, so every backend stores them as they are. */
export type EventDetail = string | number | boolean | null | readonly string[];

export interface SecurityEvent {
  readonly type: SecurityEventType;
  readonly at: Date;
  /** The account concerned (the subject), when there is one. */
  readonly sub?: string;
  /** The client concerned: the app signed in to, the client a token was issued to, the client changed. */
  readonly clientId?: string;
  /** Where the request came from (after trusted proxies); absent outside a request (CLI). */
  readonly ip?: string;
  /** The X-Request-Id of the request that caused the event; absent outside a request. */
  readonly requestId?: string;
  readonly details?: Readonly<Record<string, EventDetail>>;
}

/** What an emitter gives: the time and the request's id and address are filled in by the bus. */
export type NewSecurityEvent = Omit<SecurityEvent, 'at'> & { readonly at?: Date };

/** The request an event happens in, if any (see request-context.ts). */
export interface EventContext {
  readonly requestId: string;
  ip(): string;
}

export type SecurityEventListener = (event: SecurityEvent) => void;

export interface SecurityEventsOptions {
  /** The current request, read when an event is emitted without its own requestId/ip. */
  context?: () => EventContext | undefined;
  /** Told about a listener that threw; the event still reaches the other listeners. */
  onListenerError?: (error: unknown, event: SecurityEvent) => void;
}

export class SecurityEvents {
  readonly #listeners: SecurityEventListener[] = [];
  readonly #context: () => EventContext | undefined;
  readonly #onListenerError: (error: unknown, event: SecurityEvent) => void;

  constructor(options: SecurityEventsOptions = {}) {
    this.#context = options.context ?? (() => undefined);
    this.#onListenerError = options.onListenerError ?? (() => undefined);
  }

  /** Adds a listener; returns the function that removes it. */
  on(listener: SecurityEventListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const index = this.#listeners.indexOf(listener);
      if (index >= 0) this.#listeners.splice(index, 1);
    };
  }

  emit(input: NewSecurityEvent): void {
    if (this.#listeners.length === 0) return;
    const context = input.requestId === undefined || input.ip === undefined ? this.#context() : undefined;
    const event: SecurityEvent = {
      ...input,
      at: input.at ?? new Date(),
      ...(input.requestId === undefined && context && { requestId: context.requestId }),
      ...(input.ip === undefined && context && { ip: context.ip() }),
    };
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#onListenerError(error, event);
      }
    }
  }
}

/** For code built without a bus (unit tests, scripts): emits to nobody. */
export const NO_SECURITY_EVENTS = new SecurityEvents();
