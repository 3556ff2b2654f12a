/**
 * Configuration is read once, validated, frozen and passed down. Nothing else in Tessera reads
 * `process.env`. Every problem becomes one line of a ConfigError, and startup stops.
 */
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

import { AppError } from './errors.ts';

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
  /** Tessera sits behind a TLS-terminating proxy: trust X-Forwarded-Proto/Host from it. */
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
  };
  /** Seconds during which a just-rotated refresh token may be presented again (concurrent refreshes). */
  readonly refreshReuseGraceSeconds: number;
  /** How often a running server looks for key and client changes made elsewhere (CLI, other instances). */
  readonly storePollSeconds: number;
  /** Static clients from config/clients.json, as oidc-provider metadata. */
  readonly staticClients: readonly Record<string, unknown>[];
}

export class ConfigError extends AppError {
  readonly problems: readonly string[];

  constructor(problems: string[]) {
    super('ERR_CONFIG', problems.map((p) => `Configuration error: ${p}`).join('\n'), { status: 500, expose: false });
    this.problems = problems;
  }
}

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
  ARGON2_MEMORY_KIB: integer(8_192, 4_194_304).default(19_456),
  ARGON2_TIME_COST: integer(1, 100).default(2),
  ARGON2_PARALLELISM: integer(1, 64).default(1),
  ACCESS_TOKEN_TTL: seconds(900),
  ID_TOKEN_TTL: seconds(3600),
  REFRESH_TOKEN_TTL: seconds(14 * 86_400),
  AUTHORIZATION_CODE_TTL: seconds(60, 600),
  SESSION_TTL: seconds(14 * 86_400),
  INTERACTION_TTL: seconds(3600),
  REFRESH_REUSE_GRACE_SECONDS: integer(0, 60).default(0),
  STORE_POLL_SECONDS: integer(1, 3600).default(10),
});

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

  const issuer = (e.ISSUER ?? `http://localhost:${e.PORT}`).replace(/\/+$/, '');
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
    },
    refreshReuseGraceSeconds: e.REFRESH_REUSE_GRACE_SECONDS,
    storePollSeconds: e.STORE_POLL_SECONDS,
    staticClients: clients.success ? clients.data : [],
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
