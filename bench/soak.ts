/**
 * `npm run soak`: mixed traffic against a spawned `bin/tessera serve` for SOAK_MINUTES (default 10),
 * reporting errors and the server's memory every 30 s. It fails when any request went wrong, or when
 * memory keeps growing: the last quarter's average RSS above 1.5 times the second quarter's (the
 * first quarter is warm-up: caches, JIT, the leaked-password list).
 *
 * The traffic, from SOAK_CONCURRENCY (default 4) loops: client-credentials tokens, refresh-token
 * rotations, whole sign-ins (authorization code with PKCE, password, consent), registrations through
 * the API, userinfo, introspection, discovery and JWKS, and requests that must be refused (a wrong
 * password, a bad token). An "error" is any answer other than the one expected, or no answer.
 *
 * Environment: SOAK_MINUTES, SOAK_CONCURRENCY, SOAK_WORKERS (WORKERS for the server, default 1: the
 * memory of one process), MONGODB_URI (else SQLite in a temporary directory).
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { discover, newPerson, signIn, staticClient } from '../test/helpers/relying-party.ts';
import { makeTempDir, removeDir } from '../test/helpers/server.ts';
import { killIfRunning, listeningUrl, spawnServer } from '../test/helpers/spawned-server.ts';
import { UserAgent } from '../test/helpers/user-agent.ts';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 4);
const WORKERS = process.env.SOAK_WORKERS ?? '1';
const REPORT_EVERY_MS = 30_000;
const SAMPLE_EVERY_MS = 5_000;
const GROWTH_LIMIT = 1.5;

const BACKEND_SECRET = 'soak-first-party-backend-secret-0123456789';
const MACHINE_SECRET = 'soak-machine-client-secret-with-entropy-0123456789';
const rp = staticClient();
const clients = [
  rp,
  staticClient({ client_id: 'backend', client_secret: BACKEND_SECRET, client_name: 'Soak backend', tessera_first_party: true }),
  {
    client_id: 'machine', client_secret: MACHINE_SECRET, client_name: 'Soak machine', grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
  },
];
const basic = (id: string, secret: string) => `Basic ${btoa(`${id}:${secret}`)}`;
const PASSWORD = 'a soak test passphrase of some length';

interface Sample {
  at: number;
  rssMiB: number;
}

/** The server's JS heap and off-heap (Buffers, ...) in MiB, from its own /metrics (prom-client's default metrics). */
async function heapMiB(url: string): Promise<{ heap: number; heapTotal: number; external: number } | undefined> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN) / 1024 / 1024;
    return { heap: value('nodejs_heap_size_used_bytes'), heapTotal: value('nodejs_heap_size_total_bytes'), external: value('nodejs_external_memory_bytes') };
  } catch {
    return undefined;
  }
}

/** RSS of the server and, with workers, of its children: /proc is Linux's, like the machine this runs on. */
function rssMiB(pid: number): number {
  const rss = (id: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${id}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // No children list (older kernels): the primary alone.
  }
  return [pid, ...children].reduce((sum, id) => {
    try {
      return sum + rss(id);
    } catch {
      return sum;
    }
  }, 0);
}

async function main(): Promise<void> {
  const dataDir = makeTempDir('tessera-soak-');
  const unlimited = '1000000000/1';
  const server = spawnServer({
    dataDir,
    clients,
    env: {
      WORKERS,
      // As in production: an access log line per request.
      LOG_LEVEL: 'info',
      ...(process.env.MONGODB_URI ? { MONGODB_URI: process.env.MONGODB_URI } : {}),
      // glibc's per-thread malloc arenas (argon2 hashes on libuv's threads) are what RSS is made of; see the README.
      ...(process.env.MALLOC_ARENA_MAX ? { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX } : {}),
      RATE_LIMIT_SIGNIN_PER_IP: unlimited,
      RATE_LIMIT_SIGNIN_PER_ACCOUNT: unlimited,
      RATE_LIMIT_REGISTRATION_PER_IP: unlimited,
      RATE_LIMIT_TOKEN_FAILURES_PER_IP: unlimited,
      RATE_LIMIT_TOKEN_FAILURES_PER_CLIENT: unlimited,
    },
  });
  const stop = () => {
    killIfRunning(server);
    removeDir(dataDir);
  };
  process.once('SIGINT', () => {
    stop();
    process.exit(130);
  });

  try {
    const url = await listeningUrl(server);
    // With workers, wait for all of them (the first is ready before the others start).
    if (Number(WORKERS) > 1) {
      await server.waitForLine(() => server.lines.filter((line) => line.msg === 'worker ready').length >= Number(WORKERS), 'all workers ready');
    }
    const config = await discover(url, rp);
    console.log(`soak: ${MINUTES} min against ${url} (pid ${server.pid}, WORKERS=${WORKERS}, ${process.env.MONGODB_URI ? 'MongoDB' : 'SQLite'}), ${CONCURRENCY} loops`);

    // People to sign in as, and token chains to rotate (one per loop, each used by its loop only).
    const people = Array.from({ length: CONCURRENCY }, () => newPerson());
    const chains: Array<{ refreshToken: string; accessToken: string }> = [];
    for (const person of people) {
      const { tokens } = await signIn(config, new UserAgent(), person, { register: true });
      chains.push({ refreshToken: tokens.refresh_token!, accessToken: tokens.access_token });
    }

    const counts = new Map<string, number>();
    const errors: string[] = [];
    const samples: Sample[] = [{ at: 0, rssMiB: rssMiB(server.pid) }];
    const started = Date.now();
    const endAt = started + MINUTES * 60_000;
    let registrations = 0;

    async function expect(kind: string, response: Response, statuses: number[]): Promise<string> {
      const body = await response.text();
      if (statuses.includes(response.status)) counts.set(kind, (counts.get(kind) ?? 0) + 1);
      else errors.push(`${kind}: ${response.status} ${body.slice(0, 200)}`);
      return body;
    }

    const form = (auth: string) => ({ 'content-type': 'application/x-www-form-urlencoded', authorization: auth });
    const scenarios: Array<{ weight: number; run: (loop: number) => Promise<void> }> = [
      {
        weight: 30,
        run: async () => {
          await expect('client_credentials', await fetch(`${url}/token`, { method: 'POST', headers: form(basic('machine', MACHINE_SECRET)), body: 'grant_type=client_credentials' }), [200]);
        },
      },
      {
        weight: 20,
        run: async (loop) => {
          const chain = chains[loop]!;
          const response = await fetch(`${url}/token`, {
            method: 'POST',
            headers: form(basic(String(rp.client_id), String(rp.client_secret))),
            body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: chain.refreshToken }),
          });
          const body = await expect('refresh', response, [200]);
          if (response.status === 200) {
            const tokens = JSON.parse(body) as { refresh_token: string; access_token: string };
            chains[loop] = { refreshToken: tokens.refresh_token, accessToken: tokens.access_token };
          }
        },
      },
      {
        weight: 6,
        run: async (loop) => {
          const { tokens } = await signIn(config, new UserAgent(), people[loop]!);
          counts.set('sign-in', (counts.get('sign-in') ?? 0) + (tokens.id_token ? 1 : 0));
        },
      },
      {
        weight: 6,
        run: async () => {
          registrations += 1;
          await expect('registration', await fetch(`${url}/api/accounts`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: basic('backend', BACKEND_SECRET) },
            body: JSON.stringify({ email: `soak.${registrations}.${Date.now()}@example.com`, password: PASSWORD }),
          }), [201]);
        },
      },
      {
        weight: 12,
        run: async (loop) => {
          await expect('userinfo', await fetch(`${url}/me`, { headers: { authorization: `Bearer ${chains[loop]!.accessToken}` } }), [200]);
        },
      },
      {
        weight: 10,
        run: async (loop) => {
          const body = await expect('introspection', await fetch(`${url}/token/introspection`, {
            method: 'POST',
            headers: form(basic(String(rp.client_id), String(rp.client_secret))),
            body: new URLSearchParams({ token: chains[loop]!.accessToken }),
          }), [200]);
          if (!body.includes('"active":true')) errors.push(`introspection: not active: ${body.slice(0, 200)}`);
        },
      },
      {
        weight: 8,
        run: async () => {
          await expect('discovery', await fetch(`${url}/.well-known/openid-configuration`), [200]);
          await expect('jwks', await fetch(`${url}/jwks`), [200]);
        },
      },
      {
        weight: 8,
        run: async (loop) => {
          // Refusals are traffic too: they must stay refusals. (An unknown email: a known one would lock.)
          const nobody = { email: `nobody.${loop}@example.com`, password: 'not the password at all' };
          const wrong = await signIn(config, new UserAgent(), nobody).then(() => 'signed in', (error: Error) => error.message);
          if (/got 401/.test(wrong)) counts.set('wrong password', (counts.get('wrong password') ?? 0) + 1);
          else errors.push(`wrong password: ${wrong.slice(0, 200)}`);
          await expect('bad token', await fetch(`${url}/me`, { headers: { authorization: 'Bearer not-a-token' } }), [401]);
        },
      },
    ];
    const totalWeight = scenarios.reduce((sum, scenario) => sum + scenario.weight, 0);
    const pick = () => {
      let roll = Math.random() * totalWeight;
      for (const scenario of scenarios) {
        roll -= scenario.weight;
        if (roll < 0) return scenario;
      }
      return scenarios[0]!;
    };

    const sampler = setInterval(() => {
      samples.push({ at: Date.now() - started, rssMiB: rssMiB(server.pid) });
      // The server's log lines are not needed any more; keeping them would grow this process, not the server.
      server.lines.length = 0;
    }, SAMPLE_EVERY_MS);
    let lastReport = started;
    let lastRequests = 0;
    const reporter = setInterval(async () => {
      const requests = [...counts.values()].reduce((sum, count) => sum + count, 0);
      const now = Date.now();
      const rss = samples.at(-1)!.rssMiB;
      const heap = await heapMiB(url);
      const heapText = heap ? `  heap ${heap.heap.toFixed(0)}/${heap.heapTotal.toFixed(0)} MiB (used/total)  external ${heap.external.toFixed(0)} MiB` : '';
      console.log(`soak: ${((now - started) / 60_000).toFixed(1)} min  rss ${rss.toFixed(0)} MiB${heapText}  ${((requests - lastRequests) / ((now - lastReport) / 1000)).toFixed(0)} req/s  errors ${errors.length}`);
      lastReport = now;
      lastRequests = requests;
    }, REPORT_EVERY_MS);

    await Promise.all(Array.from({ length: CONCURRENCY }, async (_, loop) => {
      while (Date.now() < endAt) {
        try {
          await pick().run(loop);
        } catch (error) {
          errors.push(`loop ${loop}: ${error instanceof Error ? error.message : String(error)}`.slice(0, 300));
          await sleep(100);
        }
      }
    }));
    clearInterval(sampler);
    clearInterval(reporter);
    samples.push({ at: Date.now() - started, rssMiB: rssMiB(server.pid) });

    // Memory: averages per quarter of the run; warm-up (first quarter) is not the baseline.
    const duration = Date.now() - started;
    const quarter = (index: number) => {
      const inQuarter = samples.filter((sample) => sample.at >= (duration * index) / 4 && sample.at <= (duration * (index + 1)) / 4);
      return inQuarter.reduce((sum, sample) => sum + sample.rssMiB, 0) / Math.max(1, inQuarter.length);
    };
    const quarters = [0, 1, 2, 3].map(quarter);
    const growth = quarters[3]! / quarters[1]!;
    const total = [...counts.values()].reduce((sum, count) => sum + count, 0);

    console.log('');
    console.log('| minute | RSS MiB |');
    console.log('| ---: | ---: |');
    for (const sample of samples.filter((sample, index) => index === 0 || index === samples.length - 1 || sample.at % REPORT_EVERY_MS < SAMPLE_EVERY_MS)) {
      console.log(`| ${(sample.at / 60_000).toFixed(1)} | ${sample.rssMiB.toFixed(0)} |`);
    }
    console.log('');
    console.log(`requests: ${total} in ${(duration / 1000).toFixed(0)} s (${(total / (duration / 1000)).toFixed(0)}/s): ${[...counts].map(([kind, count]) => `${kind} ${count}`).join(', ')}`);
    console.log(`RSS by quarter (MiB): ${quarters.map((value) => value.toFixed(0)).join(' / ')}; last/second = ${growth.toFixed(2)} (limit ${GROWTH_LIMIT}); peak ${Math.max(...samples.map((sample) => sample.rssMiB)).toFixed(0)}`);
    console.log(`errors: ${errors.length}`);
    for (const error of [...new Set(errors)].slice(0, 20)) console.log(`  ${error}`);
    const failed = errors.length > 0 || growth > GROWTH_LIMIT || server.child.exitCode !== null;
    console.log(failed ? 'soak: FAILED' : 'soak: passed');
    process.exitCode = failed ? 1 : 0;
  } finally {
    stop();
  }
}

await main();
