/**
 * `tessera serve` with WORKERS > 1: the primary process runs N workers with node:cluster and serves
 * nothing itself. Workers share the listening sockets (the primary accepts and hands connections out
 * round-robin) and each is a whole Tessera (startServer) with its own store connection; everything
 * that must hold across them (sessions, codes, rate limits, lockout, keys, clients) is in the store.
 *
 * - The first worker starts alone, so first-run setup (schema migrations, the first keys, a
 *   development secret) happens once; the others start when it is ready.
 * - A worker that dies is restarted, after a delay that doubles with each quick death (0.5 s up to
 *   30 s) and resets once a worker has run for a while. A worker that fails before any worker was
 *   ever ready is a startup error (a port in use, a bad certificate file): the primary stops.
 * - SIGTERM or SIGINT asks every worker to shut down gracefully (by message; a worker takes a signal
 *   of its own, such as a terminal's Ctrl-C or systemd's stop reaching every process, as the same
 *   request); the primary exits when they all have. A second signal to the primary, or workers still
 *   running after the grace period, kills them.
 */
import cluster, { type Worker } from 'node:cluster';

import type { Config } from './config.ts';
import { AppError } from './errors.ts';
import type { Logger } from './log.ts';
import { servePrimaryMetrics } from './observability/metrics.ts';

/** Primary to worker: finish in-flight requests and exit. */
export const SHUTDOWN_MESSAGE = 'tessera:shutdown';
/** Worker to primary: listening, store open, keys loaded. */
export const READY_MESSAGE = 'tessera:ready';
/**
 * Worker to primary: stopped cleanly, exiting now. A signal that reaches a worker after this (a
 * second SIGTERM from systemd or pkill) can land while the process is already tearing down, past
 * its signal handlers, and end it by that signal: once it has said this, that is still a clean stop.
 */
export const STOPPED_MESSAGE = 'tessera:stopped';

const FIRST_RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that ran this long before dying was healthy: its successor starts without delay growth. */
const STABLE_AFTER_MS = 30_000;

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  readyAt: number | undefined;
  quickDeaths: number;
  restartTimer: NodeJS.Timeout | undefined;
}

/**
 * Runs the workers until a signal stops them; resolves once all have exited. Rejects when the
 * workers cannot start at all, or did not stop cleanly.
 */
export function runPrimary(config: Pick<Config, 'workers'>, logger: Logger, options: { graceMs: number }): Promise<void> {
  // A scrape of /metrics reaching any worker is answered with the sum over all of them.
  servePrimaryMetrics();
  const slots: Slot[] = Array.from({ length: config.workers }, (_, index) => ({ index, worker: undefined, readyAt: undefined, quickDeaths: 0, restartTimer: undefined }));
  let everReady = false;
  let stopping = false;
  let failure: string | undefined;

  return new Promise<void>((resolve, reject) => {
    const finishIfDone = () => {
      if (!stopping || slots.some((slot) => slot.worker !== undefined)) return;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      if (failure) reject(new AppError('ERR_WORKERS', failure));
      else resolve();
    };

    const stop = (reason: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ reason }, 'stopping the workers: finishing in-flight requests');
      for (const slot of slots) {
        clearTimeout(slot.restartTimer);
        if (slot.worker?.isConnected()) slot.worker.send(SHUTDOWN_MESSAGE);
      }
      setTimeout(() => {
        const left = slots.filter((slot) => slot.worker !== undefined);
        if (!left.length) return;
        failure ??= `${left.length} worker(s) still running after ${options.graceMs / 1000} s; killed`;
        for (const slot of left) slot.worker?.process.kill('SIGKILL');
      }, options.graceMs).unref();
      finishIfDone();
    };

    function onSignal(signal: NodeJS.Signals) {
      if (!stopping) return stop(signal);
      // A second signal: stop now.
      failure ??= `stopped by a second ${signal}`;
      for (const slot of slots) slot.worker?.process.kill('SIGKILL');
    }
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);

    const start = (slot: Slot) => {
      slot.restartTimer = undefined;
      slot.readyAt = undefined;
      const worker = cluster.fork();
      slot.worker = worker;
      const pid = worker.process.pid;
      let stoppedCleanly = false;
      worker.on('message', (message: unknown) => {
        if (message === STOPPED_MESSAGE) stoppedCleanly = true;
        if (message !== READY_MESSAGE) return;
        slot.readyAt = Date.now();
        logger.info({ worker: worker.id, pid }, 'worker ready');
        if (!everReady) {
          everReady = true;
          // First-run setup is done: the others may start together now.
          for (const other of slots) if (!other.worker && !stopping) start(other);
        }
        // Asked to stop while it was starting: it got the message and stops as soon as it can.
      });
      worker.on('exit', (code, signal) => {
        slot.worker = undefined;
        if (stopping) {
          const endedByLateSignal = stoppedCleanly && (signal === 'SIGTERM' || signal === 'SIGINT');
          if (code !== 0 && !endedByLateSignal) failure ??= `worker ${worker.id} (pid ${pid}) exited with ${signal ?? `code ${code}`} while stopping`;
          logger.info({ worker: worker.id, pid, exitCode: code, signal }, 'worker stopped');
          finishIfDone();
          return;
        }
        if (!everReady) {
          failure = `worker ${worker.id} (pid ${pid}) could not start (${signal ?? `exit code ${code}`}); see its error above`;
          logger.error({ worker: worker.id, pid, exitCode: code, signal }, 'worker could not start');
          stop('startup failed');
          return;
        }
        const ranMs = slot.readyAt === undefined ? 0 : Date.now() - slot.readyAt;
        slot.quickDeaths = ranMs >= STABLE_AFTER_MS ? 0 : slot.quickDeaths + 1;
        const delayMs = slot.quickDeaths === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** (slot.quickDeaths - 1));
        logger.error({ worker: worker.id, pid, exitCode: code, signal, restartInMs: delayMs }, 'worker died; restarting it');
        slot.restartTimer = setTimeout(() => start(slot), delayMs);
      });
    };

    logger.info({ workers: slots.length, primary: process.pid }, `starting ${slots.length} workers`);
    start(slots[0]!);
  });
}
