/**
 * The one way tests wait: poll what the test can observe until it holds, instead of sleeping for
 * a time that is too long on an idle machine and too short on a loaded one.
 */
import { setTimeout as delay } from 'node:timers/promises';

export interface PollOptions {
  /** Give up after this long (then the result is undefined); 8 s by default. */
  readonly timeoutMs?: number;
  /** Between probes; 50 ms by default. */
  readonly intervalMs?: number;
}

/**
 * Calls `probe` until it gives a value other than undefined, and returns that value; after the
 * timeout, undefined (the test's assertion then says what never happened). A number is the timeout.
 */
export async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, options: PollOptions | number = {}): Promise<T | undefined> {
  const { timeoutMs = 8_000, intervalMs = 50 } = typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined || Date.now() > deadline) return value;
    await delay(intervalMs);
  }
}
