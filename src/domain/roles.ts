/**
 * Roles: names an operator gives accounts (and machine clients) to say what they may do. The
 * `roles` scope releases a person's roles as the `roles` claim, and a resource server can limit
 * some of its scopes to holders of certain roles (`scopeRoles`), so that nobody without one of
 * those roles ever receives such a scope. One rule for everyone: a role-limited scope goes only to
 * a holder of one of its roles, whether a person or a machine client.
 */
import { AppError } from '../errors.ts';
import type { AccountRepository } from '../store/port.ts';
import { normalizeEmail } from './accounts.ts';
import { NO_SECURITY_EVENTS, type SecurityEvents } from './events.ts';

/** Letters, digits and `_ . : -`, starting with a letter or digit: safe in a claim, a log line and a shell. */
const ROLE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
/** A person with more roles than this is a modelling mistake, and the list travels in every ID token. */
export const MAX_ROLES = 100;

/** Roles required per scope: holding any one of them is enough. */
export type ScopeRoles = Record<string, string[]>;

export function roleProblem(role: string): string | undefined {
  return ROLE_NAME.test(role)
    ? undefined
    : `${JSON.stringify(role)} is not a valid role name (letters, digits and _ . : -, at most 64, starting with a letter or digit)`;
}

/** Checks a resource server's scope-to-roles map against the scopes it offers. */
export function scopeRolesProblems(scopes: readonly string[], scopeRoles: ScopeRoles | undefined): string[] {
  const problems: string[] = [];
  for (const [scope, roles] of Object.entries(scopeRoles ?? {})) {
    if (!scopes.includes(scope)) problems.push(`scope_roles names ${scope}, which is not one of the resource's scopes`);
    if (!Array.isArray(roles) || !roles.length) problems.push(`scope_roles for ${scope} needs at least one role`);
    for (const role of Array.isArray(roles) ? roles : []) {
      const problem = roleProblem(String(role));
      if (problem) problems.push(problem);
    }
  }
  return problems;
}

/**
 * The scopes of `offered` that a holder of `roles` may receive: every scope without a role limit,
 * and each limited one whose roles include one of `roles`. `roles` undefined means "nobody is
 * known" (no person signed in yet, a machine without roles): every limited scope is withheld.
 */
export function scopesForRoles(offered: readonly string[], scopeRoles: ScopeRoles | undefined, roles: readonly string[] | undefined): string[] {
  if (!scopeRoles) return [...offered];
  const held = new Set(roles ?? []);
  return offered.filter((scope) => {
    const required = scopeRoles[scope];
    return !required?.length || required.some((role) => held.has(role));
  });
}

/** True when a resource server limits at least one scope to roles. */
export function hasRoleLimits(scopeRoles: ScopeRoles | undefined): scopeRoles is ScopeRoles {
  return Boolean(scopeRoles && Object.values(scopeRoles).some((roles) => roles.length));
}

export class RoleService {
  readonly #accounts: AccountRepository;
  readonly #events: SecurityEvents;

  constructor(accounts: AccountRepository, events: SecurityEvents = NO_SECURITY_EVENTS) {
    this.#accounts = accounts;
    this.#events = events;
  }

  /** Gives the account a role; returns its roles afterwards. Adding a role it has already changes nothing. */
  async add(email: string, role: string): Promise<string[]> {
    const problem = roleProblem(role);
    if (problem) throw new AppError('ERR_INVALID_INPUT', problem);
    const account = await this.#find(email);
    if (account.roles.includes(role)) return account.roles;
    if (account.roles.length >= MAX_ROLES) throw new AppError('ERR_INVALID_INPUT', `an account holds at most ${MAX_ROLES} roles`);
    const roles = [...account.roles, role].sort();
    await this.#accounts.update(account.sub, { roles });
    this.#events.emit({ type: 'role.added', sub: account.sub, details: { role } });
    return roles;
  }

  /** Takes a role away; returns the roles afterwards, and whether the account had it. */
  async remove(email: string, role: string): Promise<{ roles: string[]; removed: boolean }> {
    const account = await this.#find(email);
    if (!account.roles.includes(role)) return { roles: account.roles, removed: false };
    const roles = account.roles.filter((held) => held !== role);
    await this.#accounts.update(account.sub, { roles });
    this.#events.emit({ type: 'role.removed', sub: account.sub, details: { role } });
    return { roles, removed: true };
  }

  async rolesOf(sub: string): Promise<string[] | undefined> {
    const account = await this.#accounts.findBySub(sub);
    return account && !account.disabled ? account.roles : undefined;
  }

  async #find(email: string) {
    const account = await this.#accounts.findByEmail(normalizeEmail(email));
    if (!account) throw new AppError('ERR_NOT_FOUND', `no user with the email ${normalizeEmail(email)}`);
    return { ...account, roles: account.roles ?? [] };
  }
}
