/**
 * Discovery and the JWKS are prepared once per key or configuration change and served as bytes
 * with a strong ETag (oidc/features/documents.ts): conditional requests get 304, a key rotation
 * changes both the body and the ETag, and the headers are those oidc-provider and the app gave before.
 */
import test from 'ava';

import { eventually } from './helpers/eventually.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';

let server: TestServer;

test.before(async () => {
  server = await startTestServer();
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

const DOCUMENTS = ['/jwks', '/.well-known/openid-configuration'];

/** Header names of an answer, less the ones that are per response by nature. */
function headerNames(response: Response): string[] {
  return [...response.headers.keys()].filter((name) => !['date', 'connection', 'keep-alive', 'x-request-id'].includes(name)).sort();
}

test.serial('discovery and the JWKS carry a strong ETag and answer 304 Not Modified to If-None-Match', async (t) => {
  for (const path of DOCUMENTS) {
    const first = await fetch(`${server.issuer}${path}`);
    t.is(first.status, 200, path);
    const etag = first.headers.get('etag');
    t.regex(etag ?? '', /^"[\w-]{20,}"$/, `${path}: a strong ETag`);
    const body = await first.text();
    const again = await fetch(`${server.issuer}${path}`);
    t.is(again.headers.get('etag'), etag, path);
    t.is(await again.text(), body, path);

    const conditional = await fetch(`${server.issuer}${path}`, { headers: { 'if-none-match': etag! } });
    t.is(conditional.status, 304, path);
    t.is(await conditional.text(), '', path);
    t.is(conditional.headers.get('etag'), etag, path);
    t.regex(conditional.headers.get('cache-control') ?? '', /public, max-age=\d+/, path);

    const stale = await fetch(`${server.issuer}${path}`, { headers: { 'if-none-match': '"something-else"' } });
    t.is(stale.status, 200, path);
    t.is(await stale.text(), body, path);

    const head = await fetch(`${server.issuer}${path}`, { method: 'HEAD' });
    t.is(head.status, 200, path);
    t.is(head.headers.get('etag'), etag, path);
  }
});

test.serial('prepared documents carry the same headers as the answer oidc-provider rendered, CORS included', async (t) => {
  // A fresh key set makes the next answer of each document the one oidc-provider renders itself.
  const before = (await (await fetch(`${server.issuer}/jwks`)).json()) as { keys: Array<{ kid: string }> };
  await server.withServices((services) => services.keys.rotate());
  await eventually(async () => {
    const { keys } = (await (await fetch(`${server.issuer}/jwks`, { headers: { origin: 'https://rp.example' } })).json()) as { keys: Array<{ kid: string }> };
    return keys.length > before.keys.length ? true : undefined;
  }, { what: 'the rotated keys in the JWKS' });
  for (const path of ['/.well-known/openid-configuration']) {
    const rendered = await fetch(`${server.issuer}${path}`, { headers: { origin: 'https://rp.example' } });
    const prepared = await fetch(`${server.issuer}${path}`, { headers: { origin: 'https://rp.example' } });
    t.deepEqual(headerNames(prepared), headerNames(rendered), path);
    for (const name of ['content-type', 'cache-control', 'vary', 'access-control-allow-origin', 'content-security-policy', 'x-content-type-options', 'etag']) {
      t.is(prepared.headers.get(name), rendered.headers.get(name), `${path}: ${name}`);
    }
    // The prepared body is the rendered one, metadata from other slices included (ui_locales_supported, i18n).
    const [renderedBody, preparedBody] = [await rendered.json(), await prepared.json()] as Array<Record<string, unknown>>;
    t.deepEqual(preparedBody, renderedBody, path);
    t.deepEqual(preparedBody!.ui_locales_supported, ['en', 'de', 'fr', 'es', 'pt-BR', 'ja'], path);
  }
  const jwks = await fetch(`${server.issuer}/jwks`, { headers: { origin: 'https://rp.example' } });
  t.is(jwks.headers.get('content-type'), 'application/jwk-set+json; charset=utf-8');
  t.is(jwks.headers.get('access-control-allow-origin'), 'https://rp.example');
  t.regex(jwks.headers.get('vary') ?? '', /Origin/);
  t.is(jwks.headers.get('x-content-type-options'), 'nosniff');
  t.is((await fetch(`${server.issuer}/jwks`)).headers.get('access-control-allow-origin'), '*');
});

test.serial('a key rotation changes the JWKS body and its ETag, and the old ETag no longer gets 304', async (t) => {
  const first = await fetch(`${server.issuer}/jwks`);
  const etag = first.headers.get('etag')!;
  const { keys } = (await first.json()) as { keys: Array<{ kid: string }> };
  const rotated = await server.withServices((services) => services.keys.rotate());
  const answer = await eventually(async () => {
    const response = await fetch(`${server.issuer}/jwks`, { headers: { 'if-none-match': etag } });
    return response.status === 200 ? response : undefined;
  }, { what: 'the JWKS after the rotation' });
  t.not(answer.headers.get('etag'), etag);
  const kids = ((await answer.json()) as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid);
  for (const key of rotated) t.true(kids.includes(key.kid), `the new key ${key.kid} is published`);
  for (const key of keys) t.true(kids.includes(key.kid), `the retired key ${key.kid} stays published`);
});

test.serial('answers from prepared documents are labelled by their route in the metrics, 200s and 304s alike', async (t) => {
  const count = async (route: string, status: string) => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const line = text.split('\n').find((entry) => entry.startsWith(`tessera_http_request_duration_seconds_count{route="${route}",status="${status}"}`));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };
  const etag = (await fetch(`${server.issuer}/jwks`)).headers.get('etag')!;
  const [ok, notModified, discovery] = [await count('jwks', '2xx'), await count('jwks', '3xx'), await count('discovery', '2xx')];
  for (let i = 0; i < 3; i += 1) {
    await (await fetch(`${server.issuer}/jwks`)).arrayBuffer();
    await (await fetch(`${server.issuer}/jwks`, { headers: { 'if-none-match': etag } })).arrayBuffer();
    await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).arrayBuffer();
  }
  t.is(await count('jwks', '2xx'), ok + 3);
  t.is(await count('jwks', '3xx'), notModified + 3);
  t.is(await count('discovery', '2xx'), discovery + 3);
  t.is(await count('unmatched', '2xx'), 0);
});
