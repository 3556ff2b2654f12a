/**
 * `tessera registration-tokens create [--uses N] [--ttl SECONDS] [--json]`: an initial access token
 * for dynamic client registration with DYNAMIC_CLIENT_REGISTRATION=token (RFC 7591 section 3). The
 * token is printed once; the store keeps only its digest.
 */
import { DEFAULT_REGISTRATION_TOKEN_TTL_SECONDS, MAX_REGISTRATION_TOKEN_TTL_SECONDS, MAX_REGISTRATION_TOKEN_USES } from '../domain/registration-tokens.ts';
import { defineCommand, defineGroup, JSON_OPTION, UsageError } from './command.ts';
import { printJson, printLines, warn } from './output.ts';

const WHOLE_NUMBER = /^\d+$/;

const create = defineCommand({
  summary: 'Create an initial access token for dynamic client registration; printed once',
  description: [
    'With DYNAMIC_CLIENT_REGISTRATION=token, a client registers (POST /reg) with this token as its',
    'Bearer token. --uses limits how many registrations it allows (counted atomically, across instances);',
    `without it, any number until it expires (--ttl, default ${DEFAULT_REGISTRATION_TOKEN_TTL_SECONDS} s).`,
  ].join('\n'),
  options: {
    uses: { type: 'string', placeholder: 'N', description: `Registrations it allows, 1 to ${MAX_REGISTRATION_TOKEN_USES} (default: unlimited)` },
    ttl: { type: 'string', placeholder: 'SECONDS', description: `Lifetime, 1 to ${MAX_REGISTRATION_TOKEN_TTL_SECONDS} (default ${DEFAULT_REGISTRATION_TOKEN_TTL_SECONDS})` },
    json: JSON_OPTION,
  },
  check(values) {
    if (values.uses !== undefined && !WHOLE_NUMBER.test(values.uses)) throw new UsageError(`--uses must be a whole number, not ${JSON.stringify(values.uses)}`);
    if (values.ttl !== undefined && !WHOLE_NUMBER.test(values.ttl)) throw new UsageError(`--ttl must be a whole number of seconds, not ${JSON.stringify(values.ttl)}`);
  },
  async run({ values, config, services }) {
    const created = await (await services()).registrationTokens.create({
      uses: values.uses === undefined ? undefined : Number(values.uses),
      ttlSeconds: values.ttl === undefined ? undefined : Number(values.ttl),
    });
    if (config.selfRegistration.mode !== 'token') {
      warn(`DYNAMIC_CLIENT_REGISTRATION is ${config.selfRegistration.mode}, so registration does not ask for this token`);
    }
    const output = {
      initial_access_token: created.token,
      expires_at: created.expiresAt.toISOString(),
      uses: created.uses ?? null,
      registration_endpoint: `${config.issuer}/reg`,
    };
    if (values.json) return printJson(output);
    printLines(
      `Initial access token (${created.uses === undefined ? 'any number of registrations' : `${created.uses} registration${created.uses === 1 ? '' : 's'}`}, until ${output.expires_at}):`,
      created.token,
      `Register with: POST ${output.registration_endpoint} and Authorization: Bearer <token>.`,
      'Store it now: Tessera keeps only a digest and cannot show it again.',
    );
  },
});

export const registrationTokensGroup = defineGroup('Initial access tokens for dynamic client registration', { create });
