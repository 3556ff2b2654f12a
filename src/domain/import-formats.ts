/**
 * The files `tessera users import` reads, each turned into numbered records of Tessera's own
 * fields (user-import.ts checks them). `jsonl` and `csv` are Tessera's format (what `users export`
 * writes); `auth0`, `firebase` and `keycloak` map those systems' export files onto it.
 *
 * A record's `line` is its line in a JSON Lines or CSV file (where the record starts), and its
 * position (1, 2, ...) in the `users` array of a Firebase or Keycloak file.
 */
import { AppError } from '../errors.ts';

export const IMPORT_FORMATS = ['jsonl', 'csv', 'auth0', 'firebase', 'keycloak'] as const;
export type ImportFormat = typeof IMPORT_FORMATS[number];

export interface RawRecord {
  line: number;
  /** The record's fields under Tessera's names; a string `problem` when the line could not be read at all. */
  fields: Record<string, unknown> | string;
  /** Something the mapping could not carry over, said in the report (e.g. Firebase's hash). */
  note?: string;
}

/** The format a file name suggests, when none is given. */
export function formatOfFile(file: string): ImportFormat {
  return /\.csv$/i.test(file) ? 'csv' : 'jsonl';
}

export function parseImportFile(text: string, format: ImportFormat): RawRecord[] {
  switch (format) {
    case 'jsonl':
      return jsonLines(text).map(({ line, value }) => ({ line, fields: isObject(value) ? value : typeof value === 'string' ? value : 'a record must be a JSON object' }));
    case 'csv':
      return csvRecords(text);
    case 'auth0':
      return jsonLines(text).map(({ line, value }) => (isObject(value) ? { line, fields: fromAuth0(value) } : { line, fields: typeof value === 'string' ? value : 'a record must be a JSON object' }));
    case 'firebase':
      return usersArray(text, 'firebase').map((user, index) => ({ line: index + 1, ...fromFirebase(user) }));
    case 'keycloak':
      return usersArray(text, 'keycloak').map((user, index) => ({ line: index + 1, ...fromKeycloak(user) }));
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Each non-blank line parsed; a line that is not JSON becomes its problem (a string). */
function jsonLines(text: string): Array<{ line: number; value: unknown }> {
  const records: Array<{ line: number; value: unknown }> = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index]!.replace(/\r$/, '');
    if (!line.trim()) continue;
    try {
      records.push({ line: index + 1, value: JSON.parse(line) as unknown });
    } catch {
      records.push({ line: index + 1, value: 'not valid JSON' });
    }
  }
  return records;
}

/** RFC 4180: quoted fields may hold commas, newlines and doubled quotes; the first row names the columns. */
function csvRecords(text: string): RawRecord[] {
  const rows: Array<{ line: number; cells: string[] }> = [];
  let cells: string[] = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index]!;
    if (quoted) {
      if (char === '"' && text[index + 1] === '"') {
        cell += '"';
        index += 1;
      } else if (char === '"') {
        quoted = false;
      } else {
        if (char === '\n') line += 1;
        cell += char;
      }
    } else if (char === '"' && cell === '') {
      quoted = true;
    } else if (char === ',') {
      cells.push(cell);
      cell = '';
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[index + 1] === '\n') index += 1;
      cells.push(cell);
      if (cells.length > 1 || cells[0] !== '') rows.push({ line: rowLine, cells });
      cells = [];
      cell = '';
      line += 1;
      rowLine = line;
    } else {
      cell += char;
    }
  }
  cells.push(cell);
  if (cells.length > 1 || cells[0] !== '') rows.push({ line: rowLine, cells });
  const [header, ...body] = rows;
  if (!header) return [];
  const names = header.cells.map((name) => name.trim());
  return body.map(({ line: at, cells: values }) => {
    if (values.length !== names.length) return { line: at, fields: `expected ${names.length} columns, found ${values.length}` };
    const fields: Record<string, unknown> = {};
    for (const [index, name] of names.entries()) {
      const value = values[index]!;
      if (value === '') continue;
      if (name === 'roles') fields.roles = value.split(';').map((role) => role.trim()).filter(Boolean);
      else if (name === 'email_verified') fields.email_verified = /^(true|1|yes)$/i.test(value) ? true : /^(false|0|no)$/i.test(value) ? false : value;
      else fields[name] = value;
    }
    return { line: at, fields };
  });
}

function usersArray(text: string, format: 'firebase' | 'keycloak'): unknown[] {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new AppError('ERR_INVALID_INPUT', `the ${format} file is not valid JSON`);
  }
  const users = isObject(document) ? document.users : undefined;
  if (!Array.isArray(users)) throw new AppError('ERR_INVALID_INPUT', `the ${format} file has no "users" array`);
  return users;
}

function defined(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined && value !== null && value !== ''));
}

/** Auth0's user export (and its password-hash export, which says `passwordHash`): bcrypt hashes. */
function fromAuth0(user: Record<string, unknown>): Record<string, unknown> {
  const oid = isObject(user._id) ? user._id.$oid : undefined;
  return defined({
    email: user.email,
    email_verified: user.email_verified,
    name: user.name,
    given_name: user.given_name,
    family_name: user.family_name,
    created_at: isObject(user.created_at) ? user.created_at.$date : user.created_at,
    external_id: user.user_id ?? (typeof oid === 'string' ? `auth0|${oid}` : undefined),
    password_hash: user.passwordHash ?? user.password_hash,
  });
}

/**
 * `firebase auth:export`: Firebase's hashes are its own scrypt variant keyed with the project's
 * secret signer key, so no password comes over; those people choose one through a link.
 */
function fromFirebase(user: unknown): Omit<RawRecord, 'line'> {
  if (!isObject(user)) return { fields: 'a user must be a JSON object' };
  const created = Number(user.createdAt);
  return {
    fields: defined({
      email: user.email,
      email_verified: user.emailVerified,
      name: user.displayName,
      external_id: user.localId,
      created_at: Number.isFinite(created) && created > 0 ? new Date(created).toISOString() : undefined,
    }),
    ...(user.passwordHash !== undefined && { note: 'Firebase\'s scrypt hash needs the project\'s signer key: imported without a password' }),
  };
}

/** Keycloak's realm export: a pbkdf2 or argon2 credential becomes the PHC string of the same hash. */
function fromKeycloak(user: unknown): Omit<RawRecord, 'line'> {
  if (!isObject(user)) return { fields: 'a user must be a JSON object' };
  const credential = Array.isArray(user.credentials) ? user.credentials.find((entry) => isObject(entry) && entry.type === 'password') as Record<string, unknown> | undefined : undefined;
  const hash = credential ? keycloakHash(credential) : undefined;
  const roles = Array.isArray(user.realmRoles) ? user.realmRoles.filter((role) => typeof role === 'string' && !/^default-roles-|^offline_access$|^uma_authorization$/.test(role)) : undefined;
  return {
    fields: defined({
      email: user.email,
      email_verified: user.emailVerified,
      given_name: user.firstName,
      family_name: user.lastName,
      name: [user.firstName, user.lastName].filter((part) => typeof part === 'string' && part).join(' ') || undefined,
      external_id: user.id,
      created_at: typeof user.createdTimestamp === 'number' ? new Date(user.createdTimestamp).toISOString() : undefined,
      roles: roles?.length ? roles : undefined,
      password_hash: typeof hash === 'string' ? hash : undefined,
    }),
    ...(isObject(hash) && { note: hash.note }),
  };
}

function keycloakHash(credential: Record<string, unknown>): string | { note: string } {
  try {
    const secret = JSON.parse(String(credential.secretData)) as { value?: string; salt?: string };
    const data = JSON.parse(String(credential.credentialData)) as { hashIterations?: number; algorithm?: string; additionalParameters?: Record<string, string[]> };
    const value = Buffer.from(secret.value ?? '', 'base64');
    const salt = Buffer.from(secret.salt ?? '', 'base64');
    const b64 = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '');
    const iterations = data.hashIterations ?? 0;
    switch (data.algorithm) {
      case 'pbkdf2-sha256':
      case 'pbkdf2-sha512':
        return `$${data.algorithm}$${iterations}$${b64(salt)}$${b64(value)}`;
      case 'pbkdf2':
        return `$pbkdf2$${iterations}$${b64(salt)}$${b64(value)}`;
      case 'argon2': {
        const parameter = (name: string, fallback: string) => data.additionalParameters?.[name]?.[0] ?? fallback;
        const type = parameter('type', 'id') === 'i' ? 'argon2i' : 'argon2id';
        const version = parameter('version', '1.3') === '1.0' ? 16 : 19;
        return `$${type}$v=${version}$m=${parameter('memory', '7168')},t=${iterations},p=${parameter('parallelism', '1')}$${b64(salt)}$${b64(value)}`;
      }
      default:
        return { note: `Keycloak's ${String(data.algorithm)} credential has no mapping: imported without a password` };
    }
  } catch {
    return { note: 'Keycloak\'s credential could not be read: imported without a password' };
  }
}
