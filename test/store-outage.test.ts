/**
 * MongoDB stops answering under traffic and comes back: requests get 503 with Retry-After within a
 * few seconds (never a 500, never a hang), /readyz says not ready, and everything recovers by itself.
 * The emulator is frozen (SIGSTOP), not killed: it keeps its data only in memory, and a frozen server
 * with open connections that answer nothing is also the harder case, a network partition.
 * Always a private emulator, even when MONGODB_URI names a shared server.
 */
import test from 'ava';
import * as oidc from 'openid-client';

import { openLoginForm } from './helpers/login-form.ts';
import { startPausableEmulator } from './helpers/mongo-lane.ts';
import { authorizationRequest, discover, newPerson, signIn, staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer } from './helpers/server.ts';
import { UserAgent } from './helpers/user-agent.ts';

const BACKEND_SECRET = 'first-party-backend-secret-with-plenty-of-entropy';
const RP_SECRET = String(staticClient().client_secret);
/** The store deadline is 3 s; a request may make one more failing call on its error path. */
const BOUND_MS = 7_000;
const FREEZE_MS = 7_000;

interface Answer {
  kind: string;
  status: number;
  retryAfter: string | null;
  location: string | null;
  ms: number;
  sentAt: number;
  body: string;
}

interface Probe {
  kind: string;
  /** The request; a fresh one each time. */
  send(): Promise<Response>;
  /** What a working store answers (the probe has recovered). */
  healthy(answer: Answer): boolean;
  /** Called with every healthy answer (the refresh probe keeps the newest token). */
  update?(answer: Answer): void;
}

async function measure(probe: Probe): Promise<Answer> {
  const sentAt = Date.now();
  const response = await probe.send();
  const body = await response.text();
  const answer = {
    kind: probe.kind,
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    location: response.headers.get('location'),
    ms: Date.now() - sentAt,
    sentAt,
    body,
  };
  if (probe.healthy(answer)) probe.update?.(answer);
  return answer;
}

test('while MongoDB answers nothing, requests get 503 with Retry-After within seconds, and all recovers when it is back', async (t) => {
  const lane = await startPausableEmulator();
  t.teardown(() => lane.stop());
  const clients = [
    staticClient(),
    staticClient({ client_id: 'backend', client_secret: BACKEND_SECRET, client_name: 'Our backend', tessera_first_party: true }),
  ];
  // A refresh whose answer was lost in the outage is retried with the same token: the grace period's purpose.
  const server = await startTestServer({ clients, env: { MONGODB_URI: lane.uri, REFRESH_REUSE_GRACE_SECONDS: '60' } });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const config = await discover(server.issuer);
  const { tokens } = await signIn(config, new UserAgent(), newPerson(), { register: true });
  let refreshToken = tokens.refresh_token!;
  const accessToken = tokens.access_token;
  const loginForm = await openLoginForm(server);
  const rpBasic = `Basic ${btoa(`test-rp:${RP_SECRET}`)}`;
  const form = { 'content-type': 'application/x-www-form-urlencoded', authorization: rpBasic };
  let registrations = 0;

  const probes: Probe[] = [
    {
      kind: 'refresh',
      send: () => fetch(`${server.url}/token`, { method: 'POST', headers: form, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }) }),
      healthy: (answer) => answer.status === 200,
      update: (answer) => {
        refreshToken = (JSON.parse(answer.body) as { refresh_token: string }).refresh_token;
      },
    },
    {
      kind: 'userinfo',
      send: () => fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${accessToken}` } }),
      healthy: (answer) => answer.status === 200,
    },
    {
      kind: 'introspection',
      send: () => fetch(`${server.url}/token/introspection`, { method: 'POST', headers: form, body: new URLSearchParams({ token: accessToken }) }),
      healthy: (answer) => answer.status === 200 && answer.body.includes('"active":true'),
    },
    {
      kind: 'authorization',
      send: async () => fetch((await authorizationRequest(config)).url, { redirect: 'manual' }),
      healthy: (answer) => answer.status >= 300 && answer.status < 400 && !answer.location?.includes('error='),
    },
    {
      kind: 'sign-in form',
      send: async () => {
        const page = await loginForm.agent.request(loginForm.action, {
          form: { ...loginForm.fields, email: 'nobody@example.com', password: 'not the password at all' },
          headers: { accept: 'text/html,application/xhtml+xml' },
        });
        return new Response(page.body, { status: page.status, headers: page.headers });
      },
      // Unknown email: the form is shown again with 401, as without an outage.
      healthy: (answer) => answer.status === 401,
    },
    {
      kind: 'registration API',
      send: () => fetch(`${server.url}/api/accounts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Basic ${btoa(`backend:${BACKEND_SECRET}`)}` },
        body: JSON.stringify({ email: `outage${(registrations += 1)}.${Date.now()}@example.com`, password: 'a registration passphrase of some length' }),
      }),
      healthy: (answer) => answer.status === 201,
    },
    {
      kind: 'readyz',
      send: () => fetch(`${server.url}/readyz`),
      healthy: (answer) => answer.status === 200,
    },
  ];
  // Served from memory: the process is alive and says so whatever the store does.
  const alwaysUp: Probe[] = [
    { kind: 'healthz', send: () => fetch(`${server.url}/healthz`), healthy: (answer) => answer.status === 200 },
    { kind: 'discovery', send: () => fetch(`${server.url}/.well-known/openid-configuration`), healthy: (answer) => answer.status === 200 },
  ];

  for (const probe of [...probes, ...alwaysUp]) {
    const answer = await measure(probe);
    t.true(probe.healthy(answer), `${probe.kind} works before the outage: ${answer.status} ${answer.body.slice(0, 200)}`);
  }

  // Freeze, and keep every probe busy, one request after the other, until the thaw.
  await lane.pause();
  const frozenAt = Date.now();
  const answers: Answer[] = [];
  let thawed = false;
  await Promise.all([...probes, ...alwaysUp].map(async (probe) => {
    while (!thawed) {
      answers.push(await measure(probe));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }).concat((async () => {
    await new Promise((resolve) => setTimeout(resolve, FREEZE_MS));
    thawed = true;
  })()));
  // Requests still waiting for the store at the thaw are done; now it answers again.
  lane.resume();
  const resumedAt = Date.now();

  for (const answer of answers) {
    t.true(answer.status < 500 || answer.status === 503, `${answer.kind}: ${answer.status} ${answer.body.slice(0, 200)}`);
    if (answer.status === 503) t.truthy(answer.retryAfter, `${answer.kind}: a 503 says when to retry`);
    t.notRegex(answer.body, /\n\s+at [\w.<>]+ \(|node_modules|\.ts:\d+/, `${answer.kind}: no stack trace`);
    t.true(answer.ms <= BOUND_MS, `${answer.kind} answered in ${answer.ms} ms, within ${BOUND_MS} ms`);
  }
  for (const probe of alwaysUp) {
    t.true(answers.filter((answer) => answer.kind === probe.kind).every((answer) => answer.status === 200), `${probe.kind} stays up`);
  }
  const unavailable = answers.filter((answer) => answer.status === 503 || answer.location?.includes('error=temporarily_unavailable'));
  for (const probe of probes) {
    t.true(unavailable.some((answer) => answer.kind === probe.kind), `${probe.kind} reports the outage`);
  }
  for (const answer of unavailable.filter((entry) => entry.status === 503)) {
    // Machines get OAuth's JSON error, people a page saying to come back.
    if (answer.kind === 'sign-in form') t.regex(answer.body, /briefly unavailable/, 'a page for people');
    else if (answer.kind !== 'readyz') t.is((JSON.parse(answer.body) as { error?: string }).error, 'temporarily_unavailable', `${answer.kind}: ${answer.body.slice(0, 200)}`);
  }
  const authorizationAnswers = answers.filter((answer) => answer.kind === 'authorization' && answer.status !== 503);
  for (const answer of authorizationAnswers) {
    // The authorization endpoint tells the RP in the redirect, as OAuth says (RFC 6749 section 4.1.2.1).
    if (answer.location?.includes('error=')) t.regex(answer.location, /error=temporarily_unavailable/);
  }
  const firstUnavailable = Math.min(...unavailable.filter((answer) => answer.kind !== 'readyz').map((answer) => answer.sentAt + answer.ms)) - frozenAt;
  const firstNotReady = Math.min(...answers.filter((answer) => answer.kind === 'readyz' && answer.status === 503).map((answer) => answer.sentAt + answer.ms)) - frozenAt;

  // Recovery: every probe works again, by itself, soon.
  const recovered = new Map<string, number>();
  const deadline = resumedAt + 20_000;
  while (recovered.size < probes.length && Date.now() < deadline) {
    for (const probe of probes) {
      if (recovered.has(probe.kind)) continue;
      const answer = await measure(probe);
      t.true(answer.status < 500 || answer.status === 503, `${probe.kind} after the thaw: ${answer.status}`);
      if (probe.healthy(answer)) recovered.set(probe.kind, Date.now() - resumedAt);
    }
    if (recovered.size < probes.length) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.deepEqual([...recovered.keys()].sort(), probes.map((probe) => probe.kind).sort(), 'every probe recovered');
  const recoveryMs = Math.max(...recovered.values());

  // Nothing was lost: the refresh token chain and a whole new sign-in work.
  await t.notThrowsAsync(oidc.refreshTokenGrant(config, refreshToken));
  const again = await signIn(config, new UserAgent(), newPerson(), { register: true });
  t.truthy(again.tokens.id_token);

  const byKind = Object.fromEntries([...probes, ...alwaysUp].map((probe) => {
    const mine = answers.filter((answer) => answer.kind === probe.kind);
    return [probe.kind, `${mine.length} requests, statuses ${[...new Set(mine.map((answer) => answer.status))].join('/')}, slowest ${Math.max(...mine.map((answer) => answer.ms))} ms`];
  }));
  t.log(`frozen ${FREEZE_MS / 1000} s: /readyz 503 after ${firstNotReady} ms, first store-backed 503 after ${firstUnavailable} ms; all recovered ${recoveryMs} ms after the thaw`);
  t.log(byKind);
});
