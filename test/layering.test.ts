/**
 * The layer rule of the architecture notes (ARCHITECTURE.md), enforced: an import only ever points down, and no
 * two folders import each other (directly or round a longer circle). Top to bottom:
 *
 *   main/cli      src/main.ts, src/cli.ts, src/cli/, src/cluster.ts   (wiring)
 *   app           src/app.ts, src/services.ts                        (the Koa chain and what it is built from)
 *   admin, api, console   operator and first-party APIs, the admin console
 *   interaction, account   pages people see
 *   oidc          oidc-provider hosted
 *   http, observability    framework pieces
 *   domain        rules in plain TypeScript
 *   store         the store port and its backends
 *   base          src/config.ts, src/errors.ts, src/log.ts, src/request-context.ts, src/i18n/
 *
 * Folders in the same layer may import each other but not both ways. Every static import counts,
 * type-only ones too: a type that points up still ties the lower layer to the higher one.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import test from 'ava';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Lower number = lower layer. Keyed by the folder under src/, or the file for top-level files. */
const LAYERS: Record<string, number> = {
  'bounded-map.ts': 0,
  'config.ts': 0,
  'errors.ts': 0,
  'log.ts': 0,
  'request-context.ts': 0,
  /** Message catalogs and language matching: pure, read by config (DEFAULT_LOCALE), mails and pages. */
  i18n: 0,
  store: 1,
  domain: 2,
  http: 3,
  observability: 3,
  oidc: 4,
  interaction: 5,
  account: 5,
  admin: 6,
  api: 6,
  console: 6,
  'app.ts': 7,
  'services.ts': 7,
  'main.ts': 8,
  'cli.ts': 8,
  cli: 8,
  'cluster.ts': 8,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** `import ... from './x.ts'`, `import type ...`, `export ... from`, and bare `import './x.ts'`. */
const IMPORT = /^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;

function specifiersIn(text: string): string[] {
  return [...text.matchAll(IMPORT)].map((match) => match[1]!).filter((specifier) => specifier.startsWith('.'));
}

function importsOf(file: string): string[] {
  return specifiersIn(readFileSync(file, 'utf8'));
}

/** The unit a file belongs to: its first folder under src/, or the file itself at the top. */
function unitOf(file: string): string {
  const [first] = relative(SRC, file).split(/[\\/]/);
  return first!;
}

function layerOf(unit: string): number {
  const layer = LAYERS[unit];
  if (layer === undefined) throw new Error(`src/${unit} has no layer: add it to LAYERS in test/layering.test.ts`);
  return layer;
}

interface Edge { from: string; to: string; unitFrom: string; unitTo: string }

function edges(): Edge[] {
  return sourceFiles(SRC).flatMap((file) => importsOf(file).map((specifier) => {
    const target = normalize(join(dirname(file), specifier));
    return { from: relative(SRC, file), to: relative(SRC, target), unitFrom: unitOf(file), unitTo: unitOf(target) };
  }));
}

test('the import reader sees type-only imports, re-exports, side-effect and multi-line imports, and skips packages and comments', (t) => {
  const source = [
    "import { a } from './a.ts';",
    "import type { B } from '../b/b.ts';",
    'import {',
    '  c,',
    '  type D,',
    "} from './c.ts';",
    "export { e } from './e.ts';",
    "export type { F } from './f.ts';",
    "import './g.ts';",
    "import Koa from 'koa';",
    " * see import x from './comment.ts' in a comment",
  ].join('\n');
  t.deepEqual(specifiersIn(source), ['./a.ts', '../b/b.ts', './c.ts', './e.ts', './f.ts', './g.ts']);
});

test('every file under src/ belongs to a layer', (t) => {
  const unknown = [...new Set(sourceFiles(SRC).map(unitOf))].filter((unit) => LAYERS[unit] === undefined);
  t.deepEqual(unknown, []);
});

test('no import in src/ points to a higher layer', (t) => {
  const upward = edges()
    .filter((edge) => layerOf(edge.unitTo) > layerOf(edge.unitFrom))
    .map((edge) => `${edge.from} -> ${edge.to}`);
  t.deepEqual(upward, [], `imports that point up:\n${upward.join('\n')}`);
});

test('no folders of src/ import each other, directly or round a circle', (t) => {
  const graph = new Map<string, Set<string>>();
  for (const edge of edges()) {
    if (edge.unitFrom === edge.unitTo) continue;
    if (!graph.has(edge.unitFrom)) graph.set(edge.unitFrom, new Set());
    graph.get(edge.unitFrom)!.add(edge.unitTo);
  }
  const cycles = new Set<string>();
  // Small graph (a couple of dozen units): a depth-first walk from each unit finds every circle through it.
  for (const start of graph.keys()) {
    const walk = (unit: string, path: string[]): void => {
      for (const next of graph.get(unit) ?? []) {
        if (next === start) {
          const circle = [...path, start];
          // One spelling per circle: rotated to start at its smallest unit.
          const body = circle.slice(0, -1);
          const smallest = body.indexOf([...body].sort()[0]!);
          const rotated = [...body.slice(smallest), ...body.slice(0, smallest)];
          cycles.add([...rotated, rotated[0]].join(' -> '));
        } else if (!path.includes(next)) {
          walk(next, [...path, next]);
        }
      }
    };
    walk(start, [start]);
  }
  const found = [...cycles].sort();
  const detail = found.map((cycle) => {
    const units = cycle.split(' -> ');
    const steps = units.slice(0, -1).map((unit, index) => {
      const example = edges().find((edge) => edge.unitFrom === unit && edge.unitTo === units[index + 1]);
      return `  ${example?.from} -> ${example?.to}`;
    });
    return `${cycle}\n${steps.join('\n')}`;
  });
  t.deepEqual(found, [], `circles between folders:\n${detail.join('\n')}`);
});
