/**
 * Structured JSON logs (pino). Secrets never reach a log line: the redaction list covers every
 * place a password, secret, code or token can sit in what we log.
 */
import { pino, type Logger } from 'pino';

import type { LogLevel } from './config.ts';

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
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { service: 'tessera' }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, destination);
}
