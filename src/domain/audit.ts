/**
 * The audit trail: every security event (events.ts) is kept in the store for the retention period
 * (AUDIT_RETENTION_DAYS) and can be queried by account, client, type and time, newest first, a page
 * at a time (`tessera audit`, the admin API).
 *
 * Recording never fails or slows the request that caused the event: the listener only queues it,
 * and queued events are written right after, at most one write per FLUSH_INTERVAL_MS: a quiet
 * server writes each event at once, a busy one in batches (one transaction, one fsync, for many).
 * A write that fails is logged and retried with the next batch; if the store stays away, the queue
 * is bounded and the oldest events are dropped (and counted) rather than memory growing.
 * close() writes what is queued, so a graceful shutdown or a finished CLI command loses nothing.
 */
import { AppError } from '../errors.ts';
import type { AuditRecord, AuditRepository } from '../store/port.ts';
import { isSecurityEventType, type SecurityEvent, type SecurityEvents, type SecurityEventType } from './events.ts';
import { randomId } from './random.ts';

/** An event as the trail returns it: the event, with the id it is kept under. */
export interface AuditEvent extends SecurityEvent {
  readonly id: string;
}

export interface AuditFilter {
  /** Events about this account. */
  sub?: string;
  /** Events involving this client. */
  clientId?: string;
  /** One type or several (any of them). */
  type?: SecurityEventType | readonly SecurityEventType[];
  /** At or after this time. */
  since?: Date;
  /** Before this time. */
  until?: Date;
  /** Page size, 1 to MAX_AUDIT_PAGE; DEFAULT_AUDIT_PAGE when absent. */
  limit?: number;
  /** The `next` cursor of the previous page: continues with older events. */
  before?: string;
}

export interface AuditPage {
  /** Newest first. */
  events: AuditEvent[];
  /** Present when there may be older events: pass it as `before` for the next page. */
  next?: string;
}

export const DEFAULT_AUDIT_PAGE = 100;
export const MAX_AUDIT_PAGE = 1000;
/** Events waiting for the store beyond this are dropped, oldest first (a store outage must not exhaust memory). */
const MAX_QUEUED = 10_000;
/** At most one write per interval; events arriving meanwhile wait for the next, as one batch. */
const FLUSH_INTERVAL_MS = 200;
/** After a failed write (the store is away), the next try waits this long. */
const RETRY_AFTER_MS = 1000;
/** The longest close() waits for the store to take what is queued. */
const CLOSE_TIMEOUT_MS = 5000;
/** A batch this large is written at once. */
const FLUSH_BATCH = 500;

export interface AuditSettings {
  retentionDays: number;
  /** How long close() waits for the store; CLOSE_TIMEOUT_MS by default. */
  closeTimeoutMs?: number;
  /** Told about failed writes and dropped events; must not throw. */
  onError?: (error: unknown, details: { queued: number; dropped: number }) => void;
}

export class AuditService {
  readonly #repository: AuditRepository;
  readonly #retentionMs: number;
  readonly #onError: NonNullable<AuditSettings['onError']>;
  readonly #closeTimeoutMs: number;
  #queue: AuditRecord[] = [];
  #timer: NodeJS.Timeout | undefined;
  #timerDelay = 0;
  #writing: Promise<void> | undefined;
  #dropped = 0;
  #unsubscribe: (() => void) | undefined;
  #closed = false;
  #lastWriteAt = 0;
  /** After a failed write, the next is not tried before this (epoch ms). */
  #retryAt = 0;

  constructor(repository: AuditRepository, settings: AuditSettings) {
    this.#repository = repository;
    this.#retentionMs = settings.retentionDays * 86_400_000;
    this.#onError = settings.onError ?? (() => undefined);
    this.#closeTimeoutMs = settings.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
  }

  /** Records every event emitted on the bus from now on. */
  subscribe(events: SecurityEvents): void {
    this.#unsubscribe?.();
    this.#unsubscribe = events.on((event) => this.record(event));
  }

  /** Events waiting to be written. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Events dropped because the store could not take them in time (since start). */
  get dropped(): number {
    return this.#dropped;
  }

  /** Queues one event; it is written within FLUSH_INTERVAL_MS. Never throws. */
  record(event: SecurityEvent): void {
    const at = event.at.getTime();
    this.#queue.push({
      id: nextId(),
      type: event.type,
      at: event.at,
      ...(event.sub !== undefined && { sub: event.sub }),
      ...(event.clientId !== undefined && { clientId: event.clientId }),
      ...(event.ip !== undefined && { ip: event.ip }),
      ...(event.requestId !== undefined && { requestId: event.requestId }),
      ...(event.details !== undefined && { details: { ...event.details } }),
      expiresAt: new Date(at + this.#retentionMs),
    });
    if (this.#queue.length > MAX_QUEUED) {
      const excess = this.#queue.length - MAX_QUEUED;
      this.#queue.splice(0, excess);
      this.#dropped += excess;
      this.#onError(new Error('audit events dropped: the store is not keeping up'), { queued: this.#queue.length, dropped: this.#dropped });
    }
    if (this.#closed) return;
    const earliest = Math.max(this.#retryAt, this.#queue.length >= FLUSH_BATCH ? 0 : this.#lastWriteAt + FLUSH_INTERVAL_MS);
    this.#schedule(Math.max(0, earliest - Date.now()));
  }

  /** Keeps the earliest of the pending flush and this one. */
  #schedule(delayMs: number): void {
    if (this.#timer && (delayMs > 0 || this.#timerDelay === 0)) return;
    clearTimeout(this.#timer);
    this.#timerDelay = delayMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, delayMs);
    // A pending batch must not keep a finished CLI command alive; close() writes it instead.
    this.#timer.unref();
  }

  /** Writes everything queued so far. Resolves when written or when the write failed (and was reported). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
    if (this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#lastWriteAt = Date.now();
    this.#writing = this.#repository.append(batch).then(() => {
      this.#retryAt = 0;
    }, (error: unknown) => {
      // Put the batch back in front, to be tried with the next one (record() bounds the total).
      this.#queue = [...batch, ...this.#queue];
      this.#retryAt = Date.now() + RETRY_AFTER_MS;
      this.#onError(error, { queued: this.#queue.length, dropped: this.#dropped });
      if (this.#queue.length && !this.#closed) this.#schedule(RETRY_AFTER_MS);
    }).finally(() => {
      this.#writing = undefined;
    });
    await this.#writing;
  }

  /**
   * Stops listening and writes what is queued, waiting at most closeTimeoutMs: a store that is
   * away must not hold up a shutdown (what could not be written is reported as dropped).
   */
  async close(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.#closeTimeoutMs);
      timer.unref();
    });
    const gaveUp = await Promise.race([this.flush().then(() => false), timedOut]);
    clearTimeout(timer);
    if (gaveUp || this.#queue.length) {
      this.#dropped += this.#queue.length;
      this.#onError(new Error('audit events not written before closing'), { queued: this.#queue.length, dropped: this.#dropped });
      this.#queue = [];
    }
  }

  /**
   * A page of events, newest first. Throws AppError ERR_INVALID_INPUT for an unknown type, a limit
   * out of range or a cursor that is not one of ours.
   */
  async query(filter: AuditFilter = {}): Promise<AuditPage> {
    const limit = filter.limit ?? DEFAULT_AUDIT_PAGE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_PAGE) {
      throw new AppError('ERR_INVALID_INPUT', `limit must be a whole number from 1 to ${MAX_AUDIT_PAGE}`);
    }
    const types = filter.type === undefined ? undefined : (typeof filter.type === 'string' ? [filter.type] : [...filter.type]);
    for (const type of types ?? []) {
      if (!isSecurityEventType(type)) throw new AppError('ERR_INVALID_INPUT', `unknown event type ${JSON.stringify(type)}`);
    }
    for (const [name, value] of [['since', filter.since], ['until', filter.until]] as const) {
      if (value !== undefined && !(value instanceof Date && Number.isFinite(value.getTime()))) {
        throw new AppError('ERR_INVALID_INPUT', `${name} must be a valid time`);
      }
    }
    const before = filter.before === undefined ? undefined : parseCursor(filter.before);
    // One more than asked: whether it exists says if there is a next page.
    const records = await this.#repository.query({
      ...(filter.sub !== undefined && { sub: String(filter.sub) }),
      ...(filter.clientId !== undefined && { clientId: String(filter.clientId) }),
      ...(types && { types }),
      ...(filter.since && { since: filter.since }),
      ...(filter.until && { until: filter.until }),
      ...(before && { before }),
      limit: limit + 1,
    });
    const page = records.slice(0, limit).map(toEvent);
    const last = page.at(-1);
    return { events: page, ...(records.length > limit && last && { next: cursorOf(last) }) };
  }
}

let sequence = 0;

/**
 * Unique (random suffix) and, within this process, increasing: events of the same millisecond keep
 * the order they happened in (a failed sign-in before the lockout it caused).
 */
function nextId(): string {
  sequence += 1;
  return `${sequence.toString(36).padStart(8, '0')}${randomId(9)}`;
}

function toEvent(record: AuditRecord): AuditEvent {
  const { expiresAt: _expiresAt, ...event } = record;
  return event as AuditEvent;
}

/** `<epoch ms>.<id>`: the position of the last event of a page. */
function cursorOf(event: AuditEvent): string {
  return `${event.at.getTime()}.${event.id}`;
}

function parseCursor(cursor: string): { at: Date; id: string } {
  const match = /^(\d{1,15})\.([A-Za-z0-9_-]{1,64})$/.exec(String(cursor));
  if (!match) throw new AppError('ERR_INVALID_INPUT', 'before must be the next cursor of an earlier page');
  return { at: new Date(Number(match[1])), id: match[2]! };
}
