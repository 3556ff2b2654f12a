/**
 * `tessera keys ...`: signing keys. Running servers notice a rotation within STORE_POLL_SECONDS
 * and switch without a restart; retired keys stay in the JWKS until their tokens have expired.
 */
import type { Services } from '../services.ts';
import { defineCommand, defineGroup, JSON_OPTION } from './command.ts';
import { printJson, printLines, printTable, warn } from './output.ts';

function warnIfGeneratedSecret(services: Services, json: boolean): void {
  if (services.secret.generatedFile && !json) {
    warn(`no TESSERA_SECRET is set; private keys are encrypted with the generated secret in ${services.secret.generatedFile}`);
  }
}

const list = defineCommand({
  summary: 'List signing and cookie keys with their status',
  options: { json: JSON_OPTION },
  async run({ values, services }) {
    const keys = await (await services()).keys.list();
    if (values.json) return printJson(keys);
    if (!keys.length) return printLines('No keys yet. The server generates them on first start, or run "tessera keys rotate".');
    printTable(
      ['KID', 'USE', 'ALG', 'STATUS', 'CREATED', 'EXPIRES'],
      keys.map((key) => [key.kid, key.use, key.alg || '-', key.status, key.created_at, key.expires_at ?? '-']),
    );
  },
});

const rotate = defineCommand({
  summary: 'Sign with new keys; the old ones stay published until their tokens expire',
  description: [
    'Generate new signing keys (RS256, ES256, EdDSA) and make them current. The previous keys are',
    'retired: no longer used to sign, still published in the JWKS until every token they signed has',
    'expired. With no keys in the store yet, this generates the first set (as the server does on first start).',
  ].join('\n'),
  options: { json: JSON_OPTION },
  async run({ values, config, services }) {
    const all = await services();
    warnIfGeneratedSecret(all, values.json);
    const before = (await all.keys.list()).filter((key) => key.use === 'sig' && key.status === 'current');
    if (before.length) await all.keys.rotate();
    // Fills in whatever is missing (everything on an empty store, a cookie key if only that is absent).
    await all.keys.ensure();
    const after = await all.keys.list();
    const current = after.filter((key) => key.use === 'sig' && key.status === 'current');
    const retired = before.filter((old) => after.some((key) => key.kid === old.kid && key.status === 'retired'));
    const result = { current: current.map((key) => key.kid), retired: retired.map((key) => key.kid) };
    if (values.json) return printJson(result);
    printLines(
      `Signing now uses: ${current.map((key) => `${key.kid} (${key.alg})`).join(', ')}.`,
      ...(retired.length ? [`Retired (still published until their tokens expire): ${result.retired.join(', ')}.`] : []),
      `Running servers switch within ${config.storePollSeconds} s (STORE_POLL_SECONDS).`,
    );
  },
});

export const keysGroup = defineGroup('Manage signing keys', { list, rotate });
