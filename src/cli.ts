/**
 * `tessera`, the operator's command line. It reads the same configuration, opens the same store and
 * goes through the same domain services as the server, so it is safe to run beside a running server
 * (which notices changes by polling store revisions). Expected failures end with one line on stderr
 * and a non-zero exit: 1 for a refused operation or bad configuration, 2 for bad usage.
 */
import { audit } from './cli/audit.ts';
import { clientsGroup } from './cli/clients.ts';
import {
  commandHelp, defineGroup, groupHelp, parseCommandLine, UsageError, type Command, type Group, type Invocation, type Node,
} from './cli/command.ts';
import { keysGroup } from './cli/keys.ts';
import { streams, withStreams, type CliStreams } from './cli/output.ts';
import { pkiGroup } from './cli/pki.ts';
import { registrationTokensGroup } from './cli/registration-tokens.ts';
import { resourcesGroup } from './cli/resources.ts';
import { serve } from './cli/serve.ts';
import { upstreamsGroup } from './cli/upstreams.ts';
import { usersGroup } from './cli/users.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { AppError } from './errors.ts';
import type { Services } from './services.ts';
import type { Store } from './store/port.ts';

/** Every command, as a tree: add a subcommand (e.g. `clients certs add`) by adding a node. */
export const COMMANDS: Group = defineGroup('Tessera, an OAuth 2.0 / OpenID Connect identity provider', {
  serve,
  clients: clientsGroup,
  resources: resourcesGroup,
  'registration-tokens': registrationTokensGroup,
  upstreams: upstreamsGroup,
  users: usersGroup,
  keys: keysGroup,
  pki: pkiGroup,
  audit,
});

const HELP_FOOTER = [
  '',
  'Configuration comes from the environment and CONFIG_DIR, as for the server (PORT, DATA_DIR,',
  'CONFIG_DIR, MONGODB_URI, TESSERA_SECRET, ...). Commands are safe to run while the server runs.',
];

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

export async function main(argv: string[]): Promise<void> {
  process.exitCode = await runCommand(argv);
}

export interface RunOptions {
  /** The configuration's environment (process.env by default), as loadConfig reads it. */
  readonly env?: NodeJS.ProcessEnv;
  /** What relative paths in the configuration are resolved against (process.cwd() by default). */
  readonly cwd?: string;
  readonly stdin?: CliStreams['stdin'];
  readonly stdout?: CliStreams['stdout'];
  readonly stderr?: CliStreams['stderr'];
}

/**
 * Runs one command line and returns its exit code; never calls process.exit, so a caller in the same
 * process (the tests) gets what bin/tessera would have exited with. `serve` belongs in a process of
 * its own: it installs signal handlers and stops the process when asked to.
 */
export function runCommand(argv: string[], options: RunOptions = {}): Promise<number> {
  const { stdin, stdout, stderr } = options;
  return withStreams({ ...(stdin && { stdin }), ...(stdout && { stdout }), ...(stderr && { stderr }) }, () => run(argv, options.env ?? process.env, options.cwd ?? process.cwd()));
}

async function run(argv: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<number> {
  try {
    if (argv[0] === 'help') return showHelp(argv.slice(1));
    const { path, node, rest } = resolveCommand(argv);
    if (node.kind === 'group') {
      if (rest[0] === '--help' || rest[0] === '-h') return print(groupHelp(path, node, path ? [] : HELP_FOOTER));
      if (rest.length === 0) {
        streams().stderr.write(groupHelp(path, node, path ? [] : HELP_FOOTER));
        return EXIT_USAGE;
      }
      throw new UsageError(`unknown command "${[path, rest[0]].filter(Boolean).join(' ')}"`, path);
    }
    const parsed = parseCommandLine(path, node, rest);
    if (parsed.help) return print(commandHelp(path, node));
    return await execute(node, parsed.values, parsed.args, loadConfig(env, cwd));
  } catch (error) {
    return report(error);
  }
}

/** Walks the tree as far as the words go: `clients create --name x` -> the `create` command, `--name x`. */
function resolveCommand(argv: string[]): { path: string; node: Node; rest: string[] } {
  let node: Node = COMMANDS;
  const path: string[] = [];
  let index = 0;
  while (node.kind === 'group' && index < argv.length) {
    const word = argv[index] ?? '';
    const child: Node | undefined = Object.hasOwn(node.commands, word) ? node.commands[word] : undefined;
    if (!child) break;
    node = child;
    path.push(word);
    index += 1;
  }
  return { path: path.join(' '), node, rest: argv.slice(index) };
}

function showHelp(words: string[]): number {
  const { path, node, rest } = resolveCommand(words);
  if (rest.length) throw new UsageError(`no help for unknown command "${words.join(' ')}"`);
  return print(node.kind === 'group' ? groupHelp(path, node, path ? [] : HELP_FOOTER) : commandHelp(path, node));
}

function print(text: string): number {
  streams().stdout.write(text);
  return 0;
}

/** Opens the store only if the command asks for services, and always closes it; returns the exit code. */
async function execute(command: Command, values: Record<string, unknown>, args: string[], config: Config): Promise<number> {
  let exitCode = 0;
  let opened: { store: Store; services: Services } | undefined;
  const invocation: Invocation<Record<string, never>> = {
    values: values as Invocation<Record<string, never>>['values'],
    args,
    config,
    async services() {
      if (!opened) {
        // Loaded on demand: help and usage errors should not wait for store drivers to load.
        const [{ openStore }, { buildServices }, { warn }] = await Promise.all([import('./store/open-store.ts'), import('./services.ts'), import('./cli/output.ts')]);
        const store = await openStore(config, { warn });
        try {
          opened = { store, services: buildServices(config, store) };
        } catch (error) {
          await store.close();
          throw error;
        }
      }
      return opened.services;
    },
  };
  try {
    await command.run(invocation);
  } finally {
    // What the command did is in the audit trail before the store closes.
    await opened?.services.close();
    // A failed close must not hide the error that ended the command.
    await opened?.store.close().catch((error: unknown) => {
      streams().stderr.write(`tessera: could not close the store cleanly: ${messageOf(error)}\n`);
      exitCode = EXIT_FAILURE;
    });
  }
  return exitCode;
}

/** One line per problem, no stack trace, for everything an operator can cause and fix. */
function report(error: unknown): number {
  if (error instanceof ConfigError) {
    // Already one "Configuration error: ..." line per problem.
    streams().stderr.write(`${error.message}\n`);
    return EXIT_FAILURE;
  }
  if (error instanceof UsageError) {
    const hint = `run "tessera ${error.helpFor ? `${error.helpFor} ` : ''}--help"`;
    streams().stderr.write(`tessera: ${oneLine(error.message)}; ${hint}\n`);
    return EXIT_USAGE;
  }
  if (error instanceof AppError || isSystemError(error)) {
    streams().stderr.write(`tessera: ${oneLine(messageOf(error))}\n`);
    return EXIT_FAILURE;
  }
  // Not something an operator caused: keep the stack, it is what a bug report needs.
  streams().stderr.write(`tessera: unexpected error: ${oneLine(messageOf(error))}\n${error instanceof Error ? `${error.stack}\n` : ''}`);
  return EXIT_FAILURE;
}

/** EADDRINUSE, EACCES, ENOENT, ECONNREFUSED...: the environment's fault, explained by the message. */
function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' && /^E[A-Z]+$/.test(String((error as NodeJS.ErrnoException).code));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
