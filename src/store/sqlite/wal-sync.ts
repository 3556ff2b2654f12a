/**
 * The disk wait of a group commit, off the event loop. With `synchronous=FULL` SQLite calls
 * fdatasync on the WAL inside COMMIT, and DatabaseSync holds the event loop for as long as the disk
 * takes (0.2 to 1 ms here, per commit): that wait was most of a refresh's and a sign-in's time on the
 * JavaScript thread. The group commit instead commits with `synchronous=NORMAL` (the WAL is written,
 * not yet synced) and acknowledges its writes only once `sync()` has run fdatasync on the WAL file
 * through libuv's thread pool, after that COMMIT: what is acknowledged is on disk, as with FULL, and
 * the event loop serves other requests meanwhile. Syncs are coalesced: while one runs, the commits
 * that finish wait for the next one, which covers them all.
 *
 * fdatasync on our own descriptor of the WAL flushes every write to that file, whichever descriptor
 * made it (Linux syncs the inode). The WAL file lives as long as a connection has the database open,
 * ours included; a checkpoint rewinds or truncates it in place.
 */
import { close, fdatasync, openSync } from 'node:fs';

import { storeUnavailableError } from '../store-errors.ts';

export interface WalSync {
  /** Resolves once an fdatasync of the WAL that started after this call has finished. */
  sync(): Promise<void>;
  /** Waits for the sync in flight, then closes the descriptor. */
  close(): Promise<void>;
}

type Waiting = PromiseWithResolvers<void>;

export function walSync(walFile: string): WalSync {
  let fd: number | undefined;
  /** The sync running now, if any. */
  let running: Waiting | undefined;
  /** Commits that finished while `running` ran: the next sync is theirs. */
  let next: Waiting | undefined;
  let closed = false;

  function start(batch: Waiting): void {
    running = batch;
    const finish = (error: unknown) => {
      running = undefined;
      if (error) batch.reject(storeUnavailableError('The SQLite write-ahead log could not be synced to disk.', error));
      else batch.resolve();
      if (next) {
        const queued = next;
        next = undefined;
        start(queued);
      }
    };
    try {
      // Opened on first use: the WAL exists once the connection has committed in WAL mode.
      fd ??= openSync(walFile, 'r');
    } catch (error) {
      finish(error);
      return;
    }
    fdatasync(fd, finish);
  }

  return {
    sync() {
      if (closed) return Promise.reject(storeUnavailableError('The SQLite store is closed.'));
      if (running === undefined) {
        const batch = Promise.withResolvers<void>();
        start(batch);
        return batch.promise;
      }
      next ??= Promise.withResolvers<void>();
      return next.promise;
    },
    async close() {
      closed = true;
      while (running !== undefined) await (running.promise.catch(() => undefined));
      if (fd !== undefined) {
        const closing = fd;
        fd = undefined;
        await new Promise<void>((resolve) => close(closing, () => resolve()));
      }
    },
  };
}
