/**
 * `tessera audit`: the audit trail, newest first, filtered by account, client, type and time. One
 * page per run; `--before` with the printed cursor continues with older events.
 */
import { auditEventView } from '../admin/views.ts';
import { DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE, type AuditEvent } from '../domain/audit.ts';
import { isSecurityEventType, SECURITY_EVENT_TYPES, type SecurityEventType } from '../domain/events.ts';
import { normalizeEmail } from '../domain/accounts.ts';
import { AppError } from '../errors.ts';
import { defineCommand, JSON_OPTION, UsageError } from './command.ts';
import { printJson, printLines, printTable } from './output.ts';

/** An event as the CLI (and scripts reading its JSON) see it: snake_case, times in ISO 8601. */
function time(name: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  // ISO 8601 with a date at least; a bare date means midnight UTC.
  const parsed = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) ? new Date(value) : new Date(Number.NaN);
  if (!Number.isFinite(parsed.getTime())) throw new UsageError(`--${name} must be an ISO 8601 time, e.g. 2026-11-22 or 2026-11-22T10:00:00Z`, 'audit');
  return parsed;
}

/** Words joined by ", " into lines of at most `width` characters. */
function wrap(words: readonly string[], width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && line.length + word.length + 2 > width) {
      lines.push(`${line},`);
      line = word;
    } else {
      line = line ? `${line}, ${word}` : word;
    }
  }
  return line ? [...lines, line] : lines;
}

function summary(event: AuditEvent): string {
  return Object.entries(event.details ?? {})
    .map(([name, value]) => `${name}=${Array.isArray(value) ? value.join(',') : String(value)}`)
    .join(' ');
}

export const audit = defineCommand({
  summary: 'Show the audit trail: sign-ins, lockouts, changes to factors, clients and keys, tokens',
  description: [
    'Show security events, newest first: sign-ins, lockouts, second factors and passkeys, consents,',
    'tokens issued to people and revoked, client, resource and key changes, admin actions. Events are',
    'kept for AUDIT_RETENTION_DAYS (90 by default). Filters combine; a page holds --limit events, and',
    'the cursor printed after a full page continues with older ones (--before CURSOR).',
    '',
    'Types:',
    ...wrap(SECURITY_EVENT_TYPES, 96).map((line) => `  ${line}`),
  ].join('\n'),
  options: {
    email: { type: 'string', placeholder: 'EMAIL', description: 'Events about the account with this email' },
    sub: { type: 'string', placeholder: 'SUB', description: 'Events about the account with this subject id' },
    client: { type: 'string', placeholder: 'CLIENT_ID', description: 'Events involving this client' },
    type: { type: 'string', multiple: true, placeholder: 'TYPE', description: 'Only events of this type, e.g. signin.failed' },
    since: { type: 'string', placeholder: 'TIME', description: 'At or after this time (ISO 8601)' },
    until: { type: 'string', placeholder: 'TIME', description: 'Before this time (ISO 8601)' },
    limit: { type: 'string', placeholder: 'N', description: `How many events (1 to ${MAX_AUDIT_PAGE}; default ${DEFAULT_AUDIT_PAGE})` },
    before: { type: 'string', placeholder: 'CURSOR', description: 'Continue after a page: the cursor it printed' },
    json: JSON_OPTION,
  },
  check(values) {
    if (values.email !== undefined && values.sub !== undefined) throw new UsageError('give --email or --sub, not both');
    for (const type of values.type) {
      if (!isSecurityEventType(type)) throw new UsageError(`unknown event type ${JSON.stringify(type)}; run "tessera audit --help" for the list`);
    }
    if (values.limit !== undefined && !/^\d{1,5}$/.test(values.limit)) throw new UsageError('--limit must be a number');
    time('since', values.since);
    time('until', values.until);
  },
  async run({ values, services }) {
    const { accounts, audit: trail } = await services();
    let sub = values.sub;
    if (values.email !== undefined) {
      const account = await accounts.findByEmail(values.email);
      if (!account) throw new AppError('ERR_NOT_FOUND', `no user with the email ${normalizeEmail(values.email)}`);
      sub = account.sub;
    }
    const since = time('since', values.since);
    const until = time('until', values.until);
    const page = await trail.query({
      ...(sub !== undefined && { sub }),
      ...(values.client !== undefined && { clientId: values.client }),
      ...(values.type.length > 0 && { type: values.type as SecurityEventType[] }),
      ...(since && { since }),
      ...(until && { until }),
      ...(values.limit !== undefined && { limit: Number(values.limit) }),
      ...(values.before !== undefined && { before: values.before }),
    });
    const events = page.events.map(auditEventView);
    if (values.json) return printJson({ events, ...(page.next && { next: page.next }) });
    if (!events.length) return printLines('No events match.');
    printTable(
      ['TIME', 'TYPE', 'SUB', 'CLIENT', 'IP', 'DETAILS'],
      page.events.map((event) => [event.at.toISOString(), event.type, event.sub ?? '-', event.clientId ?? '-', event.ip ?? '-', summary(event)]),
    );
    if (page.next) printLines('', `Older events: tessera audit --before ${page.next} (with the same filters)`);
  },
});
