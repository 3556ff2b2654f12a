/**
 * `npm run bench`: Tessera against a bare oidc-provider baseline, both started here as child
 * processes on this machine, scenario by scenario, so each result is a ratio that holds on a noisy
 * machine. Writes bench/results.json and bench/results.md and prints the tables with each budget's
 * verdict; exits non-zero when a budget fails.
 *
 * Two sets of rounds: `http` (both servers plain HTTP, Tessera as a TLS-terminating proxy would reach
 * it: ISSUER https, BEHIND_TLS_PROXY with the loopback trusted) and `tls` (both terminate TLS, and
 * the mTLS scenario runs); BENCH_SETS=http or =tls runs one. In each set, each scenario runs
 * BENCH_ROUNDS times (default 3) against both servers, in alternating order, and a ratio is the
 * median of the rounds' ratios: one pair of runs on a shared machine can be off by ten points either
 * way, the median of three far less. BENCH_SECONDS (default 5) sets each run's length,
 * BENCH_CONNECTIONS (default 16) the concurrency.
 *
 * The baseline is started with Tessera's memory and thread settings, read from the running Tessera
 * process (its node flags and MALLOC_, GLIBC_TUNABLES, UV_THREADPOOL_SIZE variables, which bin/tessera sets), so the
 * memory budget compares like with like (BENCH_BASELINE_SETTINGS=node-defaults gives it Node's
 * defaults instead, and the memory budget is then not judged).
 *
 * After the http set, a capacity phase runs Tessera with WORKERS=2 on the same store for the
 * sign-in, client credentials and refresh scenarios (BENCH_CAPACITY=0 skips it), for the figures in
 * Keycloak's sizing units. With MONGODB_URI, a second Tessera on that MongoDB runs every scenario of
 * each set too (its data is tagged with this run's id).
 *
 * For finding costs: BENCH_ONLY=jwks,refresh runs only the scenarios whose names contain one of the
 * words (the results files are then left alone), BENCH_TARGETS=tessera runs one target,
 * BENCH_PROFILE=DIR starts the servers with --cpu-prof (and --heap-prof with BENCH_HEAP_PROFILE=1)
 * writing to DIR/<set>/tessera and DIR/<set>/baseline (bench/profile-summary.ts reads them, and the
 * bench prints the per-request overhead table of bench/overhead.ts from them), BENCH_NODE_OPTIONS
 * adds Node options to both servers alike (BENCH_TESSERA_NODE_OPTIONS to Tessera alone), and
 * BENCH_SERVER_LOGS=DIR keeps the servers' output in DIR. BENCH_BASELINE_STORE=sqlite gives the
 * baseline a durable store (a SQLite file, see bench/baseline-server.ts) instead of its in-memory
 * adapter, to see what the endpoints that write cost a bare provider whose records outlive it (the
 * results files are then left alone). Tessera logs at info, an access log line per request as in
 * production.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { overheadByScenario, overheadTable } from './overhead.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Math.max(1, Math.floor(Number(process.env.BENCH_ROUNDS ?? 3)));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const ONLY = process.env.BENCH_ONLY?.split(',').map((word) => word.trim()).filter(Boolean);
const TARGETS = process.env.BENCH_TARGETS?.split(',').map((word) => word.trim()).filter(Boolean);
const PROFILE_DIR = process.env.BENCH_PROFILE ? path.resolve(process.env.BENCH_PROFILE) : undefined;
const SERVER_LOG_DIR = process.env.BENCH_SERVER_LOGS ? path.resolve(process.env.BENCH_SERVER_LOGS) : undefined;
const SETS = (process.env.BENCH_SETS ?? 'http,tls').split(',').map((word) => word.trim()).filter((word): word is Transport => word === 'http' || word === 'tls');
const CAPACITY = process.env.BENCH_CAPACITY !== '0';
const BASELINE_DEFAULTS = process.env.BENCH_BASELINE_SETTINGS === 'node-defaults';
/** BENCH_BASELINE_STORE=sqlite: the baseline keeps its records in a SQLite file (bench/baseline-server.ts); results files are left alone. */
const BASELINE_ON_SQLITE = process.env.BENCH_BASELINE_STORE === 'sqlite';
const MONGODB_URI = process.env.MONGODB_URI;
/** Client credentials run once per algorithm (resources create --signing-alg); RS256 is the default. */
const ALGS = (process.env.BENCH_ALGS ?? 'RS256,ES256,EdDSA').split(',').map((word) => word.trim()).filter(Boolean);
/** This run's tag: audiences and accounts in a MongoDB that may hold an earlier run's data. */
const RUN = randomBytes(4).toString('hex');
const API = `https://api.bench.example/${RUN}`;
const apiFor = (alg: string) => (alg === 'RS256' ? API : `${API}/${alg.toLowerCase()}`);
const REDIRECT = 'http://localhost:9/callback';
const PASSWORD = 'bench password that is long enough';

type Transport = 'http' | 'tls';
type TargetName = 'tessera' | 'baseline' | 'tessera-mongodb' | 'tessera-workers-2';

interface Target {
  name: TargetName;
  process: ChildProcess;
  /** The base URL requests go to (plain http in the http set, whatever ISSUER says). */
  issuer: string;
  mtls: string;
  machine: { id: string; secret: string };
  mtlsClientId: string;
  rp: { id: string; secret: string };
  signIn(user: VirtualUser, index: number): Promise<{ access_token: string; refresh_token: string }>;
}

interface ScenarioResult {
  set: Transport | 'capacity';
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

type Measured = Omit<ScenarioResult, 'set' | 'scenario' | 'target' | 'round'>;

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
function serverNodeOptions(name: TargetName, set: string, extra?: string): Record<string, string> {
  const options = [process.env.NODE_OPTIONS, process.env.BENCH_NODE_OPTIONS, name === 'baseline' ? undefined : process.env.BENCH_TESSERA_NODE_OPTIONS, extra];
  if (PROFILE_DIR) {
    const dir = path.join(PROFILE_DIR, set, name);
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
function startChild(args: string[], env: Record<string, string>, ready: RegExp, logDir: string, logName: string): Promise<ChildProcess> {
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `${logName}.log`);
  const fd = openSync(logFile, 'w');
  // MONGODB_URI goes only to the server that is given it: the others are seeded in SQLite.
  const { MONGODB_URI: _mongodbUri, ...inherited } = process.env;
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...inherited, ...env }, stdio: ['ignore', fd, fd] });
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

/** A process and its descendants (WORKERS=2: the primary and its workers), from /proc. */
function processTree(pid: number): number[] {
  const pids = [pid];
  for (let index = 0; index < pids.length; index += 1) {
    const current = pids[index]!;
    try {
      for (const task of readdirSync(`/proc/${current}/task`)) {
        pids.push(...readFileSync(`/proc/${current}/task/${task}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number));
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

function statusField(pid: number, field: string): number {
  try {
    return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return 0;
  }
}

/** Current resident set size of a process and its descendants (Linux VmRSS), in MB. */
function rssMb(pid: number): number {
  return processTree(pid).reduce((sum, each) => sum + statusField(each, 'VmRSS'), 0);
}

/** Peak resident set size so far (Linux VmHWM), in MB: of the process, or summed over its tree (an instance's workers). */
function peakRssMb(pid: number): number {
  return processTree(pid).reduce((sum, each) => sum + statusField(each, 'VmHWM'), 0);
}

/**
 * The memory and thread settings a running Tessera has (bin/tessera gives `serve` node flags and
 * MALLOC_/UV_THREADPOOL_SIZE variables, unless the operator set them), read from /proc so the
 * baseline can be started with exactly the same.
 */
function settingsOf(pid: number): { nodeOptions: string; env: Record<string, string> } {
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const environ = Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((line) => {
    const index = line.indexOf('=');
    return [line.slice(0, index), line.slice(index + 1)];
  }));
  const flags = [...cmdline, ...(environ.NODE_OPTIONS ?? '').split(' ')].filter((flag) => /^--max-(semi|old)-space-size=/.test(flag));
  const env = Object.fromEntries(['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_', 'GLIBC_TUNABLES', 'UV_THREADPOOL_SIZE'].filter((name) => environ[name] !== undefined).map((name) => [name, environ[name]!]));
  return { nodeOptions: [...new Set(flags)].join(' '), env };
}

/**
 * CPU seconds a process has used so far (utime + stime from /proc, in clock ticks of 1/100 s): all
 * its threads, or with `mainThread` only the one that runs JavaScript (the event loop), whose time
 * does not include waiting for a core, unlike a profile's samples.
 */
function cpuSeconds(pid: number, mainThread = false): number {
  // A process and its workers (WORKERS=2); the main thread is the primary's own (or the only process's).
  return (mainThread ? [pid] : processTree(pid)).reduce((sum, each) => {
    try {
      const fields = readFileSync(mainThread ? `/proc/${each}/task/${each}/stat` : `/proc/${each}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
      return sum + (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
      return sum;
    }
  }, 0);
}

/** The argon2id parameters Tessera runs with here: its defaults, or the ARGON2_* it inherits from this process. */
const ARGON2 = loadConfig(Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('ARGON2_'))), ROOT).argon2;

/** Password verifies per second on one core with the configured parameters: the sign-in budget's yardstick. */
async function argon2VerifyRate(): Promise<number> {
  const hash = await argon2.hash(PASSWORD, { type: argon2.argon2id, memoryCost: ARGON2.memoryKiB, timeCost: ARGON2.timeCost, parallelism: ARGON2.parallelism });
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

/** `notModified`: a 304 is a good answer too (the conditional-request scenarios). */
async function cannon(options: autocannon.Options, notModified = false): Promise<Measured> {
  const result = await autocannon({ connections: CONNECTIONS, duration: SECONDS, ...options });
  const answered304 = notModified ? (result.statusCodeStats?.['304']?.count ?? 0) : 0;
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx - answered304 + result.mismatches,
  };
}

function fromFlow(result: FlowResult): Measured {
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

/**
 * Tessera's sign-in through its pages: authorize, sign-in form, consent form, code exchange. With
 * prompt=consent, as the baseline's flow asks: Tessera remembers consent per account and client, and
 * a flow that skipped the consent page would do less than the baseline's. Whichever page comes is
 * answered, until the redirect to the callback.
 */
function tesseraSignIn(issuer: string, rp: { id: string; secret: string }, emails: string[]) {
  return async (user: VirtualUser, index: number) => {
    user.clearCookies();
    const { verifier, challenge } = pkce();
    let location = authorizeUrl(issuer, rp.id, challenge, { prompt: 'consent' });
    for (let step = 0; !location.startsWith(REDIRECT); step += 1) {
      if (step > 12) throw new Error(`sign-in did not reach the callback: stopped at ${location}`);
      let response = await user.request(location);
      if (response.status === 200 && response.body.includes('name="password"')) {
        response = await user.request(`${location}/login`, { form: { _csrf: csrfToken(response.body), email: emails[index]!, password: PASSWORD } });
        if (response.status !== 303) throw new Error(`login: ${response.status}`);
      } else if (response.status === 200 && response.body.includes('name="decision"')) {
        response = await user.request(`${location}/consent`, { form: { _csrf: csrfToken(response.body), decision: 'allow' } });
      }
      if (!response.location) throw new Error(`sign-in stopped at ${location}: ${response.status} ${/<main[^]*?<\/main>/.exec(response.body)?.[0].replace(/<[^>]+>|\s+/g, " ").trim() ?? response.body.slice(0, 300)}`);
      location = response.location;
    }
    return exchange(user, issuer, rp, location, verifier);
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

interface Scenario {
  name: string;
  /** Only in these sets (mTLS needs TLS); every set otherwise. */
  sets?: readonly Transport[];
  /**
   * What the run needs from the server first (tokens through a sign-in), done before the measured
   * window opens: its requests would otherwise count in the CPU per request and the profile's window.
   */
  prepare?(target: Target): Promise<string[]>;
  run(target: Target, prepared: string[]): Promise<Measured>;
  /** Measured right before each of Tessera's runs: the yardstick its budget compares with, at the same moment of the machine. */
  yardstick?(): Promise<number>;
}

interface SetOutcome {
  set: Transport;
  results: ScenarioResult[];
  peaks: Partial<Record<TargetName, number>>;
  baselineSettings: string;
  overhead?: string;
}

interface Shared {
  work: string;
  serverCa: { cert: string };
  serverCert: { cert: string; key: string };
  clientCert: { cert: string; key: string };
  clientCaCert: string;
  files: { cert: string; key: string; ca: string };
  children: ChildProcess[];
}

const unlimited = '1000000000/1';

/** Tessera's environment for one set: TLS and an mTLS listener, or plain HTTP behind a (pretended) TLS proxy on loopback. */
function tesseraEnv(set: Transport, shared: Shared, dataDir: string, port: number, mtlsPort: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'production', PORT: String(port), ISSUER: `https://localhost:${port}`,
    // One process, as the budgets say (WORKERS defaults to one per core); its pid is the one measured.
    WORKERS: '1',
    DATA_DIR: dataDir, CONFIG_DIR: path.join(dataDir, 'config'), LOG_LEVEL: 'info',
    TESSERA_SECRET: SECRET,
    ...(set === 'tls'
      ? { TLS_CERT: shared.files.cert, TLS_KEY: shared.files.key, MTLS_CA: shared.files.ca, MTLS_PORT: String(mtlsPort) }
      : { BEHIND_TLS_PROXY: 'true', TRUSTED_PROXIES: '127.0.0.1,::1' }),
    RATE_LIMIT_SIGNIN_PER_IP: unlimited, RATE_LIMIT_SIGNIN_PER_ACCOUNT: unlimited, RATE_LIMIT_TOKEN_FAILURES_PER_IP: unlimited,
    RATE_LIMIT_TOKEN_FAILURES_PER_CLIENT: unlimited, RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT: unlimited,
    ...extra,
  };
}

const SECRET = randomBytes(32).toString('base64url');

/** Seeds a store (SQLite in DATA_DIR, or MongoDB) with the bench's resources, clients and accounts. */
async function seed(env: Record<string, string>) {
  const config = loadConfig(env, ROOT);
  const store = await openStore(config);
  try {
    const services = buildServices(config, store);
    await services.keys.ensure();
    for (const alg of ALGS) {
      await services.resources.create({ audience: apiFor(alg), scopes: ['orders:read'], format: 'jwt', ttlSeconds: 300, signingAlg: alg as 'RS256' });
    }
    const resources = Object.fromEntries(ALGS.map((alg) => [apiFor(alg), ['orders:read']]));
    const machine = await services.clients.createMachineClient({ name: 'bench machine', auth: 'client_secret_basic', resources });
    const mtlsClient = await services.clients.createMachineClient({
      name: 'bench mtls', auth: 'tls_client_auth', tlsSubjects: [{ type: 'subject_dn', value: 'CN=bench-mtls,O=Bench' }], resources,
    });
    const rp = await services.clients.createRelyingParty({ name: 'bench rp', redirectUris: [REDIRECT] });
    const emails = Array.from({ length: CONNECTIONS }, (_, index) => `bench-${RUN}-${index}@example.com`);
    for (const email of emails) await services.accounts.register({ email, password: PASSWORD });
    await services.close();
    return { machine: { id: machine.client_id, secret: machine.client_secret! }, mtlsClientId: mtlsClient.client_id, rp: { id: rp.client_id, secret: rp.client_secret! }, emails };
  } finally {
    await store.close();
  }
}

async function startTessera(name: TargetName, set: Transport, shared: Shared, extra: Record<string, string> = {}, existing?: { dataDir: string; seeded: Awaited<ReturnType<typeof seed>> }): Promise<Target & { dataDir: string; seeded: Awaited<ReturnType<typeof seed>> }> {
  const [port, mtlsPort] = [await freePort(), await freePort()];
  const dataDir = existing?.dataDir ?? path.join(shared.work, `${set}-${name}`);
  const env = tesseraEnv(set, shared, dataDir, port, mtlsPort, extra);
  const seeded = existing?.seeded ?? await seed(env);
  const child = await startChild(['bin/tessera', 'serve'], { ...env, ...serverNodeOptions(name, set) }, /listening/i, SERVER_LOG_DIR ?? shared.work, `${set}-${name}`);
  shared.children.push(child);
  const url = `${set === 'tls' ? 'https' : 'http'}://localhost:${port}`;
  return {
    name, process: child, issuer: url, mtls: `https://localhost:${mtlsPort}`,
    machine: seeded.machine, mtlsClientId: seeded.mtlsClientId, rp: seeded.rp,
    signIn: tesseraSignIn(url, seeded.rp, seeded.emails),
    dataDir, seeded,
  };
}

async function startBaseline(set: Transport, shared: Shared, settings: { nodeOptions: string; env: Record<string, string> }): Promise<Target> {
  const port = await freePort();
  const secret = randomBytes(32).toString('base64url');
  const child = await startChild(['bench/baseline-server.ts'], {
    BASELINE_PORT: String(port), BASELINE_AUDIENCES: JSON.stringify(Object.fromEntries(ALGS.map((alg) => [alg, apiFor(alg)]))), BASELINE_REDIRECT_URI: REDIRECT,
    BASELINE_SECRET: secret, BASELINE_TLS_CERT: shared.serverCert.cert, BASELINE_TLS_KEY: shared.serverCert.key, BASELINE_CLIENT_CA: shared.clientCaCert,
    BASELINE_MTLS_SUBJECT: 'CN=bench-mtls,O=Bench', ...(set === 'http' && { BASELINE_PLAIN: '1' }),
    ...(BASELINE_ON_SQLITE && { BASELINE_DB: path.join(shared.work, `${set}-baseline.db`) }),
    ...settings.env, ...serverNodeOptions('baseline', set, settings.nodeOptions),
  }, /^ready/m, SERVER_LOG_DIR ?? shared.work, `${set}-baseline`);
  shared.children.push(child);
  const url = `${set === 'tls' ? 'https' : 'http'}://localhost:${port}`;
  return {
    name: 'baseline', process: child, issuer: url, mtls: url,
    machine: { id: 'bench-machine', secret }, mtlsClientId: 'bench-mtls', rp: { id: 'bench-rp', secret },
    signIn: baselineSignIn(url, { id: 'bench-rp', secret }),
  };
}

function scenariosFor(set: Transport, shared: Shared): Scenario[] {
  const tls = { ca: shared.serverCa.cert };
  const plain = set === 'http';
  const user = () => new VirtualUser(shared.serverCa.cert, {}, plain);
  const formHeaders = { 'content-type': 'application/x-www-form-urlencoded' };
  const form = (alg: string) => `grant_type=client_credentials&scope=orders%3Aread&resource=${encodeURIComponent(apiFor(alg))}`;
  /**
   * Tokens for the refresh, introspection and userinfo scenarios, through each target's own sign-in,
   * fetched right before the scenario: the baseline's in-memory adapter is an LRU of 1,000 entries,
   * and a token issued before the refresh scenario is evicted by it (then introspection answers a
   * cheap `active: false` and userinfo a 401).
   */
  const refreshTokensOf = async (target: Target) => {
    const users = Array.from({ length: CONNECTIONS }, user);
    try {
      return (await Promise.all(users.map((each, index) => target.signIn(each, index)))).map((token) => token.refresh_token);
    } finally {
      for (const each of users) each.close();
    }
  };
  const accessTokenOf = async (target: Target) => {
    const one = user();
    try {
      return [(await target.signIn(one, 0)).access_token];
    } finally {
      one.close();
    }
  };
  const flows = async (flow: (user: VirtualUser, index: number) => Promise<void>) => {
    const users = Array.from({ length: CONNECTIONS }, user);
    try {
      return fromFlow(await runFlows(users, SECONDS, flow));
    } finally {
      for (const each of users) each.close();
    }
  };
  /** A relying party that has the document already: If-None-Match with the ETag it was given (the baseline gives none, and answers in full). */
  const conditional = async (url: string) => {
    const one = user();
    try {
      const etag = (await one.request(url)).headers.etag;
      return cannon({ url, tlsOptions: tls, headers: { 'if-none-match': typeof etag === 'string' ? etag : '"none"' } }, true);
    } finally {
      one.close();
    }
  };
  const scenarios: Scenario[] = [
    { name: 'discovery', run: (target) => cannon({ url: `${target.issuer}/.well-known/openid-configuration`, tlsOptions: tls }) },
    { name: 'discovery (If-None-Match)', run: (target) => conditional(`${target.issuer}/.well-known/openid-configuration`) },
    { name: 'jwks', run: (target) => cannon({ url: `${target.issuer}/jwks`, tlsOptions: tls }) },
    { name: 'jwks (If-None-Match)', run: (target) => conditional(`${target.issuer}/jwks`) },
    ...ALGS.map((alg): Scenario => ({
      name: `client credentials (secret, ${alg})`,
      run: (target) => cannon({
        url: `${target.issuer}/token`, method: 'POST', body: form(alg), tlsOptions: tls,
        headers: { ...formHeaders, authorization: basic(target.machine.id, target.machine.secret) },
      }),
    })),
    {
      name: 'client credentials (mTLS, RS256)',
      sets: ['tls'],
      run: (target) => cannon({
        url: `${target.mtls}/token`, method: 'POST', body: `${form('RS256')}&client_id=${target.mtlsClientId}`, headers: formHeaders,
        tlsOptions: { ...tls, cert: shared.clientCert.cert, key: shared.clientCert.key },
      }),
    },
    { name: 'sign-in flow (password)', run: (target) => flows(async (each, index) => void await target.signIn(each, index)), yardstick: argon2VerifyRate },
    {
      name: 'refresh',
      prepare: refreshTokensOf,
      async run(target, refreshTokens) {
        return flows(async (each, index) => {
          const response = await each.request(`${target.issuer}/token`, {
            form: { grant_type: 'refresh_token', refresh_token: refreshTokens[index]! },
            headers: { authorization: basic(target.rp.id, target.rp.secret) },
          });
          if (response.status !== 200) throw new Error(`refresh: ${response.status} ${response.body}`);
          refreshTokens[index] = (JSON.parse(response.body) as { refresh_token: string }).refresh_token;
        });
      },
    },
    {
      name: 'introspection (opaque)',
      prepare: accessTokenOf,
      async run(target, [accessToken]) {
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
      prepare: accessTokenOf,
      async run(target, [accessToken]) {
        return cannon({ url: `${target.issuer}/me`, headers: { authorization: `Bearer ${accessToken}` }, tlsOptions: tls });
      },
    },
  ];
  return scenarios.filter((scenario) => !scenario.sets || scenario.sets.includes(set));
}

/** Monotonic-clock windows (microseconds, the clock V8 profiles use) so profile-summary.ts can cut a profile by scenario. */
const now = () => Number(process.hrtime.bigint() / 1000n);
type ProfileWindow = { target: string; scenario: string; from: number; to: number; requests: number };

/** One run of a scenario against one target, with the server's CPU and memory sampled from /proc. */
async function measure(set: ScenarioResult['set'], scenario: Scenario, target: Target, round: number, windows: ProfileWindow[]): Promise<ScenarioResult> {
  const pid = target.process.pid!;
  const prepared = (await scenario.prepare?.(target)) ?? [];
  const yardstick = target.name !== 'baseline' ? await scenario.yardstick?.() : undefined;
  if (yardstick !== undefined) console.log(`bench: argon2id (m=${ARGON2.memoryKiB} KiB, t=${ARGON2.timeCost}, p=${ARGON2.parallelism}) verifies on one core, this process, servers idle: ${yardstick.toFixed(1)}/s`);
  const [serverBefore, mainBefore, generatorBefore, started, from] = [cpuSeconds(pid), cpuSeconds(pid, true), process.cpuUsage(), performance.now(), now()];
  let rss = rssMb(pid);
  const sampler = setInterval(() => {
    rss = Math.max(rss, rssMb(pid));
  }, 100);
  const result = await scenario.run(target, prepared).finally(() => clearInterval(sampler));
  windows.push({ target: target.name, scenario: scenario.name, from, to: now(), requests: Math.round(result.rps * (performance.now() - started) / 1000) });
  const elapsed = (performance.now() - started) / 1000;
  const generator = process.cpuUsage(generatorBefore);
  const measured: ScenarioResult = {
    set, scenario: scenario.name, target: target.name, round, ...result,
    serverCpu: (cpuSeconds(pid) - serverBefore) / elapsed,
    serverMainThreadCpu: (cpuSeconds(pid, true) - mainBefore) / elapsed,
    generatorCpu: (generator.user + generator.system) / 1e6 / elapsed,
    rssMb: rss,
    ...(yardstick !== undefined && { argon2VerifiesPerSecond: yardstick }),
  };
  console.log(`bench: ${set.padEnd(8)} ${target.name.padEnd(17)} ${scenario.name.padEnd(34)} ${ROUNDS > 1 ? `round ${round}/${ROUNDS} ` : ''}${result.rps.toFixed(0).padStart(7)}/s  p50 ${result.p50.toFixed(1)} ms  p99 ${result.p99.toFixed(1)} ms  errors ${result.errors}  `
    + `server ${(measured.serverCpu! * 100).toFixed(0)}% cpu, ${(measured.serverCpu! * 1000 / result.rps).toFixed(2)} cpu-ms/req (main thread ${(measured.serverMainThreadCpu! * 1000 / result.rps).toFixed(2)}); generator ${(measured.generatorCpu! * 100).toFixed(0)}% cpu; rss up to ${rss.toFixed(0)} MB`);
  return measured;
}

const selected = (scenario: Scenario) => !ONLY || ONLY.some((word) => scenario.name.includes(word));
const CAPACITY_SCENARIOS = ['sign-in flow (password)', 'client credentials (secret, RS256)', 'refresh'];

async function runSet(set: Transport, shared: Shared): Promise<SetOutcome & { capacity?: ScenarioResult[]; capacityPeak?: number; singlePeak?: number }> {
  console.log(`bench: --- ${set} set: both servers ${set === 'tls' ? 'terminate TLS (and Tessera runs its mTLS listener)' : 'speak plain HTTP (Tessera as behind a TLS-terminating proxy)'} ---`);
  const tessera = await startTessera('tessera', set, shared);
  const settings = BASELINE_DEFAULTS ? { nodeOptions: '', env: {} } : settingsOf(tessera.process.pid!);
  const baselineSettings = BASELINE_DEFAULTS ? 'Node\'s defaults' : [settings.nodeOptions, ...Object.entries(settings.env).map(([name, value]) => `${name}=${value}`)].join(' ');
  console.log(`bench: baseline started with ${baselineSettings}${BASELINE_ON_SQLITE ? ', its records in a SQLite file' : ''}`);
  const baseline = await startBaseline(set, shared, settings);
  const mongo = MONGODB_URI ? await startTessera('tessera-mongodb', set, shared, { MONGODB_URI }) : undefined;
  const targets = [baseline, tessera, ...(mongo ? [mongo] : [])].filter((target) => !TARGETS || TARGETS.includes(target.name));
  const results: ScenarioResult[] = [];
  const windows: ProfileWindow[] = [];
  const scenarios = scenariosFor(set, shared).filter(selected);
  for (const scenario of scenarios) {
    for (let round = 1; round <= ROUNDS; round += 1) {
      // Neither server always runs right after the other's load (a warmer or a more tired machine).
      for (const target of round % 2 === 1 ? targets : [...targets].reverse()) results.push(await measure(set, scenario, target, round, windows));
    }
  }
  const peaks = Object.fromEntries(targets.map((target) => [target.name, peakRssMb(target.process.pid!)])) as Partial<Record<TargetName, number>>;
  await Promise.all(targets.map((target) => stopChild(target.process)));

  let capacity: ScenarioResult[] | undefined;
  let capacityPeak: number | undefined;
  if (set === 'http' && CAPACITY && !TARGETS) {
    // The same store and accounts, now with two worker processes (bin/tessera sizes their thread pools).
    console.log('bench: --- capacity: Tessera with WORKERS=2 on the same store ---');
    const workers = await startTessera('tessera-workers-2', set, shared, { WORKERS: '2' }, tessera);
    capacity = [];
    for (const scenario of scenariosFor(set, shared).filter((entry) => CAPACITY_SCENARIOS.includes(entry.name) && selected(entry))) {
      for (let round = 1; round <= ROUNDS; round += 1) capacity.push(await measure('capacity', scenario, workers, round, windows));
    }
    capacityPeak = peakRssMb(workers.process.pid!);
    await stopChild(workers.process);
  }
  let overhead: string | undefined;
  if (PROFILE_DIR) {
    mkdirSync(path.join(PROFILE_DIR, set), { recursive: true });
    writeFileSync(path.join(PROFILE_DIR, set, 'windows.json'), JSON.stringify(windows, null, 2));
    overhead = overheadTable(overheadByScenario(path.join(PROFILE_DIR, set)), overheadByScenario(path.join(PROFILE_DIR, set), 'baseline'));
    console.log(`\nbench: per-request work around oidc-provider, ${set} set (µs per request on the JavaScript thread, from the CPU profiles; bench/overhead.ts)\n${overhead}\n`);
  }
  return { set, results, peaks, baselineSettings, ...(overhead && { overhead }), ...(capacity && { capacity, capacityPeak, singlePeak: peaks.tessera }) };
}

interface Budget { set: Transport; budget: string; value: number | undefined; limit: number; atMost?: boolean; pass?: boolean; note?: string }

function budgetsOf(outcome: SetOutcome): Budget[] {
  const { set, results, peaks } = outcome;
  const ratio = (scenario: string, target = 'tessera') => {
    const ratios = roundRatios(results, scenario, target);
    return ratios.length ? median(ratios) : undefined;
  };
  const signInRuns = results.filter((r) => r.scenario === 'sign-in flow (password)' && r.target === 'tessera');
  const budgets: Budget[] = [
    { set, budget: 'jwks >= 100% of baseline', value: ratio('jwks'), limit: 1 },
    { set, budget: 'jwks, If-None-Match (304) >= 100%', value: ratio('jwks (If-None-Match)'), limit: 1 },
    { set, budget: 'discovery >= 100%', value: ratio('discovery'), limit: 1 },
    { set, budget: 'discovery, If-None-Match (304) >= 100%', value: ratio('discovery (If-None-Match)'), limit: 1 },
    { set, budget: 'introspection (opaque) >= 90%', value: ratio('introspection (opaque)'), limit: 0.9 },
    { set, budget: 'userinfo >= 90%', value: ratio('userinfo'), limit: 0.9 },
    { set, budget: 'refresh >= 90%', value: ratio('refresh'), limit: 0.9 },
    ...ALGS.map((alg) => ({ set, budget: `client credentials (secret, ${alg}) >= 95%`, value: ratio(`client credentials (secret, ${alg})`), limit: 0.95 })),
    ...(set === 'tls' ? [{ set, budget: 'client credentials (mTLS) >= 95%', value: ratio('client credentials (mTLS, RS256)'), limit: 0.95 }] : []),
    { set, budget: 'sign-in flows >= 90% of one core\'s argon2id verifies', value: signInRuns.length ? median(signInRuns.map((r) => r.rps / r.argon2VerifiesPerSecond!)) : undefined, limit: 0.9 },
    {
      set, budget: 'peak RSS <= 110% of the baseline with Tessera\'s settings',
      value: peaks.tessera !== undefined && peaks.baseline !== undefined && !BASELINE_DEFAULTS ? peaks.tessera / peaks.baseline : undefined, limit: 1.1, atMost: true,
      note: `${peaks.tessera?.toFixed(0)} MB / ${peaks.baseline?.toFixed(0)} MB`,
    },
  ];
  return budgets.map((entry) => ({ ...entry, ...(entry.value !== undefined && { pass: entry.atMost ? entry.value <= entry.limit : entry.value >= entry.limit }) }));
}

function setTable(outcome: SetOutcome): string {
  const { set, results, peaks } = outcome;
  const percent = (ratio: number) => `${(ratio * 100).toFixed(0)}%`;
  const cpu = (r: ScenarioResult) => (r.serverCpu! * 1000 / r.rps).toFixed(2);
  const mongo = results.some((r) => r.target === 'tessera-mongodb');
  const ratioCell = (scenario: string, target: string) => {
    const ratios = roundRatios(results, scenario, target);
    if (!ratios.length) return '-';
    return `${percent(median(ratios))}${ratios.length > 1 ? ` (${percent(ratios[0]!)}–${percent(ratios.at(-1)!)})` : ''}`;
  };
  const rows = [...new Set(results.map((r) => r.scenario))].map((scenario) => {
    const [t, b] = [medianRun(results, scenario, 'tessera'), medianRun(results, scenario, 'baseline')];
    const m = mongo ? medianRun(results, scenario, 'tessera-mongodb') : undefined;
    const rss = Math.max(...results.filter((r) => r.scenario === scenario && r.target === 'tessera').map((r) => r.rssMb!));
    const num = (r: ScenarioResult | undefined, pick: (r: ScenarioResult) => string) => (r ? pick(r) : '-');
    return `| ${scenario} | ${num(t, (r) => r.rps.toFixed(0))} | ${num(t, (r) => r.p50.toFixed(1))} | ${num(t, (r) => r.p99.toFixed(1))} | ${num(b, (r) => r.rps.toFixed(0))} | ${num(b, (r) => r.p50.toFixed(1))} | ${num(b, (r) => r.p99.toFixed(1))} | ${ratioCell(scenario, 'tessera')} | ${num(t, cpu)} / ${num(b, cpu)} | ${Number.isFinite(rss) ? rss.toFixed(0) : '-'} |${mongo ? ` ${num(m, (r) => r.rps.toFixed(0))} | ${ratioCell(scenario, 'tessera-mongodb')} |` : ''}`;
  });
  return [
    `**${set === 'tls' ? 'TLS' : 'Plain HTTP'} set** (${set === 'tls' ? 'both servers terminate TLS; Tessera\'s mTLS listener for the mTLS scenario' : 'both servers speak plain HTTP; Tessera as behind a TLS-terminating proxy'}). Baseline started with ${outcome.baselineSettings}.`,
    '',
    `| Scenario | Tessera req/s | p50 ms | p99 ms | Baseline req/s | p50 ms | p99 ms | Ratio | CPU ms/req, Tessera / baseline | Tessera RSS MB |${mongo ? ' Tessera on MongoDB req/s | Ratio |' : ''}`,
    `|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|${mongo ? '---:|---:|' : ''}`,
    ...rows,
    '',
    `Peak RSS over the set: Tessera ${peaks.tessera?.toFixed(0) ?? '-'} MB, baseline ${peaks.baseline?.toFixed(0) ?? '-'} MB${peaks['tessera-mongodb'] ? `, Tessera on MongoDB ${peaks['tessera-mongodb'].toFixed(0)} MB` : ''}.`,
  ].join('\n');
}

/** Capacity in Keycloak's sizing units: per second per vCPU (the CPU the server used), and memory per instance. */
function capacityTable(outcome: SetOutcome & { capacity?: ScenarioResult[]; capacityPeak?: number; singlePeak?: number }): string {
  const rows = CAPACITY_SCENARIOS.map((scenario) => {
    const one = medianRun(outcome.results, scenario, 'tessera');
    const two = medianRun(outcome.capacity ?? [], scenario, 'tessera-workers-2');
    const cell = (r: ScenarioResult | undefined) => (r ? `${r.rps.toFixed(0)}/s, ${(r.rps / Math.max(r.serverCpu!, 0.01)).toFixed(0)} per vCPU` : '-');
    return `| ${scenario} | ${cell(one)} | ${cell(two)} | ${two ? `${(two.rps / os.cpus().length).toFixed(0)}` : '-'} |`;
  });
  return [
    `Capacity (plain HTTP set, SQLite, ${os.cpus().length} vCPUs; "per vCPU" divides by the CPU time the instance used, all threads and processes, during the run):`,
    '',
    '| Scenario | WORKERS=1 | WORKERS=2 | WORKERS=2 per vCPU of the machine |',
    '|---|---:|---:|---:|',
    ...rows,
    `| memory per instance (peak RSS, all processes) | ${outcome.singlePeak?.toFixed(0) ?? '-'} MB | ${outcome.capacityPeak?.toFixed(0) ?? '-'} MB | |`,
  ].join('\n');
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'tessera-bench-'));
  const children: ChildProcess[] = [];
  const stop = () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  };
  process.on('exit', stop);
  try {
    console.log(`bench: ${os.cpus().length} cores, ${os.cpus()[0]?.model}, Node ${process.version}, ${SECONDS}s per scenario, ${CONNECTIONS} connections, sets ${SETS.join(', ')}`);
    const serverCa = await createCertificateAuthority({ subject: 'CN=Bench Server CA' });
    const serverCert = await issueCertificate(serverCa, { subject: 'CN=localhost', sans: { dns: ['localhost'], ip: ['127.0.0.1'] }, usage: 'server' });
    const clientCa = await createCertificateAuthority({ subject: 'CN=Bench Client CA' });
    const clientCert = await issueCertificate(clientCa, { subject: 'CN=bench-mtls,O=Bench' });
    const files = { cert: path.join(work, 'server.pem'), key: path.join(work, 'server-key.pem'), ca: path.join(work, 'client-ca.pem') };
    writeFileSync(files.cert, serverCert.cert);
    writeFileSync(files.key, serverCert.key);
    writeFileSync(files.ca, clientCa.cert);
    const shared: Shared = { work, serverCa, serverCert, clientCert, clientCaCert: clientCa.cert, files, children };

    const outcomes = [];
    for (const set of SETS) outcomes.push(await runSet(set, shared));
    if (ONLY || TARGETS || BASELINE_ON_SQLITE) {
      console.log(`bench: ${outcomes.map((o) => `${o.set} peak RSS ${Object.entries(o.peaks).map(([name, mb]) => `${name} ${mb!.toFixed(0)} MB`).join(', ')}`).join('; ')}; partial run (BENCH_ONLY/BENCH_TARGETS/BENCH_BASELINE_STORE), results files left alone`);
      return;
    }
    const budgets = outcomes.flatMap(budgetsOf);
    const all = outcomes.flatMap((o) => [...o.results, ...(o.capacity ?? [])]);
    const machineLine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
    const httpOutcome = outcomes.find((o) => o.set === 'http' && o.capacity);
    const verdict = (b: Budget) => (b.pass === undefined ? 'not judged' : b.pass ? 'pass' : 'FAIL');
    const table = [
      `Machine: ${machineLine}. ${ROUNDS} rounds of ${SECONDS} s per scenario and server, ${CONNECTIONS} connections, Tessera on SQLite (NODE_ENV=production, WORKERS=1), both servers single-process.`,
      '',
      ...outcomes.flatMap((o) => [setTable(o), '']),
      'Req/s, latency and CPU: each server\'s median round. Ratio: the median of the rounds\' ratios (each round runs both servers back to back), lowest and highest in brackets.',
      'CPU ms/req: the server\'s CPU time (all threads) per request or flow during the scenario, less sensitive than req/s to other load on the machine. Tessera RSS: the highest resident set size sampled during the scenario\'s rounds.',
      'If-None-Match: a client that has the document sends its ETag; Tessera answers 304, the baseline (no ETags) the full document.',
      `Load generator (this process, on the same cores): at most ${(Math.max(...all.map((r) => r.generatorCpu ?? 0)) * 100).toFixed(0)}% of one core in any scenario.`,
      '',
      ...(httpOutcome ? [capacityTable(httpOutcome), ''] : []),
      '| Set | Budget | Measured | Result |',
      '|---|---|---:|---|',
      ...budgets.map((b) => `| ${b.set} | ${b.budget} | ${b.value === undefined ? '-' : `${(b.value * 100).toFixed(0)}%`}${b.note ? ` (${b.note})` : ''} | ${verdict(b)} |`),
      ...outcomes.flatMap((o) => (o.overhead ? ['', `Per-request work around oidc-provider, ${o.set} set (µs per request on the JavaScript thread, share of its busy time; from the CPU profiles, bench/overhead.ts):`, '', o.overhead] : [])),
    ].join('\n');
    writeFileSync(path.join(ROOT, 'bench', 'results.json'), JSON.stringify({ date: new Date().toISOString(), machine: machineLine, seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS, outcomes, budgets }, null, 2));
    writeFileSync(path.join(ROOT, 'bench', 'results.md'), `${table}\n`);
    console.log(`\n${table}`);
    if (budgets.some((b) => b.pass === false)) process.exitCode = 1;
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
function medianRun(results: readonly ScenarioResult[], scenario: string, target: string): ScenarioResult | undefined {
  const runs = results.filter((r) => r.scenario === scenario && r.target === target).sort((a, b) => a.rps - b.rps);
  return runs[Math.floor((runs.length - 1) / 2)];
}

/** `target`'s req/s over the baseline's, round by round (both ran back to back), lowest first; empty when either is missing. */
function roundRatios(results: readonly ScenarioResult[], scenario: string, target = 'tessera'): number[] {
  const of = (name: string, round: number) => results.find((r) => r.scenario === scenario && r.target === name && r.round === round);
  const rounds = [...new Set(results.filter((r) => r.scenario === scenario).map((r) => r.round))];
  return rounds.flatMap((round) => {
    const [t, b] = [of(target, round), of('baseline', round)];
    return t && b ? [t.rps / b.rps] : [];
  }).sort((a, b) => a - b);
}

await main();
