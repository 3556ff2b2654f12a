/**
 * The one way tests wait: poll what the test can observe until it holds, instead of sleeping for
 * a time that is too long on an idle machine and too short on a loaded one.
 */
import { setTimeout as delay } from 'node:timers/promises';

export interface PollOptions {
  /** Give up after this long; 8 s by default. */
  readonly timeoutMs?: number;
  /** Between probes; 50 ms by default. */
  readonly intervalMs?: number;
  /** What is awaited: when given, a timeout throws "timed out waiting for <what>" instead of giving undefined. */
  readonly what?: string;
}

type Probe<T> = () => Promise<T | undefined> | T | undefined;

/**
 * Calls `probe` until it gives a value other than undefined, and returns that value. After the
 * timeout: undefined (the test's own assertion then says what never happened), or with `what` an
 * error. A number for `options` is the timeout.
 */
export function eventually<T>(probe: Probe<T>, options: PollOptions & { readonly what: string }): Promise<T>;
export function eventually<T>(probe: Probe<T>, options?: PollOptions | number): Promise<T | undefined>;
export async function eventually<T>(probe: Probe<T>, options: PollOptions | number = {}): Promise<T | undefined> {
  const { timeoutMs = 8_000, intervalMs = 50, what } = typeof options === 'number' ? { timeoutMs: options } as PollOptions : options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      if (what !== undefined) throw new Error(`timed out waiting for ${what} (${timeoutMs / 1000} s)`);
      return undefined;
    }
    await delay(intervalMs);
  }
}
