/**
 * The paths oidc-provider answers and how its router matches them (oidc-provider 9.13,
 * lib/helpers/router.js): ASCII letters in either case, and one trailing slash ignored, so `/TOKEN`
 * and `/token/` reach the token endpoint. Tessera's own checks in front of it (the protocol fast
 * path, failed-request limits, the refusal of expired client certificates) compare paths exactly.
 * So the edge of the chain lets a request through only under the spelling those checks know: one
 * routing decision, taken once (see http/edge.ts).
 */

/**
 * oidc-provider's default `routes` (Tessera changes none), the sub-paths it derives from them, and
 * its discovery documents; routes of features Tessera leaves off are listed too, as they cost nothing.
 * `/interaction/:uid` is not here: Tessera's own router answers it, and oidc-provider's is off.
 */
const ROUTES = [
  '/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', '/.well-known/openid-credential-issuer',
  '/auth', '/auth/:uid', '/backchannel', '/challenge', '/credential', '/device', '/device/auth', '/device/:uid',
  '/jwks', '/me', '/reg', '/reg/:clientId', '/request', '/session/end', '/session/end/confirm', '/session/end/success',
  '/token', '/token/introspection', '/token/revocation',
];

const fold = (value: string) => value.replace(/[a-z]+/g, (letters) => letters.toUpperCase());

const STATIC = new Map(ROUTES.filter((route) => !route.includes('/:')).map((route) => [fold(route), route]));
const DYNAMIC = ROUTES.filter((route) => route.includes('/:')).map((route) => route.split('/'));
/** Static routes as spelled: nearly every request's path, decided without folding it. */
const CANONICAL: ReadonlySet<string> = new Set(STATIC.values());

/** The spelling of the route oidc-provider would answer `path` with (parameters as sent), if any. */
function routedAs(path: string): string | undefined {
  const folded = fold(path);
  const known = STATIC.get(folded);
  if (known) return known;
  const parts = path.split('/');
  const foldedParts = folded.split('/');
  for (const segments of DYNAMIC) {
    if (segments.length !== parts.length) continue;
    if (segments.every((segment, index) => (segment.startsWith(':') ? parts[index] !== '' : fold(segment) === foldedParts[index]))) {
      return segments.map((segment, index) => (segment.startsWith(':') ? parts[index] : segment)).join('/');
    }
  }
  return undefined;
}

/** Whether oidc-provider would route `path`, but under another spelling than the route's own. */
export function isProtocolPathVariant(path: string): boolean {
  if (CANONICAL.has(path)) return false;
  const canonical = routedAs(path) ?? (path.length > 1 && path.endsWith('/') ? routedAs(path.slice(0, -1)) : undefined);
  return canonical !== undefined && canonical !== path;
}
