/**
 * Structured JSON logs (pino). Secrets never reach a log line: the redaction list covers every
 * place a password, secret, code or token can sit in what we log, and nothing logs a URL with its
 * query string (codes, tokens and reset links travel there): the access log writes the path only.
 * Every line written while a request is handled carries its `requestId` (request-context.ts).
 */
import { pino, type Logger } from 'pino';

import type { LogLevel } from './config.ts';
import { currentRequest } from './request-context.ts';

export type { Logger };

export const REDACTED_PATHS = [
  'password',
  '*.password',
  'client_secret',
  '*.client_secret',
  'secret',
  '*.secret',
  'code',
  '*.code',
  'code_verifier',
  '*.code_verifier',
  'refresh_token',
  '*.refresh_token',
  'access_token',
  '*.access_token',
  'id_token',
  '*.id_token',
  'id_token_hint',
  '*.id_token_hint',
  'token',
  '*.token',
  'client_assertion',
  '*.client_assertion',
  'assertion',
  '*.assertion',
  'logout_token',
  '*.logout_token',
  'passwordHash',
  '*.passwordHash',
  'recoveryCodes',
  '*.recoveryCodes',
  'query',
  '*.query',
  'querystring',
  '*.querystring',
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { service: 'tessera' }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, mixin: requestIdOfLine }, destination);
}

/** A fresh object each time: pino merges the line's own fields into what the mixin returns. */
function requestIdOfLine(): Record<string, string> {
  const request = currentRequest();
  return request ? { requestId: request.requestId } : {};
}
