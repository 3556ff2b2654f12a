/**
 * `tessera upstreams ...`: upstream identity providers ("Continue with Google"). The client secret
 * is read from stdin only, kept sealed with TESSERA_SECRET, and never printed again.
 */
import path from 'node:path';

import { upstreamView } from '../admin/views.ts';
import { UPSTREAM_PRESETS } from '../domain/upstreams.ts';
import { AppError } from '../errors.ts';
import { defineCommand, defineGroup, JSON_OPTION, UsageError } from './command.ts';
import { printJson, printLines, printTable } from './output.ts';
import { readSecretFromStdin } from './stdin.ts';

const create = defineCommand({
  summary: 'Add an upstream identity provider; prints the redirect URI to register there',
  description: [
    'Add "Continue with NAME" to the sign-in page. Give the upstream\'s issuer (any OpenID provider)',
    `or a preset (${UPSTREAM_PRESETS.join(', ')}), and the client id and secret you registered there;`,
    'the secret is read from stdin, e.g.',
    '  printf %s "$SECRET" | tessera upstreams create --id google --preset google --client-id ID --client-secret-stdin',
    'Register the printed redirect URI at the upstream. --trust-email links a sign-in whose address the',
    'upstream says is verified to the existing account with that address; without it, the person must',
    'prove that account (its password, and its second factor) before the link is made.',
  ].join('\n'),
  forms: [
    'tessera upstreams create --id ID --name NAME --issuer URL --client-id ID --client-secret-stdin [--scope S ...] [--trust-email] [--json]',
    `tessera upstreams create --id ID --preset ${UPSTREAM_PRESETS.join('|')} --client-id ID --client-secret-stdin [--trust-email] [--json]`,
  ],
  options: {
    id: { type: 'string', required: true, placeholder: 'ID', description: 'Lower-case letters, digits and dashes; part of the callback path /federation/ID/callback' },
    name: { type: 'string', placeholder: 'NAME', description: 'Shown as "Continue with NAME" (a preset names itself)' },
    issuer: { type: 'string', placeholder: 'URL', description: 'The OpenID provider\'s issuer (https; http on loopback outside production)' },
    preset: { type: 'string', placeholder: UPSTREAM_PRESETS.join('|'), description: 'Fill in what a well-known provider needs instead of --issuer' },
    'client-id': { type: 'string', required: true, placeholder: 'ID', description: 'The client id Tessera has at the upstream' },
    'client-secret-stdin': { type: 'boolean', description: 'Read the client secret from stdin (required: secrets are never taken as arguments)' },
    scope: { type: 'string', multiple: true, placeholder: 'S', description: 'A scope to ask the upstream for (default openid email profile; the preset\'s for a preset)' },
    'trust-email': { type: 'boolean', description: 'Believe the upstream\'s email_verified, and link to an existing account with that address' },
    'authorization-endpoint': { type: 'string', placeholder: 'URL', description: 'GitHub-shaped upstreams (e.g. GitHub Enterprise): where people authorize' },
    'token-endpoint': { type: 'string', placeholder: 'URL', description: 'GitHub-shaped upstreams: where codes become access tokens' },
    'user-endpoint': { type: 'string', placeholder: 'URL', description: 'GitHub-shaped upstreams: the profile (GitHub\'s /user)' },
    'emails-endpoint': { type: 'string', placeholder: 'URL', description: 'GitHub-shaped upstreams: the verified addresses (GitHub\'s /user/emails)' },
    json: JSON_OPTION,
  },
  check(values) {
    if (!values['client-secret-stdin']) throw new UsageError('"upstreams create" needs --client-secret-stdin: secrets are read from stdin, never from arguments', 'upstreams create');
    if (values.preset === undefined && values.issuer === undefined && values['authorization-endpoint'] === undefined) {
      throw new UsageError('"upstreams create" needs --issuer or --preset', 'upstreams create');
    }
  },
  async run({ values, services }) {
    const clientSecret = await readSecretFromStdin('client secret');
    const { upstreams } = await services();
    const { upstream, redirectUri } = await upstreams.create({
      id: values.id,
      name: values.name,
      preset: values.preset,
      issuer: values.issuer,
      clientId: values['client-id'],
      clientSecret,
      scopes: values.scope,
      trustEmail: values['trust-email'],
      authorizationEndpoint: values['authorization-endpoint'],
      tokenEndpoint: values['token-endpoint'],
      userEndpoint: values['user-endpoint'],
      emailsEndpoint: values['emails-endpoint'],
    });
    if (values.json) return printJson({ id: upstream.id, redirect_uri: redirectUri });
    printLines(
      `Added upstream ${upstream.id}: "Continue with ${upstream.name}" is on the sign-in page (running servers show it within STORE_POLL_SECONDS).`,
      `Register this redirect URI at ${upstream.name}:`,
      `  ${redirectUri}`,
      upstream.trustEmail
        ? 'Its verified email addresses link to existing accounts with the same address.'
        : 'An existing account with the same address is linked only after the person proves that account.',
    );
  },
});

const list = defineCommand({
  summary: 'List upstream identity providers from the store and from CONFIG_DIR/upstreams.json',
  options: { json: JSON_OPTION },
  async run({ values, services }) {
    const { upstreams } = await services();
    // The same public shape as the admin API's GET /upstreams: never a secret.
    const rows = (await upstreams.list()).map((upstream) => upstreamView(upstream, upstreams.redirectUri(upstream.id)));
    if (values.json) return printJson(rows);
    if (!rows.length) return printLines('No upstream providers yet. Add one with "tessera upstreams create".');
    printTable(
      ['ID', 'NAME', 'SOURCE', 'KIND', 'TRUST_EMAIL', 'ISSUER', 'REDIRECT_URI'],
      rows.map((row) => [row.id, row.name, row.source, row.preset ?? row.kind, row.trust_email ? 'yes' : 'no', row.issuer ?? row.authorization_endpoint ?? '-', row.redirect_uri]),
    );
  },
});

const remove = defineCommand({
  summary: 'Remove an upstream identity provider created with the CLI or the admin API',
  description: 'Identities linked through it stay on their accounts but cannot sign in until an upstream with this id exists again.',
  args: [{ name: 'ID', description: 'The upstream\'s id' }],
  options: { json: JSON_OPTION },
  async run({ values, args: [id = ''], config, services }) {
    const { upstreams } = await services();
    if (!(await upstreams.delete(id))) {
      throw new AppError('ERR_NOT_FOUND', upstreams.isStatic(id)
        ? `upstream ${id} is defined in ${path.join(config.configDir, 'upstreams.json')}; remove it there`
        : `no upstream ${id}`);
    }
    if (values.json) return printJson({ id, deleted: true });
    printLines(`Removed upstream ${id}. Its sign-in button goes away within STORE_POLL_SECONDS.`);
  },
});

export const upstreamsGroup = defineGroup('Manage upstream identity providers (Google, GitHub, Microsoft, any OpenID provider)', {
  create,
  list,
  delete: remove,
});
