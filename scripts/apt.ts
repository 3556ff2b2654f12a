/**
 * What the pretest scripts share: run Debian's apt-get as root, or through passwordless sudo (never a
 * password prompt in a test run), and tell the distribution.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function succeeds(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: ['ignore', 'ignore', 'ignore'] }).status === 0;
}

export function osId(): string {
  try {
    return /^ID=(.*)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1]?.replace(/"/g, '') ?? '';
  } catch {
    return '';
  }
}

/** `apt-get …` as root, or through `sudo -n`; undefined when neither is allowed or there is no apt-get. */
export function aptGetAsRoot(): ((args: string[]) => void) | undefined {
  if (!succeeds('apt-get', ['--version'])) return undefined;
  const run = (command: string, args: string[]) => execFileSync(command, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (process.getuid?.() === 0) return (args) => run('apt-get', args);
  if (succeeds('sudo', ['-n', 'true'])) return (args) => run('sudo', ['-n', '--preserve-env=DEBIAN_FRONTEND', 'apt-get', ...args]);
  return undefined;
}
