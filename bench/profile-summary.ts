/**
 * Summarises V8 CPU profiles (.cpuprofile, from `BENCH_PROFILE=DIR npm run bench` or
 * `node --cpu-prof`): the functions with the most self time, the same grouped by where the code
 * lives (a package, Tessera's src/, Node's internals), and the functions with the most total time
 * (self plus everything they called) among Tessera's own code and a few named hot spots.
 *
 *   node bench/profile-summary.ts DIR/tessera/*.cpuprofile [--top 30] [--match text] [--scenario name]
 *   node bench/profile-summary.ts --scenario name --compare DIR/baseline/*.cpuprofile DIR/tessera/*.cpuprofile
 *
 * --compare prints, per request of the scenario, where the second profile spends more self time
 * than the first (by function and by where the code lives).
 *
 * --scenario keeps only the samples taken while the bench ran that scenario against that server
 * (DIR/windows.json, written by the bench; the names are matched by substring).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function where(url: string): string {
  if (!url) return '(native)';
  if (url.startsWith('node:')) return 'node:internal';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const src = url.indexOf('/src/');
  if (src >= 0) return `tessera ${url.slice(src + 1)}`;
  return path.basename(url);
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = !url ? '' : url.startsWith('node:')
    ? `${url}:${lineNumber + 1}`
    : `${where(url)}${url.includes('/node_modules/') ? `/${path.basename(url)}` : ''}:${lineNumber + 1}`;
  return `${functionName || '(anonymous)'} ${file}`.trim();
}

interface Window { target: string; scenario: string; from: number; to: number; requests: number }

/** The scenario's time windows for the server this profile belongs to (its folder is named after it). */
function windowsFor(file: string, scenario: string): Window[] {
  const list = path.join(path.dirname(file), '..', 'windows.json');
  if (!existsSync(list)) throw new Error(`${list} not found: --scenario needs a profile from BENCH_PROFILE`);
  const target = path.basename(path.dirname(file));
  const windows = (JSON.parse(readFileSync(list, 'utf8')) as Window[]).filter((w) => w.target === target && w.scenario.includes(scenario));
  if (!windows.length) throw new Error(`no window for ${target} "${scenario}" in ${list}`);
  return windows;
}

interface Summary {
  all: number;
  idle: number;
  requests: number | undefined;
  self: Map<string, number>;
  total: Map<string, number>;
  area: Map<string, number>;
}

function read(file: string, scenario: string | undefined): Summary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const windows = scenario ? windowsFor(file, scenario) : undefined;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const area = new Map<string, number>();
  let all = 0;
  let idle = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, index) => {
    const micros = profile.timeDeltas[index] ?? 0;
    at += micros;
    if (windows && !windows.some((w) => at >= w.from && at <= w.to)) return;
    const node = byId.get(id)!;
    const name = frameName(node);
    if (node.callFrame.functionName === '(idle)') {
      idle += micros;
      return;
    }
    all += micros;
    self.set(name, (self.get(name) ?? 0) + micros);
    area.set(where(node.callFrame.url), (area.get(where(node.callFrame.url)) ?? 0) + micros);
    const seen = new Set<string>();
    for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) {
      const frame = frameName(byId.get(current)!);
      if (seen.has(frame)) continue;
      seen.add(frame);
      total.set(frame, (total.get(frame) ?? 0) + micros);
    }
  });

  // With a scenario, each line also says how many microseconds that is per request (or per flow).
  const requests = windows?.reduce((sum, w) => sum + (w.requests ?? 0), 0);
  return { all, idle, requests, self, total, area };
}

function compare(before: string, after: string, top: number, scenario: string | undefined): void {
  const [a, b] = [read(before, scenario), read(after, scenario)];
  if (!a.requests || !b.requests) throw new Error('--compare needs --scenario (per-request figures)');
  console.log(`busy per request: ${(a.all / a.requests).toFixed(1)} µs (${before}) -> ${(b.all / b.requests).toFixed(1)} µs (${after})`);
  for (const [title, key] of [['self time by function', 'self'], ['self time by where the code lives', 'area']] as const) {
    const names = new Set([...a[key].keys(), ...b[key].keys()]);
    const rows = [...names].map((name) => {
      const [x, y] = [(a[key].get(name) ?? 0) / a.requests!, (b[key].get(name) ?? 0) / b.requests!];
      return { name, x, y, delta: y - x };
    }).sort((p, q) => q.delta - p.delta);
    console.log(`\n${title}: µs per request, first -> second (largest increases first)`);
    for (const row of rows.slice(0, top)) console.log(`${row.x.toFixed(1).padStart(8)} -> ${row.y.toFixed(1).padStart(8)}  ${(row.delta >= 0 ? '+' : '') + row.delta.toFixed(1)}  ${row.name}`);
  }
}

function summarise(file: string, top: number, match: string | undefined, scenario: string | undefined): void {
  const { all, idle, requests, self, total, area } = read(file, scenario);
  const ms = (micros: number) => `${(micros / 1000).toFixed(0).padStart(7)} ms ${((micros / all) * 100).toFixed(1).padStart(5)}%${requests ? ` ${(micros / requests).toFixed(1).padStart(7)} µs/req` : ''}`;
  const print = (title: string, entries: Map<string, number>, filter: (name: string) => boolean = () => true) => {
    console.log(`\n${title}`);
    for (const [name, micros] of [...entries].filter(([name]) => filter(name)).sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${ms(micros)}  ${name}`);
    }
  };
  console.log(`${file}${scenario ? ` (scenario "${scenario}")` : ''}\nbusy ${(all / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms (percentages are of busy time)${requests ? `; ${requests} requests, ${(all / requests).toFixed(1)} µs busy per request` : ''}`);
  print('self time by function', self);
  print('self time by where the code lives', area);
  print('total time, Tessera code', total, (name) => name.includes('tessera src/'));
  if (match) print(`total time, frames matching "${match}"`, total, (name) => name.includes(match));
}

const args = process.argv.slice(2);
const option = (flag: string) => {
  const index = args.indexOf(flag);
  return index >= 0 ? args.splice(index, 2)[1] : undefined;
};
const top = Number(option('--top') ?? 30);
const match = option('--match');
const scenario = option('--scenario');
const baseline = option('--compare');
if (baseline) compare(baseline, args[0]!, top, scenario);
else for (const file of args) summarise(file, top, match, scenario);
