/**
 * The per-request work Tessera does around oidc-provider (the request's context, the access log,
 * metrics, headers, the edge middleware), per endpoint, from the CPU profiles `BENCH_PROFILE=DIR
 * npm run bench` writes: each sample's time goes to the innermost frame that belongs to someone,
 * walking up from the leaf past Node's internals, native code, Koa and koa-compose (which only carry
 * the call), so a `ctx.set` called by the security headers counts as headers, and a frame of
 * oidc-provider or of any other Tessera module ends the walk as "the rest". Async middleware shows
 * only its own synchronous parts this way: what runs after an `await next()` is a separate stack.
 * Not counted: what V8 does for AsyncLocalStorage without a JavaScript frame, and garbage
 * collection (its samples have no owner).
 *
 *   node bench/overhead.ts DIR/http    (a set's folder: tessera/*.cpuprofile and windows.json)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

interface Window { target: string; scenario: string; from: number; to: number; requests: number }

export const OVERHEAD_PARTS = ['request context', 'access log', 'metrics', 'headers', 'edge'] as const;
type Part = (typeof OVERHEAD_PARTS)[number];

/** Code that only carries a call along: the frame above it decides. */
const CARRIERS = ['/node_modules/koa/', '/node_modules/koa-compose/'];

const OWNERS: ReadonlyArray<[Part, readonly string[]]> = [
  ['request context', ['/src/request-context.ts', '/src/observability/http.ts']],
  ['access log', ['/src/log.ts', '/node_modules/pino/', '/node_modules/sonic-boom/', '/node_modules/fast-redact/', '/node_modules/quick-format-unescaped/', '/node_modules/safe-stable-stringify/', '/node_modules/pino-std-serializers/', '/node_modules/atomic-sleep/']],
  ['metrics', ['/src/observability/metrics.ts', '/node_modules/prom-client/']],
  ['headers', ['/src/http/security-headers.ts', '/node_modules/helmet/', '/node_modules/koa-helmet/']],
  ['edge', ['/src/http/edge.ts', '/src/http/trusted-proxies.ts']],
];

function ownerOf(url: string): Part | 'rest' | undefined {
  if (!url || url.startsWith('node:') || CARRIERS.some((carrier) => url.includes(carrier))) return undefined;
  for (const [part, markers] of OWNERS) if (markers.some((marker) => url.includes(marker))) return part;
  return 'rest';
}

export interface EndpointOverhead {
  scenario: string;
  requests: number;
  /** Busy (non-idle) microseconds per request on the JavaScript thread. */
  busy: number;
  parts: Record<Part, number>;
}

/** Per scenario of `target` in a set's profile folder: microseconds per request for each part. */
export function overheadByScenario(setDir: string, target = 'tessera'): EndpointOverhead[] {
  const windows = (JSON.parse(readFileSync(path.join(setDir, 'windows.json'), 'utf8')) as Window[]).filter((w) => w.target === target);
  const dir = path.join(setDir, target);
  if (!existsSync(dir)) return [];
  const totals = new Map<string, { requests: number; busy: number; parts: Record<Part, number> }>();
  for (const window of windows) {
    if (!totals.has(window.scenario)) totals.set(window.scenario, { requests: 0, busy: 0, parts: Object.fromEntries(OVERHEAD_PARTS.map((part) => [part, 0])) as Record<Part, number> });
    totals.get(window.scenario)!.requests += window.requests;
  }
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as CpuProfile;
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const parent = new Map<number, number>();
    for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
    const owner = new Map<number, Part | 'rest' | undefined>();
    const ownerOfNode = (id: number): Part | 'rest' | undefined => {
      if (owner.has(id)) return owner.get(id);
      let found: Part | 'rest' | undefined;
      for (let current: number | undefined = id; current !== undefined && found === undefined; current = parent.get(current)) found = ownerOf(byId.get(current)!.callFrame.url);
      owner.set(id, found);
      return found;
    };
    let at = profile.startTime;
    profile.samples.forEach((id, index) => {
      at += profile.timeDeltas[index] ?? 0;
      const node = byId.get(id)!;
      if (node.callFrame.functionName === '(idle)') return;
      const window = windows.find((w) => at >= w.from && at <= w.to);
      if (!window) return;
      const entry = totals.get(window.scenario)!;
      const micros = profile.timeDeltas[index] ?? 0;
      entry.busy += micros;
      const part = ownerOfNode(id);
      if (part && part !== 'rest') entry.parts[part] += micros;
    });
  }
  return [...totals].map(([scenario, { requests, busy, parts }]) => ({
    scenario,
    requests,
    busy: requests ? busy / requests : 0,
    parts: Object.fromEntries(OVERHEAD_PARTS.map((part) => [part, requests ? parts[part] / requests : 0])) as Record<Part, number>,
  }));
}

/** The markdown table: one line per endpoint, µs per request and the share of the JavaScript thread's busy time. */
export function overheadTable(rows: readonly EndpointOverhead[], baseline: readonly EndpointOverhead[] = []): string {
  const cell = (micros: number, busy: number) => `${micros.toFixed(1)} (${busy ? ((micros / busy) * 100).toFixed(1) : '0'}%)`;
  return [
    `| Scenario | busy µs/req, Tessera | baseline | ${OVERHEAD_PARTS.join(' | ')} | all of these |`,
    `|---|---:|---:|${OVERHEAD_PARTS.map(() => '---:').join('|')}|---:|`,
    ...rows.map((row) => {
      const sum = OVERHEAD_PARTS.reduce((total, part) => total + row.parts[part], 0);
      const base = baseline.find((entry) => entry.scenario === row.scenario);
      return `| ${row.scenario} | ${row.busy.toFixed(0)} | ${base ? base.busy.toFixed(0) : '-'} | ${OVERHEAD_PARTS.map((part) => cell(row.parts[part], row.busy)).join(' | ')} | ${cell(sum, row.busy)} |`;
    }),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const dir of process.argv.slice(2)) {
    console.log(`${dir}\n${overheadTable(overheadByScenario(dir), overheadByScenario(dir, 'baseline'))}\n`);
  }
}
