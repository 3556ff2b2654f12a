/**
 * The CLI's command model: a tree of groups (`clients`, `clients certs`, ...) whose leaves are
 * commands declaring their options once. The same declaration drives `node:util` parseArgs (strict),
 * the required-option checks, the typed values a command receives, and the help text, so adding an
 * option or a subcommand is one edit in one place.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

import type { Config } from '../config.ts';
import type { Services } from '../services.ts';

/** Bad usage: unknown command or option, a missing argument. Exits 2 with one line, never a stack. */
export class UsageError extends Error {
  /** The command path whose help explains the fix, e.g. `clients create`. */
  readonly helpFor: string;

  constructor(message: string, helpFor = '') {
    super(message);
    this.name = 'UsageError';
    this.helpFor = helpFor;
  }
}

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** May be given more than once; the command receives an array. */
  readonly multiple?: boolean;
  /** Must be given (for a `multiple` option: at least once). */
  readonly required?: boolean;
  readonly short?: string;
  /** What the value looks like in help, e.g. `URI`. */
  readonly placeholder?: string;
  readonly description: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

export type OptionValues<O extends OptionSpecs> = {
  readonly [K in keyof O]: O[K] extends { type: 'boolean' } ? boolean
    : O[K] extends { multiple: true } ? string[]
    : O[K] extends { required: true } ? string
    : string | undefined;
};

export interface ArgumentSpec {
  /** Shown in help, e.g. `CLIENT_ID`. */
  readonly name: string;
  readonly description: string;
}

export interface Invocation<O extends OptionSpecs> {
  readonly values: OptionValues<O>;
  /** One per declared argument, in order; the runner has checked the count. */
  readonly args: readonly string[];
  readonly config: Config;
  /** Opens the store and builds the services on first call; the runner closes the store afterwards. */
  services(): Promise<Services>;
}

export interface Command<O extends OptionSpecs = OptionSpecs> {
  readonly kind: 'command';
  readonly summary: string;
  /** Longer help, shown by `tessera <command> --help`. */
  readonly description?: string;
  readonly args?: readonly ArgumentSpec[];
  readonly options: O;
  /**
   * The command lines help shows, for a command with several forms (`clients create` for a relying
   * party or a machine client); generated from the required options when absent.
   */
  readonly forms?: readonly string[];
  /**
   * Rules between options that a declaration cannot express ("--cert only with
   * --auth self_signed_tls_client_auth"). Throws UsageError; runs before configuration is loaded.
   */
  check?(values: OptionValues<O>): void;
  run(invocation: Invocation<O>): Promise<void>;
}

export interface Group {
  readonly kind: 'group';
  readonly summary: string;
  readonly commands: Readonly<Record<string, Node>>;
}

export type Node = Command | Group;

/** Keeps a command's option types precise while it is written, then files it in the table. */
export function defineCommand<const O extends OptionSpecs>(command: Omit<Command<O>, 'kind'>): Command {
  return { kind: 'command', ...command } as unknown as Command;
}

export function defineGroup(summary: string, commands: Record<string, Node>): Group {
  return { kind: 'group', summary, commands };
}

/** Every command takes these, besides its own options. */
export const JSON_OPTION = { type: 'boolean', description: 'Print JSON on stdout (nothing else goes to stdout)' } as const satisfies OptionSpec;
const HELP_OPTION = { type: 'boolean', short: 'h', description: 'Show this help' } as const satisfies OptionSpec;

export interface ParsedCommandLine {
  readonly help: boolean;
  readonly values: Record<string, unknown>;
  readonly args: string[];
}

/** Parses what follows the command path (strict: unknown options are errors) and checks what is required. */
export function parseCommandLine(path: string, command: Command, argv: string[]): ParsedCommandLine {
  const options: ParseArgsOptionsConfig = { help: HELP_OPTION };
  for (const [name, spec] of Object.entries(command.options)) {
    options[name] = {
      type: spec.type,
      ...(spec.short && { short: spec.short }),
      ...(spec.multiple && { multiple: true, default: [] }),
      ...(spec.type === 'boolean' && !spec.multiple && { default: false }),
    };
  }
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: prepareArgv(argv, options, Boolean(command.args?.length)), options, strict: true, allowPositionals: true, allowNegative: false });
  } catch (error) {
    throw new UsageError(describeParseError(error), path);
  }
  const { values, positionals } = parsed;
  if (values.help === true) return { help: true, values, args: positionals };

  const expected = command.args ?? [];
  if (positionals.length > expected.length) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[expected.length])} for "${path}"`, path);
  }
  if (positionals.length < expected.length) {
    throw new UsageError(`"${path}" needs ${expected.slice(positionals.length).map((arg) => arg.name).join(' ')}`, path);
  }
  for (const [name, spec] of Object.entries(command.options)) {
    const value = values[name];
    if (spec.required && (value === undefined || (Array.isArray(value) && value.length === 0))) {
      throw new UsageError(`"${path}" needs --${name}${spec.placeholder ? ` ${spec.placeholder}` : ''}`, path);
    }
  }
  try {
    command.check?.(values as OptionValues<OptionSpecs>);
  } catch (error) {
    throw error instanceof UsageError && !error.helpFor ? new UsageError(error.message, path) : error;
  }
  return { help: false, values, args: positionals };
}

/**
 * Generated ids and certificate thumbprints are base64url and may begin with "-"
 * (`tessera clients delete -F_Of21...`, `--thumbprint -jtJH...`). For a command that takes
 * arguments, a single-dash word longer than one option letter is an argument: it is moved behind
 * "--", where parseArgs stops looking for options. The value of a string option is never an
 * argument, whatever it looks like: parseArgs would refuse `--thumbprint -jtJH...` as ambiguous, so
 * it is passed as `--thumbprint=-jtJH...`, unless the value is itself one of the command's options
 * (`--name --json` is a forgotten value, and parseArgs says so).
 */
function prepareArgv(argv: string[], options: ParseArgsOptionsConfig, takesArguments: boolean): string[] {
  const rest: string[] = [];
  const moved: string[] = [];
  for (let index = 0; index < argv.length; index += 1) {
    const word = argv[index] ?? '';
    if (word === '--') {
      moved.push(...argv.slice(index + 1));
      break;
    }
    if (takesArguments && /^-[^-]./.test(word)) {
      moved.push(word);
      continue;
    }
    const name = /^--([^=]+)$/.exec(word)?.[1] ?? (/^-(.)$/.exec(word) && Object.entries(options).find(([, spec]) => spec.short === word[1])?.[0]);
    if (name && options[name]?.type === 'string' && index + 1 < argv.length) {
      index += 1;
      const value = argv[index] ?? '';
      if (word.startsWith('--') && value.startsWith('-') && !isOptionWord(value, options)) rest.push(`${word}=${value}`);
      else rest.push(word, value);
      continue;
    }
    rest.push(word);
  }
  return moved.length ? [...rest, '--', ...moved] : rest;
}

function isOptionWord(word: string, options: ParseArgsOptionsConfig): boolean {
  const long = /^--([^=]*)/.exec(word)?.[1];
  if (long !== undefined) return long === '' || Object.hasOwn(options, long);
  return word.length === 2 && Object.values(options).some((spec) => spec.short === word[1]);
}

/** parseArgs explains itself at length; one short line is enough here. */
function describeParseError(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  const option = /'(-[^' ]+)/.exec(message ?? '')?.[1];
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option ?? ''}`.trim();
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/argument missing/.test(message ?? '')) return `option ${option ?? ''} needs a value`;
      if (/ambiguous/.test(message ?? '')) return `option ${option ?? ''} needs a value; write ${option ?? ''}=-VALUE for one that starts with "-"`;
      return `option ${option ?? ''} does not take a value`;
    default:
      return (message ?? String(error)).split('\n')[0] ?? 'bad arguments';
  }
}

/** The command line that shows a command's required parts, e.g. `clients create --name NAME --redirect-uri URI [options]`. */
export function synopsis(path: string, command: Command): string {
  const required = Object.entries(command.options)
    .filter(([, spec]) => spec.required)
    .map(([name, spec]) => `--${name}${spec.placeholder ? ` ${spec.placeholder}` : ''}`);
  const optional = Object.values(command.options).some((spec) => !spec.required);
  return [path, ...(command.args ?? []).map((arg) => arg.name), ...required, ...(optional ? ['[options]'] : [])].join(' ');
}

export function commandHelp(path: string, command: Command): string {
  const optionRows: [string, string][] = [
    ...Object.entries(command.options).map(([name, spec]): [string, string] => [
      `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.placeholder ? ` ${spec.placeholder}` : ''}`,
      spec.description + annotation([spec.required && 'required', spec.multiple && 'repeatable']),
    ]),
    ['-h, --help', HELP_OPTION.description],
  ];
  const [first = synopsis(path, command), ...others] = command.forms ?? [];
  return [
    `Usage: tessera ${first}`,
    ...others.map((form) => `       tessera ${form}`),
    '',
    command.description ?? command.summary,
    ...(command.args?.length ? ['', 'Arguments:', ...columns(command.args.map((arg) => [arg.name, arg.description]))] : []),
    '',
    'Options:',
    ...columns(optionRows),
  ].join('\n') + '\n';
}

/** One row per command under the group, recursively: `clients create  Register a relying party...`. */
export function groupHelp(path: string, group: Group, footer: string[] = []): string {
  const rows: [string, string][] = [];
  const walk = (prefix: string, node: Group) => {
    for (const [name, child] of Object.entries(node.commands)) {
      const childPath = [prefix, name].filter(Boolean).join(' ');
      if (child.kind === 'group') walk(childPath, child);
      else rows.push([[childPath, ...(child.args ?? []).map((arg) => arg.name)].join(' '), child.summary]);
    }
  };
  walk(path, group);
  return [
    `Usage: tessera ${path ? `${path} ` : ''}<command> [options]`,
    '',
    ...(path ? [group.summary, ''] : []),
    'Commands:',
    ...columns(rows),
    '',
    `Run "tessera ${path ? `${path} ` : ''}<command> --help" for a command's options.`,
    ...footer,
  ].join('\n') + '\n';
}

function annotation(notes: readonly (string | false | undefined)[]): string {
  const present = notes.filter(Boolean);
  return present.length ? ` (${present.join(', ')})` : '';
}

function columns(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`);
}
