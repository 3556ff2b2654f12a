/**
 * Prometheus metrics (prom-client), served at /metrics (observability/endpoints.ts). Each server has
 * its own registry, so several servers in one process (tests) never count into each other.
 *
 * Sign-ins and lockouts are counted from the security events; tokens from oidc-provider's
 * `grant.success` (provider-host.ts), every grant type, client_credentials included; request
 * latency by the request middleware (http.ts), labelled with the route's name, never its URL.
 *
 * With WORKERS > 1 each worker counts its own requests: a scrape reaching any worker is answered
 * with the sum over all workers, which the primary collects (`servePrimaryMetrics`).
 */
import cluster from 'node:cluster';

import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { SecurityEvents } from '../domain/events.ts';

/** Seconds; from a cached JWKS answer (well under a millisecond) to a slow argon2id sign-in. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const METRICS_REQUEST = 'tessera:metrics-request';
const METRICS_RESPONSE = 'tessera:metrics-response';
/** How long a worker waits for the primary's sum before answering with its own counts only. */
const CLUSTER_TIMEOUT_MS = 3000;

export type SignInResult = 'success' | 'failure' | 'locked';

interface Observer {
  observe(value: number): void;
}

export class Metrics {
  readonly registry = new Registry();
  readonly #signIns: Counter<'result'>;
  readonly #lockouts: Counter;
  readonly #logoutTokens: Counter<'outcome'>;
  readonly #tokensIssued: Counter<'grant_type' | 'client_id'>;
  readonly #requestDuration: Histogram<'route' | 'status'>;
  /** One histogram child per route and status class, built once (measured: an observation costs about 0.3 µs). */
  readonly #durationByRoute = new Map<string, Observer>();
  /** Likewise per grant type and client (the token endpoint is the hottest path there is). */
  readonly #tokensByClient = new Map<string, { inc(): void }>();
  #unsubscribe: (() => void) | undefined;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.#signIns = new Counter({
      name: 'tessera_sign_ins_total',
      help: 'Sign-in attempts by result: success (signed in), failure (a wrong password, unknown account, or refused second factor), locked (refused: the account is locked)',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['success', 'failure', 'locked'] satisfies SignInResult[]) this.#signIns.inc({ result }, 0);
    this.#lockouts = new Counter({ name: 'tessera_lockouts_total', help: 'Accounts locked after repeated failed sign-ins', registers });
    this.#logoutTokens = new Counter({
      name: 'tessera_backchannel_logout_total',
      help: 'Back-channel logout token deliveries by outcome: delivered, retried (an attempt failed, another follows), failed (gave up), dropped (queue full)',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['delivered', 'retried', 'failed', 'dropped']) this.#logoutTokens.inc({ outcome }, 0);
    this.#tokensIssued = new Counter({
      name: 'tessera_tokens_issued_total',
      help: 'Successful token endpoint responses, by grant type and client',
      labelNames: ['grant_type', 'client_id'],
      registers,
    });
    this.#requestDuration = new Histogram({
      name: 'tessera_http_request_duration_seconds',
      help: 'HTTP request duration by route (oidc-provider route name or router pattern) and status class',
      labelNames: ['route', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    if (cluster.isWorker) answerPrimary(this.registry);
  }

  /** Counts sign-ins and lockouts from the security events. */
  subscribe(events: SecurityEvents): void {
    this.#unsubscribe?.();
    this.#unsubscribe = events.on((event) => {
      switch (event.type) {
        case 'signin.succeeded':
          this.#signIns.inc({ result: 'success' });
          break;
        case 'signin.failed':
          this.#signIns.inc({ result: event.details?.reason === 'locked' ? 'locked' : 'failure' });
          break;
        case 'account.locked':
          this.#lockouts.inc();
          break;
        default:
          break;
      }
    });
  }

  /** One back-channel logout delivery attempt's outcome (domain/backchannel-logout.ts). */
  backchannelLogout(outcome: 'delivered' | 'retried' | 'failed' | 'dropped'): void {
    this.#logoutTokens.inc({ outcome });
  }

  /** A gauge read at scrape time (e.g. audit events waiting for the store). */
  gauge(name: string, help: string, read: () => number): void {
    new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
  }

  tokenIssued(grantType: string, clientId: string): void {
    const key = `${grantType} ${clientId}`;
    let counter = this.#tokensByClient.get(key);
    if (!counter) {
      counter = this.#tokensIssued.labels({ grant_type: grantType, client_id: clientId });
      // Deleted clients leave their entry behind; bound the cache, not the series.
      if (this.#tokensByClient.size > 10_000) this.#tokensByClient.clear();
      this.#tokensByClient.set(key, counter);
    }
    counter.inc();
  }

  /** `route` must come from a fixed set (route names, router patterns), never from the URL itself. */
  observeRequest(route: string, status: number, seconds: number): void {
    const statusClass = status >= 100 && status < 600 ? STATUS_CLASSES[Math.floor(status / 100)]! : 'other';
    const key = `${route} ${statusClass}`;
    let observer = this.#durationByRoute.get(key);
    if (!observer) {
      observer = this.#requestDuration.labels({ route, status: statusClass });
      this.#durationByRoute.set(key, observer);
    }
    observer.observe(seconds);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text: this process's, or in a cluster worker the sum over every worker. */
  async render(): Promise<string> {
    if (cluster.isWorker && process.send && primaryAggregates !== false) {
      const summed = await askPrimary().then((text) => {
        primaryAggregates = true;
        return text;
      }, () => {
        // A primary that never answered does not aggregate (it never called servePrimaryMetrics): stop asking.
        primaryAggregates ??= false;
        return undefined;
      });
      if (summed !== undefined) return summed;
    }
    return this.registry.metrics();
  }
}

const STATUS_CLASSES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

/** In a worker: answer the primary's aggregation requests from this registry (prom-client's protocol). */
function answerPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one installs prom-client's worker-side listener; the instance itself is not needed.
  new AggregatorRegistry();
}

let nextRequest = 0;
/** Whether this worker's primary answers metrics requests; unknown until it first does or does not. */
let primaryAggregates: boolean | undefined;

function askPrimary(): Promise<string> {
  const id = `${process.pid}:${nextRequest++}`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error('the primary did not answer the metrics request'));
    }, CLUSTER_TIMEOUT_MS);
    function onMessage(message: unknown) {
      const answer = message as { type?: unknown; id?: unknown; metrics?: unknown; error?: unknown };
      if (answer?.type !== METRICS_RESPONSE || answer.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      if (typeof answer.metrics === 'string') resolve(answer.metrics);
      else reject(new Error(String(answer.error ?? 'no metrics')));
    }
    process.on('message', onMessage);
    process.send!({ type: METRICS_REQUEST, id });
  });
}

/**
 * In the cluster primary (WORKERS > 1): answers a worker's request for /metrics with the sum over
 * every worker. Call once, before forking.
 */
export function servePrimaryMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: { type?: unknown; id?: unknown }) => {
    if (message?.type !== METRICS_REQUEST) return;
    aggregator.clusterMetrics().then(
      (metrics) => worker.isConnected() && worker.send({ type: METRICS_RESPONSE, id: message.id, metrics }),
      (error: unknown) => worker.isConnected() && worker.send({ type: METRICS_RESPONSE, id: message.id, error: String(error) }),
    );
  });
}
