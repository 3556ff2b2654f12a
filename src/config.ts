/**
 * Configuration is read once, validated, frozen and passed down. Nothing else in Tessera reads
 * `process.env`. Every problem becomes one line of a ConfigError, and startup stops.
 */
import { createHash } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { z } from 'zod';

import { AppError } from './errors.ts';
import { SUPPORTED_LOCALES, type Locale } from './i18n/locales.ts';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Argon2Parameters {
  readonly memoryKiB: number;
  readonly timeCost: number;
  readonly parallelism: number;
}

export interface Config {
  readonly env: 'development' | 'production' | 'test';
  readonly port: number;
  readonly host: string | undefined;
  readonly issuer: string;
  /** False when ISSUER was not given: the server then derives it from the port it actually listens on. */
  readonly issuerExplicit: boolean;
  readonly dataDir: string;
  readonly configDir: string;
  readonly mongodbUri: string | undefined;
  readonly logLevel: LogLevel;
  /** The master secret from TESSERA_SECRET; undefined means "generate one into DATA_DIR" (development only). */
  readonly secret: string | undefined;
  /**
   * Tessera sits behind a TLS-terminating proxy: X-Forwarded-Host is read (and checked against
   * ISSUER's host), but only from `tls.trustedProxies` (loopback when TRUSTED_PROXIES is unset
   * outside production); the scheme is always ISSUER's (http/edge.ts).
   */
  readonly behindTlsProxy: boolean;
  readonly argon2: Argon2Parameters;
  readonly ttl: {
    readonly accessToken: number;
    readonly idToken: number;
    readonly refreshToken: number;
    readonly authorizationCode: number;
    readonly session: number;
    readonly interaction: number;
    readonly grant: number;
    /** Lifetime of an email verification link. */
    readonly emailVerification: number;
    /** Lifetime of a password reset link. */
    readonly passwordReset: number;
    /** Lifetime of a device code and its user code (RFC 8628): how long the person has to enter it. */
    readonly deviceCode: number;
  };
  /** Seconds a device must wait between polls of the token endpoint (RFC 8628 `interval`); faster is slow_down. */
  readonly devicePollInterval: number;
  /** Seconds during which a just-rotated refresh token may be presented again (concurrent refreshes). */
  readonly refreshReuseGraceSeconds: number;
  /** How often a running server looks for key and client changes made elsewhere (CLI, other instances). */
  readonly storePollSeconds: number;
  /** Longest wait for one request to an upstream identity provider (discovery, token, JWKS, API). */
  readonly upstreamTimeoutSeconds: number;
  /** Worker processes `tessera serve` runs (WORKERS; default one per core); 1 runs no cluster at all. */
  readonly workers: number;
  /**
   * Threads in libuv's pool (UV_THREADPOOL_SIZE, which bin/tessera sets for `serve`; libuv's default
   * is 4): they sign tokens, hash passwords and do file I/O. Password hashing never takes more of them
   * than this at once.
   */
  readonly threadPoolSize: number;
  /** Static clients from config/clients.json, as oidc-provider metadata. */
  readonly staticClients: readonly Record<string, unknown>[];
  /** Static resource servers from config/resources.json. */
  readonly staticResources: readonly StaticResource[];
  /** Static upstream identity providers from config/upstreams.json; domain/upstreams.ts checks them in depth. */
  readonly staticUpstreams: readonly StaticUpstream[];
  readonly tls: TlsConfig;
  readonly security: SecurityConfig;
  readonly mail: MailConfig;
  /** Passkeys: the relying party id defaults to the issuer's host name, the origin is the issuer's. */
  readonly webauthn: { readonly rpId: string | undefined; readonly rpName: string };
  readonly observability: ObservabilityConfig;
  /**
   * DEFAULT_LOCALE: the language of pages and mails when nothing else says which (no `ui_locales`, no
   * pick in the switcher, no Accept-Language Tessera speaks). One of SUPPORTED_LOCALES.
   */
  readonly defaultLocale: Locale;
  /** Clients that come by themselves: dynamic registration and client ID metadata documents. */
  readonly selfRegistration: SelfRegistrationConfig;
  /** The operator's look: CONFIG_DIR/branding.json and the BRANDING_* variables (which win). */
  readonly branding: BrandingConfig;
}

/** A file the operator named for branding, read and checked at startup, served under /assets/brand/. */
export interface BrandAsset {
  /** Its address: the name says what it is, `?v=` its content, so it can be cached for a year. */
  readonly url: string;
  readonly contentType: string;
  /** The bytes, base64 (a frozen config cannot hold a Buffer). */
  readonly base64: string;
}

export interface BrandingConfig {
  /** On every page (header, title) and every mail; "Tessera" unless the operator names their own. */
  readonly productName: string;
  /** Whether the operator named the product (mail subjects then carry the name). */
  readonly productNamed: boolean;
  /** #rrggbb; drives the accent custom properties (http/branding.ts makes it readable in both modes). */
  readonly primaryColor: string | undefined;
  readonly logo: { readonly light: BrandAsset | undefined; readonly dark: BrandAsset | undefined };
  readonly favicon: BrandAsset | undefined;
  /** The operator's own stylesheet, loaded after Tessera's. */
  readonly stylesheet: BrandAsset | undefined;
}

/**
 * Clients that register themselves (RFC 7591) or name a metadata document as their client_id.
 * Both meet the same policy (domain/registered-clients.ts).
 */
export interface SelfRegistrationConfig {
  /** DYNAMIC_CLIENT_REGISTRATION: off (no endpoint), token (an initial access token from the CLI), open. */
  readonly mode: 'off' | 'token' | 'open';
  /** Scopes a registered client may ask for (DYNAMIC_CLIENT_REGISTRATION_SCOPES). */
  readonly scopes: readonly string[];
  /** Days after which a registered client that never got a token is removed. */
  readonly unusedDays: number;
  /** CLIENT_ID_METADATA_DOCUMENTS=on. */
  readonly metadataDocuments: boolean;
  /** Hosts whose metadata documents are fetched (empty: any host not denied). */
  readonly metadataDocumentAllowedHosts: readonly string[];
  readonly metadataDocumentDeniedHosts: readonly string[];
  /** Largest metadata document accepted, in bytes. */
  readonly metadataDocumentMaxBytes: number;
  /** How long a fetched document is kept, bounds on what its Cache-Control asks. */
  readonly metadataDocumentCacheSeconds: { readonly min: number; readonly max: number };
  /**
   * ALLOW_LOOPBACK_FETCHES, outside production only: oidc-provider's outgoing requests (metadata
   * documents, jwks_uri, logout tokens) may reach loopback and private addresses, which it refuses
   * by default (SSRF). For tests and a developer's machine, where everything runs on localhost.
   */
  readonly allowLoopbackFetches: boolean;
}

/** `points` actions per `seconds`, counted in the store per key. */
export interface RateLimit {
  readonly points: number;
  readonly seconds: number;
}

export interface SecurityConfig {
  readonly passwordMinLength: number;
  /** Consecutive failed sign-ins that lock an account. */
  readonly lockoutThreshold: number;
  /** First lockout length; each further lockout without a successful sign-in doubles it, up to a day. */
  readonly lockoutSeconds: number;
  readonly rateLimits: {
    readonly signInPerIp: RateLimit;
    readonly signInPerAccount: RateLimit;
    readonly registrationPerIp: RateLimit;
    readonly passwordResetPerIp: RateLimit;
    readonly passwordResetPerAccount: RateLimit;
    readonly secondFactorPerAccount: RateLimit;
    /** Failed token requests (bad client credentials or grants) per address, and per client id from one address. */
    readonly tokenFailuresPerIp: RateLimit;
    readonly tokenFailuresPerClient: RateLimit;
    /** Admin API requests refused for a missing or bad access token, per address. */
    readonly adminFailuresPerIp: RateLimit;
    /** Dynamic client registrations (POST /reg) per address. */
    readonly clientRegistrationPerIp: RateLimit;
    /** User codes entered on the device page (RFC 8628 section 5.1: guessing them), per address. */
    readonly userCodePerIp: RateLimit;
  };
  /**
   * A password reset or change also ends the refresh tokens (and stored access tokens) of every app
   * the person let in: a thief who signed in with the stolen password keeps no app's access.
   */
  readonly revokeAppTokensOnPasswordChange: boolean;
  /** POST /api/accounts for first-party apps. */
  readonly registrationApi: boolean;
  /** The admin API under /admin/api, and its built-in resource server `${issuer}/admin/api`. */
  readonly adminApi: boolean;
}

export interface MailConfig {
  /** smtp:// or smtps:// URL; without it, messages are written to DATA_DIR/outbox as .eml files. */
  readonly smtpUrl: string | undefined;
  readonly from: string;
}

export interface ObservabilityConfig {
  /**
   * Bearer token /metrics asks for (METRICS_TOKEN). Without one, /metrics is open outside production
   * and not served in production: metrics show who signs in how often, which is for operators only.
   */
  readonly metricsToken: string | undefined;
  /** Days an audit event is kept (AUDIT_RETENTION_DAYS). */
  readonly auditRetentionDays: number;
}

/**
 * Algorithms a resource server's JWT access tokens may be signed with, each served by a signing key
 * family Tessera keeps (domain/keys.ts: RSA for RS256 and PS256, P-256, Ed25519). RS256 is the default:
 * every JWT library verifies it.
 */
export const ACCESS_TOKEN_SIGNING_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;
export type AccessTokenSigningAlg = (typeof ACCESS_TOKEN_SIGNING_ALGS)[number];
export const DEFAULT_ACCESS_TOKEN_SIGNING_ALG: AccessTokenSigningAlg = 'RS256';

export interface StaticResource {
  readonly audience: string;
  readonly name?: string | undefined;
  readonly scopes: readonly string[];
  readonly format: 'jwt' | 'opaque';
  readonly ttlSeconds: number;
  /** Scopes limited to holders of one of the listed roles (`scope_roles` in the file). */
  readonly scopeRoles?: Readonly<Record<string, readonly string[]>> | undefined;
  /** The only clients that may ask for it in the code flow (`clients` in the file); absent, any client with consent. */
  readonly clients?: readonly string[] | undefined;
  /** The JWS algorithm of its JWT access tokens (`signing_alg` in the file; absent: RS256). */
  readonly signingAlg?: AccessTokenSigningAlg | undefined;
}

/** An upstream provider as written in config/upstreams.json, its secret resolved (from the file or an environment variable). */
export interface StaticUpstream {
  readonly id: string;
  readonly name?: string | undefined;
  readonly preset?: string | undefined;
  readonly issuer?: string | undefined;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scopes?: readonly string[] | undefined;
  readonly trustEmail: boolean;
  readonly authorizationEndpoint?: string | undefined;
  readonly tokenEndpoint?: string | undefined;
  readonly userEndpoint?: string | undefined;
  readonly emailsEndpoint?: string | undefined;
}

export interface TlsConfig {
  /** PEM certificate and key for the HTTPS listener (browsers) and the mTLS listener. */
  readonly cert: string | undefined;
  readonly key: string | undefined;
  /** A second listener that asks for client certificates (RFC 8705); never used by browsers. */
  readonly mtlsPort: number | undefined;
  /** Public base URL of the mTLS endpoints, published as mtls_endpoint_aliases. */
  readonly mtlsUrl: string | undefined;
  /** PEM bundle of CAs that tls_client_auth certificates must chain to. */
  readonly clientCa: string | undefined;
  /** Header a trusted TLS-terminating proxy puts the client certificate in. */
  readonly clientCertHeader: string | undefined;
  /**
   * Addresses (IPs or CIDRs) whose forwarded headers are believed: certificate headers,
   * X-Forwarded-For, and with BEHIND_TLS_PROXY X-Forwarded-Host. From any
   * other peer those headers are dropped before anything reads them.
   */
  readonly trustedProxies: readonly string[];
}

export class ConfigError extends AppError {
  readonly problems: readonly string[];

  constructor(problems: string[]) {
    super('ERR_CONFIG', problems.map((p) => `Configuration error: ${p}`).join('\n'));
    this.problems = problems;
  }
}

/** Trusted proxies when BEHIND_TLS_PROXY is set without TRUSTED_PROXIES outside production. */
export const LOOPBACK: readonly string[] = Object.freeze(['127.0.0.0/8', '::1']);

const integer = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const seconds = (fallback: number, max = 31_536_000) => integer(1, max).default(fallback);

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: integer(0, 65_535).default(3000),
  HOST: z.string().min(1).optional(),
  ISSUER: z.url({ protocol: /^https?$/ }).optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  CONFIG_DIR: z.string().min(1).default('./config'),
  MONGODB_URI: z.string().regex(/^mongodb(\+srv)?:\/\//, 'must start with mongodb:// or mongodb+srv://').optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  TESSERA_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  BEHIND_TLS_PROXY: z.stringbool().default(false),
  // OWASP's argon2id options (m=47104/t=1, 19456/2, 12288/3, 9216/4, 7168/5) give the same defence;
  // the last is Keycloak's default too, costs a little less time per verify than 19456/2 here and
  // holds 7 MiB per hash instead of 19 (bench/run.ts, README Performance).
  ARGON2_MEMORY_KIB: integer(7_168, 4_194_304).default(7_168),
  ARGON2_TIME_COST: integer(1, 100).default(5),
  ARGON2_PARALLELISM: integer(1, 64).default(1),
  ACCESS_TOKEN_TTL: seconds(900),
  ID_TOKEN_TTL: seconds(3600),
  REFRESH_TOKEN_TTL: seconds(14 * 86_400),
  AUTHORIZATION_CODE_TTL: seconds(60, 600),
  SESSION_TTL: seconds(14 * 86_400),
  INTERACTION_TTL: seconds(3600),
  EMAIL_VERIFICATION_TTL: seconds(86_400, 7 * 86_400),
  PASSWORD_RESET_TTL: seconds(1800, 86_400),
  DEVICE_CODE_TTL: seconds(600, 3600),
  DEVICE_POLL_INTERVAL: integer(1, 60).default(5),
  REFRESH_REUSE_GRACE_SECONDS: integer(0, 60).default(0),
  STORE_POLL_SECONDS: integer(1, 3600).default(10),
  UPSTREAM_TIMEOUT_SECONDS: integer(1, 60).default(10),
  WORKERS: integer(1, 256).optional(),
  UV_THREADPOOL_SIZE: integer(1, 1024).optional(),
  TLS_CERT: z.string().min(1).optional(),
  TLS_KEY: z.string().min(1).optional(),
  MTLS_PORT: integer(0, 65_535).optional(),
  MTLS_URL: z.url({ protocol: /^https$/ }).optional(),
  MTLS_CA: z.string().min(1).optional(),
  CLIENT_CERT_HEADER: z.string().regex(/^[A-Za-z0-9-]+$/, 'must be an HTTP header name').optional(),
  TRUSTED_PROXIES: z.string().optional(),
  PASSWORD_MIN_LENGTH: integer(8, 64).default(12),
  LOCKOUT_THRESHOLD: integer(1, 100).default(5),
  LOCKOUT_SECONDS: integer(1, 86_400).default(300),
  RATE_LIMIT_SIGNIN_PER_IP: rateLimit('30/300'),
  RATE_LIMIT_SIGNIN_PER_ACCOUNT: rateLimit('10/300'),
  RATE_LIMIT_REGISTRATION_PER_IP: rateLimit('10/3600'),
  RATE_LIMIT_PASSWORD_RESET_PER_IP: rateLimit('10/3600'),
  RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT: rateLimit('3/3600'),
  RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT: rateLimit('10/300'),
  RATE_LIMIT_TOKEN_FAILURES_PER_IP: rateLimit('60/300'),
  RATE_LIMIT_TOKEN_FAILURES_PER_CLIENT: rateLimit('30/300'),
  REVOKE_APP_TOKENS_ON_PASSWORD_CHANGE: z.stringbool().default(true),
  REGISTRATION_API: z.stringbool().default(true),
  ADMIN_API: z.stringbool().default(true),
  RATE_LIMIT_ADMIN_FAILURES_PER_IP: rateLimit('30/300'),
  RATE_LIMIT_USER_CODE_PER_IP: rateLimit('10/300'),
  SMTP_URL: z.string().regex(/^smtps?:\/\//, 'must start with smtp:// or smtps://').optional(),
  MAIL_FROM: z.string().min(3).default('Tessera <no-reply@localhost>'),
  WEBAUTHN_RP_ID: z.string().min(1).optional(),
  WEBAUTHN_RP_NAME: z.string().min(1).default('Tessera'),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').regex(/^[\x21-\x7E]+$/, 'must be printable ASCII without spaces').optional(),
  AUDIT_RETENTION_DAYS: integer(1, 3650).default(90),
  DEFAULT_LOCALE: z.enum(SUPPORTED_LOCALES, { error: `must be one of ${SUPPORTED_LOCALES.join(', ')}` }).default('en'),
  DYNAMIC_CLIENT_REGISTRATION: z.enum(['off', 'token', 'open']).default('off'),
  BRANDING_PRODUCT_NAME: z.string().trim().min(1).max(60).optional(),
  BRANDING_PRIMARY_COLOR: z.string().optional(),
  BRANDING_LOGO: z.string().min(1).optional(),
  BRANDING_LOGO_DARK: z.string().min(1).optional(),
  BRANDING_FAVICON: z.string().min(1).optional(),
  BRANDING_STYLESHEET: z.string().min(1).optional(),
  DYNAMIC_CLIENT_REGISTRATION_SCOPES: z.string().default('openid profile email offline_access'),
  DYNAMIC_CLIENT_REGISTRATION_UNUSED_DAYS: integer(1, 3650).default(30),
  RATE_LIMIT_CLIENT_REGISTRATION_PER_IP: rateLimit('20/3600'),
  CLIENT_ID_METADATA_DOCUMENTS: z.enum(['on', 'off']).default('off'),
  CLIENT_ID_METADATA_DOCUMENTS_ALLOWED_HOSTS: z.string().optional(),
  CLIENT_ID_METADATA_DOCUMENTS_DENIED_HOSTS: z.string().optional(),
  CLIENT_ID_METADATA_DOCUMENTS_MAX_BYTES: integer(256, 1_048_576).default(5120),
  CLIENT_ID_METADATA_DOCUMENTS_CACHE_SECONDS: z.string().default('300/86400').transform((value, ctx) => {
    const match = /^(\d+)\/(\d+)$/.exec(value.trim());
    if (!match || Number(match[1]) > Number(match[2])) {
      ctx.addIssue({ code: 'custom', message: 'must be MIN/MAX seconds with MIN <= MAX, e.g. 300/86400' });
      return z.NEVER;
    }
    return { min: Number(match[1]), max: Number(match[2]) };
  }),
  ALLOW_LOOPBACK_FETCHES: z.stringbool().default(false),
});

/** `POINTS/SECONDS`, e.g. `10/300` for ten per five minutes. */
function rateLimit(fallback: string) {
  return z.string().default(fallback).transform((value, ctx) => {
    const match = /^(\d+)\/(\d+)$/.exec(value.trim());
    if (!match || Number(match[1]) < 1 || Number(match[2]) < 1) {
      ctx.addIssue({ code: 'custom', message: 'must be POINTS/SECONDS, e.g. 10/300' });
      return z.NEVER;
    }
    return { points: Number(match[1]), seconds: Number(match[2]) };
  });
}

/** Resource servers as written in config/resources.json. */
const resourcesFileSchema = z.array(z.object({
  audience: z.url(),
  name: z.string().min(1).optional(),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'must be a valid scope token')).min(1),
  format: z.enum(['jwt', 'opaque']).default('jwt'),
  ttl: z.number().int().min(1).max(86_400).default(300),
  scope_roles: z.record(z.string(), z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'must be a role name')).min(1)).optional(),
  clients: z.array(z.string().min(1)).min(1).optional(),
  signing_alg: z.enum(ACCESS_TOKEN_SIGNING_ALGS).optional(),
}).strict().superRefine((resource, ctx) => {
  if (resource.signing_alg && resource.format !== 'jwt') ctx.addIssue({ code: 'custom', path: ['signing_alg'], message: 'applies to JWT access tokens only (format "jwt")' });
  for (const scope of Object.keys(resource.scope_roles ?? {})) {
    if (!resource.scopes.includes(scope)) ctx.addIssue({ code: 'custom', path: ['scope_roles', scope], message: 'is not one of the resource\'s scopes' });
  }
}));

/** Upstream providers as written in config/upstreams.json; the secret inline or, better, named by an environment variable. */
const upstreamsFileSchema = z.array(z.object({
  id: z.string().min(1),
  name: z.string().min(1).optional(),
  preset: z.string().optional(),
  issuer: z.string().optional(),
  client_id: z.string().min(1),
  client_secret: z.string().min(1).optional(),
  client_secret_env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name').optional(),
  scopes: z.array(z.string()).min(1).optional(),
  trust_email: z.boolean().default(false),
  authorization_endpoint: z.string().optional(),
  token_endpoint: z.string().optional(),
  user_endpoint: z.string().optional(),
  emails_endpoint: z.string().optional(),
}).strict().refine((upstream) => (upstream.client_secret === undefined) !== (upstream.client_secret_env === undefined), {
  message: 'give exactly one of client_secret and client_secret_env',
}));

/** Client metadata is checked in depth by oidc-provider at startup; here only the shape a file must have. */
const clientsFileSchema = z.array(
  z.looseObject({
    client_id: z.string().min(1),
    redirect_uris: z.array(z.url()).optional(),
  }),
);

function describeIssue(issue: z.core.$ZodIssue, prefix = ''): string {
  const where = issue.path.length ? `${prefix}${issue.path.join('.')}` : prefix.replace(/\.$/, '') || 'value';
  return `${where}: ${issue.message}`;
}

function readJsonFile(file: string, problems: string[]): unknown {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    problems.push(`${file}: not valid JSON (${(error as Error).message})`);
    return undefined;
  }
}

/** Reads and validates configuration from environment variables and the files in CONFIG_DIR. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  // Empty strings (e.g. `PORT=` in a compose file) mean "not set", not "invalid".
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => describeIssue(issue)));
  }
  const e = parsed.data;
  const problems: string[] = [];

  const scheme = e.TLS_CERT ? 'https' : 'http';
  const issuer = (e.ISSUER ?? `${scheme}://localhost:${e.PORT}`).replace(/\/+$/, '');
  if (e.ISSUER && (new URL(issuer).search || new URL(issuer).hash)) {
    problems.push('ISSUER: must not contain a query or fragment');
  }
  if (e.NODE_ENV === 'production') {
    if (!e.TESSERA_SECRET) {
      problems.push('TESSERA_SECRET: required when NODE_ENV=production (generated secrets are for development only)');
    }
    if (issuer.startsWith('http:') && !e.BEHIND_TLS_PROXY) {
      problems.push('ISSUER: must be https when NODE_ENV=production (set BEHIND_TLS_PROXY=true if a TLS proxy fronts Tessera)');
    }
  }

  const configDir = path.resolve(cwd, e.CONFIG_DIR);
  const clientsFile = path.join(configDir, 'clients.json');
  const rawClients = readJsonFile(clientsFile, problems) ?? [];
  const clients = clientsFileSchema.safeParse(rawClients);
  if (!clients.success) {
    problems.push(...clients.error.issues.map((issue) => describeIssue(issue, `${clientsFile}: `)));
  }

  const resourcesFile = path.join(configDir, 'resources.json');
  const resources = resourcesFileSchema.safeParse(readJsonFile(resourcesFile, problems) ?? []);
  if (!resources.success) {
    problems.push(...resources.error.issues.map((issue) => describeIssue(issue, `${resourcesFile}: `)));
  }

  const upstreamsFile = path.join(configDir, 'upstreams.json');
  const upstreams = upstreamsFileSchema.safeParse(readJsonFile(upstreamsFile, problems) ?? []);
  if (!upstreams.success) {
    problems.push(...upstreams.error.issues.map((issue) => describeIssue(issue, `${upstreamsFile}: `)));
  }
  const staticUpstreams: StaticUpstream[] = [];
  for (const [index, upstream] of (upstreams.success ? upstreams.data : []).entries()) {
    const clientSecret = upstream.client_secret ?? env[upstream.client_secret_env ?? ''];
    if (!clientSecret) problems.push(`${upstreamsFile}: ${index}.client_secret_env: ${upstream.client_secret_env} is not set`);
    staticUpstreams.push({
      id: upstream.id,
      name: upstream.name,
      preset: upstream.preset,
      issuer: upstream.issuer,
      clientId: upstream.client_id,
      clientSecret: clientSecret ?? '',
      scopes: upstream.scopes,
      trustEmail: upstream.trust_email,
      authorizationEndpoint: upstream.authorization_endpoint,
      tokenEndpoint: upstream.token_endpoint,
      userEndpoint: upstream.user_endpoint,
      emailsEndpoint: upstream.emails_endpoint,
    });
  }

  const tls: { -readonly [K in keyof TlsConfig]: TlsConfig[K] } = {
    cert: readPemFile('TLS_CERT', e.TLS_CERT, cwd, problems),
    key: readPemFile('TLS_KEY', e.TLS_KEY, cwd, problems),
    mtlsPort: e.MTLS_PORT,
    mtlsUrl: e.MTLS_URL?.replace(/\/+$/, ''),
    clientCa: readPemFile('MTLS_CA', e.MTLS_CA, cwd, problems),
    clientCertHeader: e.CLIENT_CERT_HEADER?.toLowerCase(),
    trustedProxies: (e.TRUSTED_PROXIES ?? '').split(',').map((entry) => entry.trim()).filter(Boolean),
  };
  if (Boolean(e.TLS_CERT) !== Boolean(e.TLS_KEY)) problems.push('TLS_CERT and TLS_KEY: set both or neither');
  if (e.MTLS_PORT !== undefined && !(e.TLS_CERT && e.TLS_KEY)) problems.push('MTLS_PORT: needs TLS_CERT and TLS_KEY for the mTLS listener');
  for (const entry of tls.trustedProxies) {
    if (!isAddressOrCidr(entry)) problems.push(`TRUSTED_PROXIES: ${entry} is not an IP address or CIDR range`);
  }
  if (tls.mtlsUrl && e.MTLS_PORT === undefined && !tls.clientCertHeader) {
    problems.push('MTLS_URL: needs MTLS_PORT (Tessera terminates mTLS) or CLIENT_CERT_HEADER (a proxy does)');
  }
  if (tls.clientCertHeader && !tls.trustedProxies.length) problems.push('CLIENT_CERT_HEADER: needs TRUSTED_PROXIES, or any client could claim any certificate');
  if (e.BEHIND_TLS_PROXY && !tls.trustedProxies.length) {
    // Believing forwarded headers from every peer would let anyone name the host and the client
    // address; in production the proxy's address must be stated. Elsewhere a proxy on the same
    // machine (a developer's nginx or Caddy) is the common case.
    if (e.NODE_ENV === 'production') problems.push('BEHIND_TLS_PROXY: needs TRUSTED_PROXIES (the proxy\'s addresses) when NODE_ENV=production');
    else tls.trustedProxies = [...LOOPBACK];
  }

  const listOf = (value: string | undefined) => (value ?? '').split(/[\s,]+/).map((entry) => entry.trim().toLowerCase()).filter(Boolean);
  const registrationScopes = listOf(e.DYNAMIC_CLIENT_REGISTRATION_SCOPES);
  // The OpenID Connect scopes (domain/scopes.ts OIDC_SCOPES; config.ts imports nothing above it):
  // an API's scopes are given by its resource server, not by this list.
  const personScopes = ['openid', 'profile', 'email', 'offline_access', 'roles'];
  for (const scope of registrationScopes) {
    if (!personScopes.includes(scope)) problems.push(`DYNAMIC_CLIENT_REGISTRATION_SCOPES: ${JSON.stringify(scope)} is not one of ${personScopes.join(', ')} (an API's scopes come with its resource server)`);
  }
  if (!registrationScopes.length) problems.push('DYNAMIC_CLIENT_REGISTRATION_SCOPES: name at least one scope, e.g. openid');
  const allowedHosts = listOf(e.CLIENT_ID_METADATA_DOCUMENTS_ALLOWED_HOSTS);
  const deniedHosts = listOf(e.CLIENT_ID_METADATA_DOCUMENTS_DENIED_HOSTS);
  if (allowedHosts.length && deniedHosts.length) {
    problems.push('CLIENT_ID_METADATA_DOCUMENTS_ALLOWED_HOSTS and CLIENT_ID_METADATA_DOCUMENTS_DENIED_HOSTS: set one or the other (an allow-list already denies every other host)');
  }
  if ((allowedHosts.length || deniedHosts.length) && e.CLIENT_ID_METADATA_DOCUMENTS !== 'on') {
    problems.push('CLIENT_ID_METADATA_DOCUMENTS_ALLOWED_HOSTS/DENIED_HOSTS: need CLIENT_ID_METADATA_DOCUMENTS=on');
  }
  if (e.ALLOW_LOOPBACK_FETCHES && e.NODE_ENV === 'production') {
    problems.push('ALLOW_LOOPBACK_FETCHES: refused when NODE_ENV=production (outgoing requests to loopback and private addresses are how SSRF reaches the operator\'s network)');
  }

  const branding = readBranding(e, configDir, problems);

  if (problems.length) throw new ConfigError(problems);

  return deepFreeze({
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    issuer,
    issuerExplicit: Boolean(e.ISSUER),
    dataDir: path.resolve(cwd, e.DATA_DIR),
    configDir,
    mongodbUri: e.MONGODB_URI,
    logLevel: e.LOG_LEVEL,
    secret: e.TESSERA_SECRET,
    behindTlsProxy: e.BEHIND_TLS_PROXY,
    argon2: { memoryKiB: e.ARGON2_MEMORY_KIB, timeCost: e.ARGON2_TIME_COST, parallelism: e.ARGON2_PARALLELISM },
    ttl: {
      accessToken: e.ACCESS_TOKEN_TTL,
      idToken: e.ID_TOKEN_TTL,
      refreshToken: e.REFRESH_TOKEN_TTL,
      authorizationCode: e.AUTHORIZATION_CODE_TTL,
      session: e.SESSION_TTL,
      interaction: e.INTERACTION_TTL,
      grant: e.REFRESH_TOKEN_TTL,
      emailVerification: e.EMAIL_VERIFICATION_TTL,
      passwordReset: e.PASSWORD_RESET_TTL,
      deviceCode: e.DEVICE_CODE_TTL,
    },
    devicePollInterval: e.DEVICE_POLL_INTERVAL,
    refreshReuseGraceSeconds: e.REFRESH_REUSE_GRACE_SECONDS,
    storePollSeconds: e.STORE_POLL_SECONDS,
    upstreamTimeoutSeconds: e.UPSTREAM_TIMEOUT_SECONDS,
    workers: e.WORKERS ?? availableParallelism(),
    threadPoolSize: e.UV_THREADPOOL_SIZE ?? 4,
    staticClients: clients.success ? clients.data : [],
    staticUpstreams,
    staticResources: (resources.success ? resources.data : []).map(({ ttl, scope_roles: scopeRoles, signing_alg: signingAlg, ...resource }) => ({ ...resource, ttlSeconds: ttl, ...(scopeRoles && { scopeRoles }), ...(signingAlg && { signingAlg }) })),
    tls,
    security: {
      passwordMinLength: e.PASSWORD_MIN_LENGTH,
      lockoutThreshold: e.LOCKOUT_THRESHOLD,
      lockoutSeconds: e.LOCKOUT_SECONDS,
      rateLimits: {
        signInPerIp: e.RATE_LIMIT_SIGNIN_PER_IP,
        signInPerAccount: e.RATE_LIMIT_SIGNIN_PER_ACCOUNT,
        registrationPerIp: e.RATE_LIMIT_REGISTRATION_PER_IP,
        passwordResetPerIp: e.RATE_LIMIT_PASSWORD_RESET_PER_IP,
        passwordResetPerAccount: e.RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT,
        secondFactorPerAccount: e.RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT,
        tokenFailuresPerIp: e.RATE_LIMIT_TOKEN_FAILURES_PER_IP,
        tokenFailuresPerClient: e.RATE_LIMIT_TOKEN_FAILURES_PER_CLIENT,
        adminFailuresPerIp: e.RATE_LIMIT_ADMIN_FAILURES_PER_IP,
        clientRegistrationPerIp: e.RATE_LIMIT_CLIENT_REGISTRATION_PER_IP,
        userCodePerIp: e.RATE_LIMIT_USER_CODE_PER_IP,
      },
      revokeAppTokensOnPasswordChange: e.REVOKE_APP_TOKENS_ON_PASSWORD_CHANGE,
      registrationApi: e.REGISTRATION_API,
      adminApi: e.ADMIN_API,
    },
    mail: { smtpUrl: e.SMTP_URL, from: e.MAIL_FROM },
    webauthn: { rpId: e.WEBAUTHN_RP_ID, rpName: e.WEBAUTHN_RP_NAME },
    observability: { metricsToken: e.METRICS_TOKEN, auditRetentionDays: e.AUDIT_RETENTION_DAYS },
    defaultLocale: e.DEFAULT_LOCALE,
    selfRegistration: {
      mode: e.DYNAMIC_CLIENT_REGISTRATION,
      scopes: registrationScopes,
      unusedDays: e.DYNAMIC_CLIENT_REGISTRATION_UNUSED_DAYS,
      metadataDocuments: e.CLIENT_ID_METADATA_DOCUMENTS === 'on',
      metadataDocumentAllowedHosts: allowedHosts,
      metadataDocumentDeniedHosts: deniedHosts,
      metadataDocumentMaxBytes: e.CLIENT_ID_METADATA_DOCUMENTS_MAX_BYTES,
      metadataDocumentCacheSeconds: e.CLIENT_ID_METADATA_DOCUMENTS_CACHE_SECONDS,
      allowLoopbackFetches: e.ALLOW_LOOPBACK_FETCHES,
    },
    branding,
  });
}

const brandingFileSchema = z.object({
  product_name: z.string().trim().min(1).max(60).optional(),
  primary_color: z.string().optional(),
  logo: z.union([z.string().min(1), z.object({ light: z.string().min(1).optional(), dark: z.string().min(1).optional() }).strict()]).optional(),
  favicon: z.string().min(1).optional(),
  stylesheet: z.string().min(1).optional(),
}).strict();

/** Larger than any logo needs; every page links these, so they stay small. */
const BRAND_FILE_LIMIT = 512 * 1024;

/** What an image file is, by its first bytes (never by its name): the types a browser shows in <img>. */
function imageType(bytes: Buffer): string | undefined {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes.subarray(0, 4).toString('latin1') === 'GIF8') return 'image/gif';
  if (bytes.subarray(0, 4).toString('latin1') === 'RIFF' && bytes.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  if (bytes.subarray(0, 4).equals(Buffer.from([0, 0, 1, 0]))) return 'image/x-icon';
  // SVG is text: an <svg> root, after an optional XML declaration, doctype and comments.
  const head = bytes.subarray(0, 1024).toString('utf8').replace(/^\uFEFF/, '').replace(/<\?xml[^>]*\?>|<!--[\s\S]*?-->|<!DOCTYPE[^>]*>/g, '').trimStart();
  if (head.startsWith('<svg')) return 'image/svg+xml';
  return undefined;
}

const EXTENSIONS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/gif': 'gif', 'image/webp': 'webp', 'image/x-icon': 'ico', 'image/svg+xml': 'svg', 'text/css': 'css' };

function readBrandAsset(where: string, name: string, file: string | undefined, configDir: string, kind: 'image' | 'stylesheet', problems: string[]): BrandAsset | undefined {
  if (!file) return undefined;
  const full = path.resolve(configDir, file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(full);
  } catch (error) {
    problems.push(`${where}: cannot read ${full} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    return undefined;
  }
  if (bytes.length > BRAND_FILE_LIMIT) {
    problems.push(`${where}: ${full} is larger than ${BRAND_FILE_LIMIT / 1024} KiB`);
    return undefined;
  }
  let contentType: string | undefined;
  if (kind === 'image') {
    contentType = imageType(bytes);
    if (!contentType) problems.push(`${where}: ${full} is not an image (PNG, JPEG, GIF, WebP, ICO or SVG)`);
  } else if (!full.endsWith('.css') || bytes.includes(0)) {
    problems.push(`${where}: ${full} is not a .css stylesheet`);
  } else {
    contentType = 'text/css';
  }
  if (!contentType) return undefined;
  const version = createHash('sha256').update(bytes).digest('base64url').slice(0, 12);
  return { url: `/assets/brand/${name}.${EXTENSIONS[contentType]}?v=${version}`, contentType, base64: bytes.toString('base64') };
}

/** CONFIG_DIR/branding.json, then the BRANDING_* variables over it; files are read and checked once, here. */
function readBranding(e: z.infer<typeof envSchema>, configDir: string, problems: string[]): BrandingConfig {
  const file = path.join(configDir, 'branding.json');
  const parsed = brandingFileSchema.safeParse(readJsonFile(file, problems) ?? {});
  if (!parsed.success) problems.push(...parsed.error.issues.map((issue) => describeIssue(issue, `${file}: `)));
  const json = parsed.success ? parsed.data : {};
  const logo = typeof json.logo === 'string' ? { light: json.logo } : json.logo ?? {};
  const from = (variable: string, key: string, envValue: string | undefined) => (envValue !== undefined ? variable : `${file}: ${key}`);
  const color = e.BRANDING_PRIMARY_COLOR ?? json.primary_color;
  let primaryColor: string | undefined;
  if (color !== undefined) {
    const match = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color.trim());
    if (!match) problems.push(`${from('BRANDING_PRIMARY_COLOR', 'primary_color', e.BRANDING_PRIMARY_COLOR)}: ${JSON.stringify(color)} is not a colour like #1f4fd1`);
    else primaryColor = `#${match[1]!.length === 3 ? [...match[1]!].map((c) => c + c).join('') : match[1]}`.toLowerCase();
  }
  const productName = e.BRANDING_PRODUCT_NAME ?? json.product_name;
  return {
    productName: productName ?? 'Tessera',
    productNamed: productName !== undefined,
    primaryColor,
    logo: {
      light: readBrandAsset(from('BRANDING_LOGO', 'logo.light', e.BRANDING_LOGO), 'logo', e.BRANDING_LOGO ?? logo.light, configDir, 'image', problems),
      dark: readBrandAsset(from('BRANDING_LOGO_DARK', 'logo.dark', e.BRANDING_LOGO_DARK), 'logo-dark', e.BRANDING_LOGO_DARK ?? logo.dark, configDir, 'image', problems),
    },
    favicon: readBrandAsset(from('BRANDING_FAVICON', 'favicon', e.BRANDING_FAVICON), 'favicon', e.BRANDING_FAVICON ?? json.favicon, configDir, 'image', problems),
    stylesheet: readBrandAsset(from('BRANDING_STYLESHEET', 'stylesheet', e.BRANDING_STYLESHEET), 'custom', e.BRANDING_STYLESHEET ?? json.stylesheet, configDir, 'stylesheet', problems),
  };
}

function readPemFile(name: string, file: string | undefined, cwd: string, problems: string[]): string | undefined {
  if (!file) return undefined;
  try {
    const pem = readFileSync(path.resolve(cwd, file), 'utf8');
    if (!pem.includes('-----BEGIN ')) problems.push(`${name}: ${file} is not a PEM file`);
    return pem;
  } catch (error) {
    problems.push(`${name}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    return undefined;
  }
}

function isAddressOrCidr(entry: string): boolean {
  const [address, prefix, ...rest] = entry.split('/');
  if (rest.length || !address || !isIP(address)) return false;
  if (prefix === undefined) return true;
  const bits = Number(prefix);
  return Number.isInteger(bits) && bits >= 0 && bits <= (isIP(address) === 4 ? 32 : 128);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
