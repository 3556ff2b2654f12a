/**
 * The admin API is a resource server like any other, built in: its audience is `${issuer}/admin/api`
 * and its one scope, `admin`, is limited to holders of the `admin` role. So the ordinary token
 * machinery decides who gets an admin token (a machine client allowed this resource and holding the
 * role, or a person with the role signing in through an app allowed this resource), and the API
 * only has to check the tokens it is shown (authentication.ts).
 */
import type { StaticResource } from '../config.ts';

export const ADMIN_API_PATH = '/admin/api';
export const ADMIN_SCOPE = 'admin';
export const ADMIN_ROLE = 'admin';
/** Short: JWT access tokens cannot be revoked, and the holder's role is checked again at every request anyway. */
export const ADMIN_TOKEN_TTL_SECONDS = 300;

export function adminAudience(issuer: string): string {
  return `${issuer}${ADMIN_API_PATH}`;
}

export function adminResource(issuer: string): StaticResource {
  return {
    audience: adminAudience(issuer),
    name: 'Tessera admin API',
    scopes: [ADMIN_SCOPE],
    format: 'jwt',
    ttlSeconds: ADMIN_TOKEN_TTL_SECONDS,
    scopeRoles: { [ADMIN_SCOPE]: [ADMIN_ROLE] },
  };
}
