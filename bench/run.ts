/**
 * `npm run bench`: Tessera against a bare oidc-provider baseline, both started here as child
 * processes on this machine, scenario by scenario, so each result is a ratio that holds on a noisy
 * machine. Writes bench/results.json and bench/results.md and prints the table; exits non-zero
 * when a budget fails.
 *
 * Each scenario runs BENCH_ROUNDS times (default 3) against both servers, in alternating order,
 * and a ratio is the median of the rounds' ratios: one pair of runs on a shared machine can be off by
 * ten points either way (measured: 89%, 92% and 103% in three runs of the same build), the median
 * of three far less. BENCH_SECONDS (default 5) sets each run's length, BENCH_CONNECTIONS (default 16)
 * the concurrency. For finding costs: BENCH_ONLY=jwks,refresh runs only the scenarios whose names
 * contain one of the words (results.md is then left alone), BENCH_TARGETS=tessera runs one target,
 * BENCH_PROFILE=DIR starts both servers with --cpu-prof (and --heap-prof with BENCH_HEAP_PROFILE=1)
 * writing to DIR/tessera and DIR/baseline (bench/profile-summary.ts reads them), and
 * BENCH_NODE_OPTIONS adds Node options to both servers alike (BENCH_TESSERA_NODE_OPTIONS to Tessera
 * alone, to try out the settings bin/tessera gives it), and BENCH_SERVER_LOGS=DIR keeps both servers'
 * output in DIR/tessera.log and DIR/baseline-server.log (with --trace-gc, for instance). Tessera logs
 * at info, an access log line per request as in production.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as argon2 from 'argon2';
import autocannon from 'autocannon';

import { loadConfig } from '../src/config.ts';
import { createCertificateAuthority, issueCertificate } from '../src/domain/pki.ts';
import { buildServices } from '../src/services.ts';
import { openStore } from '../src/store/open-store.ts';
import { csrfToken, runFlows, VirtualUser, type FlowResult } from './http-flow.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Math.max(1, Math.floor(Number(process.env.BENCH_ROUNDS ?? 3)));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const ONLY = process.env.BENCH_ONLY?.split(',').map((word) => word.trim()).filter(Boolean);
const TARGETS = process.env.BENCH_TARGETS?.split(',').map((word) => word.trim()).filter(Boolean);
const PROFILE_DIR = process.env.BENCH_PROFILE ? path.resolve(process.env.BENCH_PROFILE) : undefined;
const SERVER_LOG_DIR = process.env.BENCH_SERVER_LOGS ? path.resolve(process.env.BENCH_SERVER_LOGS) : undefined;
const API = 'https://api.bench.example';
const REDIRECT = 'http://localhost:9/callback';
const PASSWORD = 'bench password that is long enough';

interface Target {
  name: 'tessera' | 'baseline';
  process: ChildProcess;
  issuer: string;
  mtls: string;
  machine: { id: string; secret: string };
  mtlsClientId: string;
  rp: { id: string; secret: string };
  signIn(user: VirtualUser, index: number): Promise<{ access_token: string; refresh_token: string }>;
}

interface ScenarioResult {
  scenario: string;
  target: string;
  round: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** Share of one core used by the server and by this load generator during the scenario. */
  serverCpu?: number;
  /** The same for the server's main (JavaScript) thread alone. */
  serverMainThreadCpu?: number;
  generatorCpu?: number;
  /** Highest resident set size of the server sampled during the scenario (every 100 ms), MB. */
  rssMb?: number;
  /** For Tessera's sign-in runs: argon2id verifies per second on one core, measured just before the run. */
  argon2VerifiesPerSecond?: number;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * NODE_OPTIONS for both servers: BENCH_NODE_OPTIONS (for experiments, applied to both alike) and,
 * under BENCH_PROFILE, CPU (and heap) profiles written when the server exits.
 */
function serverNodeOptions(name: string): Record<string, string> {
  const options = [process.env.NODE_OPTIONS, process.env.BENCH_NODE_OPTIONS, name === 'tessera' ? process.env.BENCH_TESSERA_NODE_OPTIONS : undefined];
  if (PROFILE_DIR) {
    const dir = path.join(PROFILE_DIR, name);
    options.push(`--cpu-prof --cpu-prof-dir=${dir}`);
    if (process.env.BENCH_HEAP_PROFILE) options.push(`--heap-prof --heap-prof-dir=${dir}`);
  }
  const joined = options.filter(Boolean).join(' ');
  return joined ? { NODE_OPTIONS: joined } : {};
}

/**
 * Starts a server with its output (stdout and stderr) going to a file, as a production server's goes
 * to a log collector: the bench process, which is also the load generator, never reads a line of it
 * while measuring, and a slow reader cannot hold up the server's writes. The file is in `logDir`
 * (BENCH_SERVER_LOGS keeps it); the server is up when `ready` matches what it has written.
 */
function startChild(args: string[], env: Record<string, string>, ready: RegExp, logDir: string): Promise<ChildProcess> {
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `${path.basename(args[0]!, '.ts')}.log`);
  const fd = openSync(logFile, 'w');
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const output = () => readFileSync(logFile, 'utf8').slice(0, 20_000);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (ready.test(output())) {
        clearInterval(poll);
        resolve(child);
      } else if (Date.now() - started > 30_000) {
        clearInterval(poll);
        child.kill('SIGKILL');
        reject(new Error(`${args.join(' ')} did not start:\n${output()}`));
      }
    }, 100);
    child.once('exit', (code) => {
      clearInterval(poll);
      reject(new Error(`${args.join(' ')} exited with ${code}:\n${output()}`));
    });
  });
}

/** SIGTERM, then wait (a profiled server writes its profile on the way out). */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, 20_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Current resident set size of a process (Linux VmRSS), in MB. */
function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/** Peak resident set size of a process so far (Linux VmHWM), in MB. */
function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/**
 * CPU seconds a process has used so far (utime + stime from /proc, in clock ticks of 1/100 s): all
 * its threads, or with `mainThread` only the one that runs JavaScript (the event loop), whose time
 * does not include waiting for a core, unlike a profile's samples.
 */
function cpuSeconds(pid: number, mainThread = false): number {
  const fields = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Password verifies per second on one core with the configured parameters: the sign-in budget's yardstick. */
async function argon2VerifyRate(): Promise<number> {
  const hash = await argon2.hash(PASSWORD, { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 });
  const until = performance.now() + 3000;
  let count = 0;
  while (performance.now() < until) {
    await argon2.verify(hash, PASSWORD);
    count += 1;
  }
  return count / 3;
}

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function cannon(options: autocannon.Options): Promise<Omit<ScenarioResult, 'scenario' | 'target' | 'round'>> {
  const result = await autocannon({ connections: CONNECTIONS, duration: SECONDS, ...options });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx + result.mismatches,
  };
}

function fromFlow(result: FlowResult): Omit<ScenarioResult, 'scenario' | 'target' | 'round'> {
  return { rps: result.rate, p50: result.p50, p99: result.p99, errors: result.errors };
}

async function exchange(user: VirtualUser, issuer: string, rp: { id: string; secret: string }, callback: string, verifier: string) {
  const code = new URL(callback).searchParams.get('code');
  if (!code) throw new Error(`no code in ${callback}`);
  const response = await user.request(`${issuer}/token`, {
    form: { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier },
    headers: { authorization: basic(rp.id, rp.secret) },
  });
  if (response.status !== 200) throw new Error(`token: ${response.status} ${response.body}`);
  return JSON.parse(response.body) as { access_token: string; refresh_token: string };
}

function authorizeUrl(issuer: string, clientId: string, challenge: string, extra: Record<string, string> = {}): string {
  const url = new URL(`${issuer}/auth`);
  const params = {
    client_id: clientId, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid email offline_access',
    code_challenge: challenge, code_challenge_method: 'S256', state: randomBytes(8).toString('hex'), ...extra,
  };
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.href;
}

/** Tessera's sign-in through its pages: authorize, sign-in form, consent form, code exchange. */
function tesseraSignIn(issuer: string, rp: { id: string; secret: string }, emails: string[]) {
  return async (user: VirtualUser, index: number) => {
    user.clearCookies();
    const { verifier, challenge } = pkce();
    let response = await user.request(authorizeUrl(issuer, rp.id, challenge));
    const login = await user.request(response.location!);
    response = await user.request(`${response.location}/login`, { form: { _csrf: csrfToken(login.body), email: emails[index]!, password: PASSWORD } });
    if (response.status !== 303) throw new Error(`login: ${response.status}`);
    response = await user.request(response.location!);
    const consent = await user.request(response.location!);
    response = await user.request(`${response.location}/consent`, { form: { _csrf: csrfToken(consent.body), decision: 'allow' } });
    response = await user.request(response.location!);
    return exchange(user, issuer, rp, response.location!, verifier);
  };
}

/** The baseline's interactions finish without pages: follow redirects to the callback. */
function baselineSignIn(issuer: string, rp: { id: string; secret: string }) {
  return async (user: VirtualUser) => {
    user.clearCookies();
    const { verifier, challenge } = pkce();
    let location = authorizeUrl(issuer, rp.id, challenge, { prompt: 'consent' });
    while (!location.startsWith(REDIRECT)) {
      const response = await user.request(location);
      if (!response.location) throw new Error(`baseline flow stopped at ${location}: ${response.status}`);
      location = response.location;
    }
    return exchange(user, issuer, rp, location, verifier);
  };
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'tessera-bench-'));
  const children: ChildProcess[] = [];
  const stop = () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  };
  process.on('exit', stop);
  try {
    console.log(`bench: ${os.cpus().length} cores, ${os.cpus()[0]?.model}, Node ${process.version}, ${SECONDS}s per scenario, ${CONNECTIONS} connections`);
    const serverCa = await createCertificateAuthority({ subject: 'CN=Bench Server CA' });
    const serverCert = await issueCertificate(serverCa, { subject: 'CN=localhost', sans: { dns: ['localhost'], ip: ['127.0.0.1'] }, usage: 'server' });
    const clientCa = await createCertificateAuthority({ subject: 'CN=Bench Client CA' });
    const clientCert = await issueCertificate(clientCa, { subject: 'CN=bench-mtls,O=Bench' });
    const files = { cert: path.join(work, 'server.pem'), key: path.join(work, 'server-key.pem'), ca: path.join(work, 'client-ca.pem') };
    writeFileSync(files.cert, serverCert.cert);
    writeFileSync(files.key, serverCert.key);
    writeFileSync(files.ca, clientCa.cert);

    // Tessera: seed the store first, then start the server on it.
    const [port, mtlsPort] = [await freePort(), await freePort()];
    const unlimited = '1000000000/1';
    const env: Record<string, string> = {
      NODE_ENV: 'production', PORT: String(port), MTLS_PORT: String(mtlsPort), ISSUER: `https://localhost:${port}`,
      // One process, as the budgets say (WORKERS defaults to one per core); its pid is the one measured.
      WORKERS: '1',
      DATA_DIR: path.join(work, 'data'), CONFIG_DIR: path.join(work, 'config'), LOG_LEVEL: 'info',
      TESSERA_SECRET: randomBytes(32).toString('base64url'), TLS_CERT: files.cert, TLS_KEY: files.key, MTLS_CA: files.ca,
      RATE_LIMIT_SIGNIN_PER_IP: unlimited, RATE_LIMIT_SIGNIN_PER_ACCOUNT: unlimited, RATE_LIMIT_TOKEN_FAILURES_PER_IP: unlimited,
      RATE_LIMIT_TOKEN_FAILURES_PER_CLIENT: unlimited, RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT: unlimited,
    };
    const config = loadConfig(env, ROOT);
    const store = await openStore(config);
    const services = buildServices(config, store);
    await services.keys.ensure();
    await services.resources.create({ audience: API, scopes: ['orders:read'], format: 'jwt', ttlSeconds: 300 });
    const machine = await services.clients.createMachineClient({ name: 'bench machine', auth: 'client_secret_basic', resources: { [API]: ['orders:read'] } });
    const mtlsClient = await services.clients.createMachineClient({
      name: 'bench mtls', auth: 'tls_client_auth', tlsSubjects: [{ type: 'subject_dn', value: 'CN=bench-mtls,O=Bench' }], resources: { [API]: ['orders:read'] },
    });
    const rp = await services.clients.createRelyingParty({ name: 'bench rp', redirectUris: [REDIRECT] });
    const emails = Array.from({ length: CONNECTIONS }, (_, index) => `bench${index}@example.com`);
    for (const email of emails) await services.accounts.register({ email, password: PASSWORD });
    await store.close();

    const tesseraProcess = await startChild(['bin/tessera', 'serve'], { ...env, ...serverNodeOptions('tessera') }, /listening/i, SERVER_LOG_DIR ?? work);
    children.push(tesseraProcess);
    const baselinePort = await freePort();
    const baselineSecret = randomBytes(32).toString('base64url');
    const baselineProcess = await startChild(['bench/baseline-server.ts'], {
      BASELINE_PORT: String(baselinePort), BASELINE_AUDIENCE: API, BASELINE_REDIRECT_URI: REDIRECT,
      BASELINE_SECRET: baselineSecret, BASELINE_TLS_CERT: serverCert.cert, BASELINE_TLS_KEY: serverCert.key, BASELINE_CLIENT_CA: clientCa.cert,
      BASELINE_MTLS_SUBJECT: 'CN=bench-mtls,O=Bench', ...serverNodeOptions('baseline'),
    }, /^ready/m, SERVER_LOG_DIR ?? work);
    children.push(baselineProcess);

    const tessera: Target = {
      name: 'tessera', process: tesseraProcess, issuer: `https://localhost:${port}`, mtls: `https://localhost:${mtlsPort}`,
      machine: { id: machine.client_id, secret: machine.client_secret! }, mtlsClientId: mtlsClient.client_id,
      rp: { id: rp.client_id, secret: rp.client_secret! },
      signIn: tesseraSignIn(`https://localhost:${port}`, { id: rp.client_id, secret: rp.client_secret! }, emails),
    };
    const baselineIssuer = `https://localhost:${baselinePort}`;
    const baseline: Target = {
      name: 'baseline', process: baselineProcess, issuer: baselineIssuer, mtls: baselineIssuer,
      machine: { id: 'bench-machine', secret: baselineSecret }, mtlsClientId: 'bench-mtls',
      rp: { id: 'bench-rp', secret: baselineSecret },
      signIn: baselineSignIn(baselineIssuer, { id: 'bench-rp', secret: baselineSecret }),
    };

    const results: ScenarioResult[] = [];
    const tls = { ca: serverCa.cert };
    const form = `grant_type=client_credentials&scope=orders%3Aread&resource=${encodeURIComponent(API)}`;
    const formHeaders = { 'content-type': 'application/x-www-form-urlencoded' };
    /**
     * Tokens for the refresh, introspection and userinfo scenarios, through each target's own sign-in,
     * fetched right before the scenario: the baseline's in-memory adapter is an LRU of 1,000 entries,
     * and a token issued before the refresh scenario is evicted by it (then introspection answers a
     * cheap `active: false` and userinfo a 401).
     */
    const refreshTokensOf = async (target: Target) => {
      const users = Array.from({ length: CONNECTIONS }, () => new VirtualUser(serverCa.cert));
      try {
        return (await Promise.all(users.map((user, index) => target.signIn(user, index)))).map((token) => token.refresh_token);
      } finally {
        for (const user of users) user.close();
      }
    };
    const accessTokenOf = async (target: Target) => {
      const user = new VirtualUser(serverCa.cert);
      try {
        return (await target.signIn(user, 0)).access_token;
      } finally {
        user.close();
      }
    };
    const flows = async (flow: (user: VirtualUser, index: number) => Promise<void>) => {
      const users = Array.from({ length: CONNECTIONS }, () => new VirtualUser(serverCa.cert));
      try {
        return fromFlow(await runFlows(users, SECONDS, flow));
      } finally {
        for (const user of users) user.close();
      }
    };
    const scenarios: Array<{
      name: string;
      run(target: Target): Promise<Omit<ScenarioResult, 'scenario' | 'target' | 'round'>>;
      /** Measured right before each of Tessera's runs: the yardstick its budget compares with, at the same moment of the machine. */
      yardstick?(): Promise<number>;
    }> = [
      { name: 'discovery', run: (target) => cannon({ url: `${target.issuer}/.well-known/openid-configuration`, tlsOptions: tls }) },
      { name: 'jwks', run: (target) => cannon({ url: `${target.issuer}/jwks`, tlsOptions: tls }) },
      {
        name: 'client credentials (secret)',
        run: (target) => cannon({
          url: `${target.issuer}/token`, method: 'POST', body: form, tlsOptions: tls,
          headers: { ...formHeaders, authorization: basic(target.machine.id, target.machine.secret) },
        }),
      },
      {
        name: 'client credentials (mTLS)',
        run: (target) => cannon({
          url: `${target.mtls}/token`, method: 'POST', body: `${form}&client_id=${target.mtlsClientId}`, headers: formHeaders,
          tlsOptions: { ...tls, cert: clientCert.cert, key: clientCert.key },
        }),
      },
      { name: 'sign-in flow (password)', run: (target) => flows(async (user, index) => void await target.signIn(user, index)), yardstick: argon2VerifyRate },
      {
        name: 'refresh',
        async run(target) {
          const refreshTokens = await refreshTokensOf(target);
          return flows(async (user, index) => {
            const response = await user.request(`${target.issuer}/token`, {
              form: { grant_type: 'refresh_token', refresh_token: refreshTokens[index]! },
              headers: { authorization: basic(target.rp.id, target.rp.secret) },
            });
            if (response.status !== 200) throw new Error(`refresh: ${response.status} ${response.body}`);
            refreshTokens[index] = (JSON.parse(response.body) as { refresh_token: string }).refresh_token;
          });
        },
      },
      {
        name: 'introspection',
        async run(target) {
          const accessToken = await accessTokenOf(target);
          return cannon({
            url: `${target.issuer}/token/introspection`, method: 'POST', body: `token=${accessToken}`, tlsOptions: tls,
            // An unknown token is a cheap 200 too; only an active answer counts.
            verifyBody: (body) => String(body).includes('"active":true'),
            headers: { ...formHeaders, authorization: basic(target.rp.id, target.rp.secret) },
          });
        },
      },
      {
        name: 'userinfo',
        async run(target) {
          const accessToken = await accessTokenOf(target);
          return cannon({ url: `${target.issuer}/me`, headers: { authorization: `Bearer ${accessToken}` }, tlsOptions: tls });
        },
      },
    ];
    // Scenario by scenario, both targets back to back, so both see the same moment of a noisy machine.
    const targets = [baseline, tessera].filter((target) => !TARGETS || TARGETS.includes(target.name));
    // Monotonic-clock windows (microseconds, the clock V8 profiles use) so profile-summary.ts can cut a profile by scenario.
    const windows: Array<{ target: string; scenario: string; from: number; to: number; requests: number }> = [];
    const now = () => Number(process.hrtime.bigint() / 1000n);
    for (const scenario of scenarios.filter((entry) => !ONLY || ONLY.some((word) => entry.name.includes(word)))) {
      for (let round = 1; round <= ROUNDS; round += 1) {
        // Neither server always runs right after the other's load (a warmer or a more tired machine).
        for (const target of round % 2 === 1 ? targets : [...targets].reverse()) {
          const pid = target.process.pid!;
          const yardstick = target.name === 'tessera' ? await scenario.yardstick?.() : undefined;
          if (yardstick !== undefined) console.log(`bench: argon2id (m=19456 KiB, t=2, p=1) verifies on one core, this process, servers idle: ${yardstick.toFixed(1)}/s`);
          const [serverBefore, mainBefore, generatorBefore, started, from] = [cpuSeconds(pid), cpuSeconds(pid, true), process.cpuUsage(), performance.now(), now()];
          let rss = rssMb(pid);
          const sampler = setInterval(() => {
            rss = Math.max(rss, rssMb(pid));
          }, 100);
          const result = await scenario.run(target).finally(() => clearInterval(sampler));
          windows.push({ target: target.name, scenario: scenario.name, from, to: now(), requests: Math.round(result.rps * (performance.now() - started) / 1000) });
          const elapsed = (performance.now() - started) / 1000;
          const generator = process.cpuUsage(generatorBefore);
          const measured: ScenarioResult = {
            scenario: scenario.name, target: target.name, round, ...result,
            serverCpu: (cpuSeconds(pid) - serverBefore) / elapsed,
            serverMainThreadCpu: (cpuSeconds(pid, true) - mainBefore) / elapsed,
            generatorCpu: (generator.user + generator.system) / 1e6 / elapsed,
            rssMb: rss,
            ...(yardstick !== undefined && { argon2VerifiesPerSecond: yardstick }),
          };
          results.push(measured);
          console.log(`bench: ${target.name.padEnd(8)} ${scenario.name.padEnd(28)} ${ROUNDS > 1 ? `round ${round}/${ROUNDS} ` : ''}${result.rps.toFixed(0).padStart(7)}/s  p50 ${result.p50.toFixed(1)} ms  p99 ${result.p99.toFixed(1)} ms  errors ${result.errors}  `
            + `server ${(measured.serverCpu! * 100).toFixed(0)}% cpu, ${(measured.serverCpu! * 1000 / result.rps).toFixed(2)} cpu-ms/req (main thread ${(measured.serverMainThreadCpu! * 1000 / result.rps).toFixed(2)}); generator ${(measured.generatorCpu! * 100).toFixed(0)}% cpu; rss up to ${rss.toFixed(0)} MB`);
        }
      }
    }
    if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
    if (PROFILE_DIR) writeFileSync(path.join(PROFILE_DIR, 'windows.json'), JSON.stringify(windows, null, 2));
    if (ONLY || TARGETS) {
      console.log(`bench: peak RSS ${targets.map((target) => `${target.name} ${peakRssMb(target.process.pid!).toFixed(0)} MB`).join(', ')}; partial run (BENCH_ONLY/BENCH_TARGETS), results files left alone`);
      return;
    }

    const peak = { tessera: peakRssMb(tesseraProcess.pid!), baseline: peakRssMb(baselineProcess.pid!) };
    // Each of Tessera's sign-in runs against the argon2 rate measured just before it.
    const signInRuns = results.filter((r) => r.scenario === 'sign-in flow (password)' && r.target === 'tessera');
    const signInRatios = signInRuns.map((r) => r.rps / r.argon2VerifiesPerSecond!);
    const verifyRate = median(signInRuns.map((r) => r.argon2VerifiesPerSecond!));
    const budgets = [
      { budget: 'client credentials (JWT) >= 90% of baseline', value: median(roundRatios(results, 'client credentials (secret)')), limit: 0.9 },
      { budget: 'sign-in flows >= 85% of one core\'s argon2id verifies', value: median(signInRatios), limit: 0.85 },
      { budget: 'peak RSS under load <= 150 MB', value: peak.tessera, limit: 150, atMost: true },
    ].map((entry) => ({ ...entry, pass: entry.atMost ? entry.value <= entry.limit : entry.value >= entry.limit }));

    const machineLine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
    const scenarioNames = [...new Set(results.map((r) => r.scenario))];
    const table = [
      `Machine: ${machineLine}. ${ROUNDS} rounds of ${SECONDS} s per scenario and server, ${CONNECTIONS} connections, TLS on every request, Tessera on SQLite (NODE_ENV=production), both servers single-process.`,
      '',
      '| Scenario | Tessera req/s | p50 ms | p99 ms | Baseline req/s | p50 ms | p99 ms | Ratio | CPU ms/req, Tessera / baseline | Tessera RSS MB |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...scenarioNames.map((scenario) => {
        const [t, b] = [medianRun(results, scenario, 'tessera'), medianRun(results, scenario, 'baseline')];
        const ratios = roundRatios(results, scenario);
        const percent = (ratio: number) => `${(ratio * 100).toFixed(0)}%`;
        const spread = ratios.length > 1 ? ` (${percent(ratios[0]!)}–${percent(ratios.at(-1)!)})` : '';
        const cpu = (r: ScenarioResult) => (r.serverCpu! * 1000 / r.rps).toFixed(2);
        const rss = Math.max(...results.filter((r) => r.scenario === scenario && r.target === 'tessera').map((r) => r.rssMb!));
        return `| ${scenario} | ${t.rps.toFixed(0)} | ${t.p50.toFixed(1)} | ${t.p99.toFixed(1)} | ${b.rps.toFixed(0)} | ${b.p50.toFixed(1)} | ${b.p99.toFixed(1)} | ${percent(median(ratios))}${spread} | ${cpu(t)} / ${cpu(b)} | ${rss.toFixed(0)} |`;
      }),
      '',
      'Req/s, latency and CPU: each server\'s median round. Ratio: the median of the rounds\' ratios (each round runs both servers back to back), lowest and highest in brackets.',
      'CPU ms/req: the server\'s CPU time (all threads) per request or flow during the scenario, less sensitive than req/s to other load on the machine. Tessera RSS: the highest resident set size sampled during the scenario\'s rounds.',
      `Load generator (this process, on the same 2 cores): at most ${(Math.max(...results.map((r) => r.generatorCpu ?? 0)) * 100).toFixed(0)}% of one core in any scenario.`,
      '',
      `Peak RSS: Tessera ${peak.tessera.toFixed(0)} MB, baseline ${peak.baseline.toFixed(0)} MB. argon2id verifies on one core: ${verifyRate.toFixed(1)}/s (median of the measurements before each of Tessera's sign-in runs; sign-in flows are per second, 8-9 requests each). Sign-in budget: the median of the runs' flows per second over the verifies per second measured just before each (${signInRatios.map((ratio) => `${(ratio * 100).toFixed(0)}%`).join(', ')}).`,
      '',
      '| Budget | Measured | Result |',
      '|---|---:|---|',
      ...budgets.map((b) => `| ${b.budget} | ${b.atMost ? `${b.value.toFixed(0)} MB` : `${(b.value * 100).toFixed(0)}%`} | ${b.pass ? 'pass' : 'FAIL'} |`),
    ].join('\n');
    writeFileSync(path.join(ROOT, 'bench', 'results.json'), JSON.stringify({ date: new Date().toISOString(), machine: machineLine, seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS, argon2VerifiesPerSecond: verifyRate, peakRssMb: peak, results, budgets }, null, 2));
    writeFileSync(path.join(ROOT, 'bench', 'results.md'), `${table}\n`);
    console.log(`\n${table}`);
    if (budgets.some((b) => !b.pass)) process.exitCode = 1;
  } finally {
    await Promise.all(children.map(stopChild));
    rmSync(work, { recursive: true, force: true });
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The run of `target` in `scenario` whose req/s is the median of its rounds (the lower middle one of an even count). */
function medianRun(results: readonly ScenarioResult[], scenario: string, target: string): ScenarioResult {
  const runs = results.filter((r) => r.scenario === scenario && r.target === target).sort((a, b) => a.rps - b.rps);
  return runs[Math.floor((runs.length - 1) / 2)]!;
}

/** Tessera's req/s over the baseline's, round by round (both ran back to back), lowest first. */
function roundRatios(results: readonly ScenarioResult[], scenario: string): number[] {
  const of = (target: string, round: number) => results.find((r) => r.scenario === scenario && r.target === target && r.round === round)!;
  const rounds = [...new Set(results.filter((r) => r.scenario === scenario).map((r) => r.round))];
  return rounds.map((round) => of('tessera', round).rps / of('baseline', round).rps).sort((a, b) => a - b);
}

await main();
