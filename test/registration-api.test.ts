/**
 * POST /api/accounts on a real server: first-party apps register people with the same policy and
 * verification as the page; everything else gets a clear JSON refusal and never a 500.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import test from 'ava';

import { runCliJson } from './helpers/cli.ts';
import { eventually } from './helpers/eventually.ts';
import { discover, signIn, staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { UserAgent } from './helpers/user-agent.ts';

const BACKEND_SECRET = 'first-party-backend-secret-with-plenty-of-entropy';
const clients = [
  staticClient(),
  staticClient({ client_id: 'backend', client_secret: BACKEND_SECRET, client_name: 'Our backend', tessera_first_party: true }),
  staticClient({ client_id: 'native', client_secret: undefined, token_endpoint_auth_method: 'none', client_name: 'Our app', tessera_first_party: true }),
];

let server: TestServer;
let counter = 0;

test.before(async () => {
  server = await startTestServer({ clients, env: { RATE_LIMIT_REGISTRATION_PER_IP: '1000/3600' } });
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

function email(): string {
  counter += 1;
  return `api${counter}.${Date.now()}@example.com`;
}

const PASSWORD = 'a registration api passphrase of some length';
const BACKEND = { authorization: `Basic ${btoa(`backend:${BACKEND_SECRET}`)}` };

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function register(body: unknown, options: { headers?: Record<string, string>; raw?: string; on?: TestServer } = {}): Promise<Answer> {
  const response = await fetch(`${(options.on ?? server).issuer}/api/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...BACKEND, ...options.headers },
    body: options.raw ?? JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`not JSON (${response.status}): ${text.slice(0, 300)}`);
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

test('a first-party backend registers a person: 201, the verification email goes out, and they can sign in', async (t) => {
  const address = email();
  const answer = await register({ email: `  ${address.toUpperCase()} `, password: PASSWORD, name: 'Ada Lovelace', given_name: 'Ada', family_name: 'Lovelace' });
  t.is(answer.status, 201);
  t.is(answer.headers.get('cache-control'), 'no-store');
  t.deepEqual(Object.keys(answer.body).sort(), ['email', 'email_verified', 'sub']);
  t.like(answer.body, { email: address, email_verified: false });

  const account = await server.withServices(({ accounts }) => accounts.findByEmail(address));
  t.like(account, { sub: String(answer.body.sub), name: 'Ada Lovelace', givenName: 'Ada', familyName: 'Lovelace', roles: [] });

  const outbox = path.join(server.dataDir, 'outbox');
  await eventually(() => (existsSync(outbox) && readdirSync(outbox).some((file) => readFileSync(path.join(outbox, file), 'utf8').includes(address))) || undefined, { what: `a message to ${address} in the outbox`, timeoutMs: 5_000 });
  t.pass('a verification email was written to the outbox');

  const { tokens } = await signIn(await discover(server.issuer), new UserAgent(), { email: address, password: PASSWORD }, { parameters: { scope: 'openid email' } });
  t.is(tokens.claims()!.sub, String(answer.body.sub));
});

test('a first-party public app names itself with client_id in the body', async (t) => {
  const answer = await register({ email: email(), password: PASSWORD, client_id: 'native' }, { headers: { authorization: '' } });
  t.is(answer.status, 201);
});

test('a client made with clients create --first-party may register people', async (t) => {
  const created = await runCliJson<{ client_id: string; client_secret: string }>(server.cliEnv, [
    'clients', 'create', '--name', 'Our site', '--redirect-uri', 'http://localhost:9/cb', '--first-party',
  ]);
  const answer = await register({ email: email(), password: PASSWORD }, { headers: { authorization: `Basic ${btoa(`${created.client_id}:${created.client_secret}`)}` } });
  t.is(answer.status, 201);
});

test('the caller must be a first-party app, a confidential one with its secret', async (t) => {
  const body = { email: email(), password: PASSWORD };
  const cases: Array<[string, Record<string, string>, unknown]> = [
    ['no credentials', { authorization: '' }, body],
    ['a wrong secret', { authorization: `Basic ${btoa('backend:wrong')}` }, body],
    ['a third-party app', { authorization: `Basic ${btoa('test-rp:test-rp-secret-with-plenty-of-entropy-0123456789')}` }, body],
    ['a confidential app without its secret', { authorization: '' }, { ...body, client_id: 'backend' }],
    ['an unknown client', { authorization: '' }, { ...body, client_id: 'nobody' }],
    ['a Bearer token', { authorization: 'Bearer abc' }, body],
  ];
  for (const [name, headers, payload] of cases) {
    const answer = await register(payload, { headers });
    t.is(answer.status, 401, name);
    t.is(answer.body.error, 'invalid_client', name);
    t.regex(answer.headers.get('www-authenticate') ?? '', /^Basic/, name);
  }
  t.is(await server.withServices(({ accounts }) => accounts.findByEmail(body.email)), undefined, 'nobody was registered');
});

test('refused input is a 400 naming each field and why', async (t) => {
  const missing = await register({});
  t.is(missing.status, 400);
  t.is(missing.body.error, 'invalid_request');
  t.deepEqual(Object.keys(missing.body.fields as object).sort(), ['email', 'password']);

  const badEmail = await register({ email: 'not-an-address', password: PASSWORD });
  t.is(badEmail.status, 400);
  t.regex(String((badEmail.body.fields as Record<string, string>).email), /valid email/);

  const weak = await register({ email: email(), password: 'short' });
  t.is(weak.status, 400);
  t.regex(String((weak.body.fields as Record<string, string>).password), /at least \d+ characters/);
  t.regex(String(weak.body.error_description), /at least \d+ characters/);

  const leaked = await register({ email: email(), password: 'passwordpassword' });
  t.is(leaked.status, 400);
  t.regex(String((leaked.body.fields as Record<string, string>).password), /too common/);

  const extra = await register({ email: email(), password: PASSWORD, email_verified: true, roles: ['admin'] });
  t.is(extra.status, 400);
  t.deepEqual(extra.body.fields, { email_verified: 'Unknown field', roles: 'Unknown field' });

  const longName = await register({ email: email(), password: PASSWORD, name: 'x'.repeat(101) });
  t.is(longName.status, 400);
  t.truthy((longName.body.fields as Record<string, string>).name);
});

test('an email already registered is a 409', async (t) => {
  const address = email();
  t.is((await register({ email: address, password: PASSWORD })).status, 201);
  const again = await register({ email: address.toUpperCase(), password: `${PASSWORD} again` });
  t.is(again.status, 409);
  t.is(again.body.error, 'email_taken');
});

test('look-alike spellings of a registered address do not create a second account, and sign in to the first', async (t) => {
  const address = email();
  const created = await register({ email: address, password: PASSWORD });
  t.is(created.status, 201);
  const [local, domain] = address.split('@') as [string, string];
  const fullwidth = (text: string) => [...text].map((char) => /[!-~]/.test(char) ? String.fromCodePoint(char.codePointAt(0)! + 0xfee0) : char).join('');
  // The same mailbox: these are the account's own address and must be taken.
  for (const [label, spelling] of [
    ['trailing dot on the domain', `${address}.`],
    ['upper case', address.toUpperCase()],
    ['fullwidth forms', `${fullwidth(local)}@${fullwidth(domain)}`],
  ]) {
    const answer = await register({ email: spelling, password: PASSWORD });
    t.is(answer.status, 409, label);
  }
  // Disguises: refused outright, never a second account.
  for (const [label, spelling] of [
    ['zero-width space', `${local}\u200b@${domain}`],
    ['bidi override', `\u202e${address}`],
    ['soft hyphen', `${local.slice(0, 2)}\u00ad${local.slice(2)}@${domain}`],
    ['NUL', `${address}\u0000`],
    ['zero-width joiner in the domain', `${local}@exa\u200dmple.com`],
  ]) {
    const answer = await register({ email: spelling, password: PASSWORD });
    t.is(answer.status, 400, label);
    t.regex(String((answer.body.fields as Record<string, string>).email), /invisible or control characters/, label);
  }
  // RFC 5322 syntax around a local part that names the same mailbox: a quoted string ("ada" is
  // ada), a comment, an escape. Refused, never a second account.
  for (const [label, spelling] of [
    ['quoted local part', `"${local}"@${domain}`],
    ['comment', `${local}(note)@${domain}`],
    ['escaped character', `"${local.slice(0, 1)}\\${local.slice(1)}"@${domain}`],
    ['angle brackets', `<${local}>@${domain}`],
  ]) {
    const answer = await register({ email: spelling, password: PASSWORD });
    t.is(answer.status, 400, label);
    t.regex(String((answer.body.fields as Record<string, string>).email), /valid email address/, label);
  }
  const { tokens } = await signIn(await discover(server.issuer), new UserAgent(), { email: `${address.toUpperCase()}.`, password: PASSWORD }, { parameters: { scope: 'openid email' } });
  t.is(tokens.claims()!.sub, String(created.body.sub), 'sign-in finds the account by the same rule');
});

test('MongoDB operators and other non-strings are refused as input, never run as queries', async (t) => {
  const attempts: unknown[] = [
    { email: { $gt: '' }, password: PASSWORD },
    { email: email(), password: { $ne: null } },
    { email: email(), password: PASSWORD, $where: 'sleep(1000)' },
    { email: [email()], password: PASSWORD },
    { email: email(), password: PASSWORD, name: { $regex: '.*' } },
    JSON.parse(`{"email": "${email()}", "password": "${PASSWORD}", "__proto__": {"admin": true}}`) as unknown,
  ];
  for (const body of attempts) {
    const answer = await register(body);
    t.is(answer.status, 400, JSON.stringify(body));
    t.is(answer.body.error, 'invalid_request');
  }
});

test('malformed, oversized and non-JSON bodies are refused in JSON, never with a 500', async (t) => {
  const cases: Array<[string, { raw: string; headers?: Record<string, string> }, number]> = [
    ['malformed JSON', { raw: '{"email": ' }, 400],
    ['a JSON array', { raw: '[1, 2]' }, 400],
    ['a JSON string', { raw: '"hello"' }, 400],
    ['null', { raw: 'null' }, 400],
    ['an empty body', { raw: '' }, 400],
    ['17 kB', { raw: JSON.stringify({ email: email(), password: PASSWORD, name: 'x'.repeat(17 * 1024) }) }, 413],
    ['a form', { raw: 'email=a%40b.c&password=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415],
    ['text', { raw: 'hello', headers: { 'content-type': 'text/plain' } }, 415],
    ['deep nesting', { raw: `${'['.repeat(5000)}${']'.repeat(5000)}` }, 400],
  ];
  for (const [name, options, status] of cases) {
    const answer = await register(undefined, options);
    t.is(answer.status, status, name);
    t.is(typeof answer.body.error, 'string', name);
  }
  const get = await fetch(`${server.issuer}/api/accounts`, { headers: { accept: 'application/json' } });
  t.is(get.status, 405);
  t.is(get.headers.get('allow'), 'POST');
});

test('REGISTRATION_API=false removes the endpoint', async (t) => {
  const off = await startTestServer({ clients, env: { REGISTRATION_API: 'false' } });
  t.teardown(async () => {
    await off.close();
    removeDir(off.dataDir);
  });
  const response = await fetch(`${off.issuer}/api/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...BACKEND },
    body: JSON.stringify({ email: email(), password: PASSWORD }),
  });
  t.is(response.status, 404);
});

test('registrations are rate-limited per client address, with Retry-After', async (t) => {
  const limited = await startTestServer({ clients, env: { RATE_LIMIT_REGISTRATION_PER_IP: '2/3600' } });
  t.teardown(async () => {
    await limited.close();
    removeDir(limited.dataDir);
  });
  t.is((await register({ email: email(), password: PASSWORD }, { on: limited })).status, 201);
  t.is((await register({ email: 'not-an-address', password: PASSWORD }, { on: limited })).status, 400, 'refused attempts count too');
  const over = await register({ email: email(), password: PASSWORD }, { on: limited });
  t.is(over.status, 429);
  t.is(over.body.error, 'rate_limited');
  t.true(Number(over.headers.get('retry-after')) > 0);
});
