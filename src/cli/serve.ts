/**
 * `tessera serve`: the server in the foreground until SIGTERM or SIGINT, then a graceful close
 * (in-flight requests finish, the store closes). A second signal stops at once.
 */
import { createLogger } from '../log.ts';
import { defineCommand } from './command.ts';

/** A shutdown that has not finished by then is stuck (a client holding a request open); stop anyway. */
const SHUTDOWN_GRACE_MS = 15_000;

export const serve = defineCommand({
  summary: 'Start the server (configured by the environment, like every command)',
  options: {},
  async run({ config }) {
    // Listening before the server starts, so a signal during startup still ends in a clean close.
    const stopRequested = new Promise<NodeJS.Signals>((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        const force = () => process.exit(1);
        process.once('SIGTERM', force);
        process.once('SIGINT', force);
        resolve(signal);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
    // Imported here so the other commands do not load oidc-provider, Koa and the views.
    const { startServer } = await import('../main.ts');
    const logger = createLogger(config.logLevel);
    const server = await startServer(config, logger);
    const signal = await stopRequested;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    setTimeout(() => {
      process.stderr.write(`tessera: still shutting down after ${SHUTDOWN_GRACE_MS / 1000} s; stopping now\n`);
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    await server.close();
    logger.info('stopped');
  },
});
