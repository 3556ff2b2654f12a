/**
 * `tessera serve`: the server in the foreground until SIGTERM or SIGINT, then a graceful close
 * (in-flight requests finish, the store closes). A second signal stops at once (with workers, a
 * second signal to the primary).
 * With WORKERS > 1 this process becomes the primary of that many workers (cluster.ts), each of which
 * runs this same command and is told to stop by message.
 */
import cluster from 'node:cluster';

import { createLogger } from '../log.ts';
import { defineCommand } from './command.ts';

/** A shutdown that has not finished by then is stuck (a client holding a request open); stop anyway. */
const SHUTDOWN_GRACE_MS = 15_000;

export const serve = defineCommand({
  summary: 'Start the server (configured by the environment, like every command; WORKERS processes)',
  options: {},
  async run({ config }) {
    if (config.workers > 1 && cluster.isPrimary) {
      // runPrimary also answers the workers' /metrics with the sum over all of them.
      const { runPrimary } = await import('../cluster.ts');
      // Past the workers' own grace period, so a worker's forced stop is its own decision first.
      await runPrimary(config, createLogger(config.logLevel), { graceMs: SHUTDOWN_GRACE_MS + 5_000 });
      return;
    }
    const { READY_MESSAGE, SHUTDOWN_MESSAGE, STOPPED_MESSAGE } = await import('../cluster.ts');
    // Listening before the server starts, so a signal during startup still ends in a clean close.
    let onMessage: ((message: unknown) => void) | undefined;
    const stopRequested = new Promise<NodeJS.Signals | 'primary'>((resolve) => {
      let stopping = false;
      const stop = (signal: NodeJS.Signals | 'primary') => {
        if (stopping) return;
        stopping = true;
        // A second signal means "now" for a process on its own. A worker keeps treating signals as
        // the same request: the one that follows the primary's message is usually the same stop
        // (Ctrl-C signals the terminal's whole process group, systemd and pkill every process), and
        // a second signal to the primary already kills its workers.
        if (!cluster.isWorker) {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          const force = () => process.exit(1);
          process.once('SIGTERM', force);
          process.once('SIGINT', force);
        }
        resolve(signal);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      if (cluster.isWorker) {
        onMessage = (message) => {
          if (message === SHUTDOWN_MESSAGE) stop('primary');
        };
        process.on('message', onMessage);
      }
    });
    try {
      // Imported here so the other commands do not load oidc-provider, Koa and the views.
      const { startServer } = await import('../main.ts');
      const base = createLogger(config.logLevel);
      // Every line of a worker says which one: restarts and crashes can be told apart in the log.
      const logger = cluster.isWorker ? base.child({ worker: cluster.worker!.id, pid: process.pid }) : base;
      const server = await startServer(config, logger);
      if (cluster.isWorker) process.send!(READY_MESSAGE);
      const signal = await stopRequested;
      logger.info({ signal }, 'shutting down: finishing in-flight requests');
      // Lines go out in batches (log.ts); the ones that say where a process is in its life go out now.
      logger.flush();
      setTimeout(() => {
        process.stderr.write(`tessera: still shutting down after ${SHUTDOWN_GRACE_MS / 1000} s; stopping now\n`);
        process.exit(1);
      }, SHUTDOWN_GRACE_MS).unref();
      await server.close();
      logger.info('stopped');
      if (cluster.isWorker && process.connected) process.send!(STOPPED_MESSAGE);
    } finally {
      if (onMessage) {
        // The IPC channel would keep a worker alive; the primary sees it exit, whether it stopped or failed.
        process.off('message', onMessage);
        // Not process.disconnect(): a worker that loses its channel unasked exits at once, with code 0.
        if (process.connected) cluster.worker!.disconnect();
      }
    }
  },
});
