/** Secrets reach the CLI on stdin only: an argument would sit in shell history and in every `ps` listing. */
import { AppError } from '../errors.ts';
import { streams } from './output.ts';

/** Far above any valid password or client secret; bounds what a mistaken pipe can make us buffer. */
const STDIN_LIMIT_BYTES = 64 * 1024;

/** Reads the command's stdin to the end and strips one trailing newline (what `echo` and heredocs add), nothing more. */
export async function readSecretFromStdin(what: string): Promise<string> {
  const { stdin, stderr } = streams();
  if (stdin.isTTY) stderr.write(`${what[0]!.toUpperCase()}${what.slice(1)} (not hidden; end with Enter, then Ctrl-D): `);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > STDIN_LIMIT_BYTES) throw new AppError('ERR_INVALID_INPUT', `the ${what} on stdin is too long`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}
