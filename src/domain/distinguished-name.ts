/**
 * Distinguished names compared as structures, never as strings (RFC 4514, RFC 5280 section 4.1.2.4).
 * A registered DN is parsed from its RFC 4514 text; a certificate's subject is read from its DER.
 * Both become a list of RDNs, each a set of (attribute type OID, value): so `CN=svc\,O=Org` (one
 * attribute whose value holds a comma) can never equal `CN=svc,O=Org` (two RDNs), `CN=a+O=b` (one
 * multi-valued RDN) never equals `CN=a,O=b`, and `cn`, `CN` and `2.5.4.3` are the same type.
 */
import type { X509Certificate } from 'node:crypto';

/** One attribute: the type as a dotted OID, the value as `s:` + text for strings, else `#` + DER hex. */
export interface DnAttribute {
  readonly type: string;
  readonly value: string;
}

export type Rdn = readonly DnAttribute[];
export type ParsedDn = readonly Rdn[];

/** Short names from RFC 4514 section 3, RFC 4519 and the ones certificates commonly carry. */
const ATTRIBUTE_TYPES: Readonly<Record<string, string>> = {
  CN: '2.5.4.3', SN: '2.5.4.4', SERIALNUMBER: '2.5.4.5', C: '2.5.4.6', L: '2.5.4.7', ST: '2.5.4.8', S: '2.5.4.8',
  STREET: '2.5.4.9', O: '2.5.4.10', OU: '2.5.4.11', TITLE: '2.5.4.12', BUSINESSCATEGORY: '2.5.4.15', POSTALCODE: '2.5.4.17',
  GN: '2.5.4.42', GIVENNAME: '2.5.4.42', INITIALS: '2.5.4.43', GENERATIONQUALIFIER: '2.5.4.44', DNQUALIFIER: '2.5.4.46',
  PSEUDONYM: '2.5.4.65', ORGANIZATIONIDENTIFIER: '2.5.4.97', DC: '0.9.2342.19200300.100.1.25', UID: '0.9.2342.19200300.100.1.1',
  E: '1.2.840.113549.1.9.1', EMAIL: '1.2.840.113549.1.9.1', EMAILADDRESS: '1.2.840.113549.1.9.1',
};

export class DnSyntaxError extends Error {}

const SPECIALS = new Set([',', '+', '"', '\\', '<', '>', ';', '=', '#', ' ']);
const HEX_PAIR = /^[0-9a-fA-F]{2}$/;

/**
 * Parses RFC 4514 text ("CN=svc,O=Org"). Also accepted, as RFC 2253 parsers did: spaces around
 * separators and quoted values (`CN="svc,O=Org"`). Throws DnSyntaxError on anything else, an
 * unknown attribute short name, an empty DN or an empty value included.
 */
export function parseDn(text: string): ParsedDn {
  let at = 0;
  const fail = (why: string): never => {
    throw new DnSyntaxError(`${why} at position ${at + 1}`);
  };
  const skipSpaces = () => {
    while (text[at] === ' ') at += 1;
  };

  function attributeType(): string {
    skipSpaces();
    const match = /^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)/.exec(text.slice(at));
    if (!match) fail('expected an attribute type such as CN or 2.5.4.3');
    const name = match![0];
    at += name.length;
    if (/^\d/.test(name)) {
      if (name.split('.').some((arc) => arc.length > 1 && arc.startsWith('0'))) fail(`${name} is not an OID`);
      return name;
    }
    const oid = ATTRIBUTE_TYPES[name.toUpperCase()];
    if (!oid) throw new DnSyntaxError(`unknown attribute type ${name} (write its OID instead, e.g. 2.5.4.3 for CN)`);
    return oid;
  }

  function hexValue(): string {
    at += 1;
    const match = /^(?:[0-9a-fA-F]{2})+/.exec(text.slice(at));
    if (!match) fail('expected hex digits after #');
    at += match![0].length;
    const der = Buffer.from(match![0], 'hex');
    const element = readElement(der, 0);
    if (element.end !== der.length) fail('the hex value is not one BER element');
    return attributeValue(element.tag, der.subarray(element.start, element.end), der);
  }

  /** Collects escaped bytes so `\C3\A9` is é; invalid UTF-8 is refused. */
  function stringValue(quoted: boolean): string {
    const bytes: number[] = [];
    let trailingSpaces = 0;
    const push = (chunk: string, escaped: boolean) => {
      for (const byte of Buffer.from(chunk, 'utf8')) bytes.push(byte);
      trailingSpaces = !escaped && chunk === ' ' ? trailingSpaces + 1 : 0;
    };
    if (quoted) at += 1;
    for (;;) {
      const char = text[at];
      if (char === undefined) {
        if (quoted) fail('unterminated quoted value');
        break;
      }
      if (quoted && char === '"') {
        at += 1;
        break;
      }
      if (!quoted && (char === ',' || char === '+')) break;
      if (char === '\\') {
        const next = text[at + 1];
        if (next !== undefined && SPECIALS.has(next)) {
          push(next, true);
          at += 2;
        } else if (HEX_PAIR.test(text.slice(at + 1, at + 3))) {
          bytes.push(parseInt(text.slice(at + 1, at + 3), 16));
          trailingSpaces = 0;
          at += 3;
        } else {
          fail('a backslash must escape a special character or two hex digits');
        }
        continue;
      }
      if (!quoted && (char === '"' || char === ';' || char === '<' || char === '>')) fail(`unescaped ${char}`);
      if (char === '\u0000') fail('NUL in a value');
      const codePoint = text.codePointAt(at)!;
      const chunk = String.fromCodePoint(codePoint);
      push(chunk, false);
      at += chunk.length;
    }
    // Unescaped spaces before the next separator are layout, not part of the value.
    const content = quoted ? bytes : bytes.slice(0, bytes.length - trailingSpaces);
    try {
      return `s:${new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(content))}`;
    } catch {
      return fail('escaped bytes are not UTF-8');
    }
  }

  const rdns: DnAttribute[][] = [];
  let rdn: DnAttribute[] = [];
  skipSpaces();
  if (at === text.length) fail('empty distinguished name');
  for (;;) {
    const type = attributeType();
    skipSpaces();
    if (text[at] !== '=') fail('expected =');
    at += 1;
    skipSpaces();
    const value = text[at] === '#' ? hexValue() : stringValue(text[at] === '"');
    if (value === 's:') fail('empty value');
    rdn.push({ type, value });
    skipSpaces();
    const separator = text[at];
    if (separator === undefined) break;
    at += 1;
    if (separator === ',') {
      rdns.push(rdn);
      rdn = [];
    } else if (separator !== '+') {
      fail(`unexpected ${separator}`);
    }
  }
  rdns.push(rdn);
  return rdns;
}

/** A problem with a DN's syntax, for registration, or undefined. */
export function dnProblem(text: string): string | undefined {
  try {
    parseDn(text);
    return undefined;
  } catch (error) {
    if (error instanceof DnSyntaxError) return error.message;
    throw error;
  }
}

/** The subject of a certificate, read from its DER (node:crypto's `subject` text cannot be trusted to round-trip). */
export function certificateSubject(certificate: X509Certificate): ParsedDn {
  const der = certificate.raw;
  const tbs = children(der, readElement(der, 0))[0]!;
  const fields = children(der, tbs);
  // tbsCertificate: [0] version (optional), serialNumber, signature, issuer, validity, subject.
  const offset = fields[0]!.tag === 0xa0 ? 1 : 0;
  const subject = fields[offset + 4]!;
  return children(der, subject).map((set) => children(der, set).map((sequence) => {
    const [type, value] = children(der, sequence);
    return { type: decodeOid(der.subarray(type!.start, type!.end)), value: attributeValue(value!.tag, der.subarray(value!.start, value!.end), der.subarray(value!.header, value!.end)) };
  }));
}

/**
 * RFC 4514 lists RDNs last-to-first against the certificate's order, but many tools (node:crypto,
 * @peculiar/x509, which Tessera's own `pki` uses) write them in certificate order. Either order of
 * the same RDNs matches; a different number, grouping, type or value of attributes never does.
 */
export function dnMatches(subject: ParsedDn, registered: ParsedDn): boolean {
  const actual = dnKey(subject);
  return actual === dnKey([...registered].reverse()) || actual === dnKey(registered);
}

function dnKey(dn: ParsedDn): string {
  return JSON.stringify(dn.map((rdn) => rdn.map((attribute) => `${attribute.type}=${attribute.value}`).sort()));
}

interface Element {
  tag: number;
  header: number;
  start: number;
  end: number;
}

function readElement(der: Uint8Array, at: number): Element {
  const tag = der[at];
  let length = der[at + 1];
  if (tag === undefined || length === undefined || (tag & 0x1f) === 0x1f) throw new DnSyntaxError('malformed DER');
  let start = at + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 3) throw new DnSyntaxError('malformed DER length');
    length = 0;
    for (let index = 0; index < octets; index += 1) length = length * 256 + der[start + index]!;
    start += octets;
  }
  const end = start + length;
  if (end > der.length) throw new DnSyntaxError('truncated DER');
  return { tag, header: at, start, end };
}

function children(der: Uint8Array, parent: Element): Element[] {
  const found: Element[] = [];
  for (let at = parent.start; at < parent.end;) {
    const child = readElement(der, at);
    found.push(child);
    at = child.end;
  }
  return found;
}

function decodeOid(bytes: Uint8Array): string {
  const arcs: number[] = [];
  let value = 0;
  for (const byte of bytes) {
    value = value * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      if (!arcs.length) arcs.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else arcs.push(value);
      value = 0;
    }
  }
  return arcs.join('.');
}

/** Character strings compare by their text whatever their ASN.1 string type; anything else by its DER. */
function attributeValue(tag: number, content: Uint8Array, whole?: Uint8Array): string {
  const bytes = Buffer.from(content);
  switch (tag) {
    case 0x0c: // UTF8String
    case 0x12: // NumericString
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x1a: // VisibleString
      return `s:${bytes.toString('utf8')}`;
    case 0x14: // TeletexString, in practice Latin-1
      return `s:${bytes.toString('latin1')}`;
    case 0x1e: // BMPString, UTF-16BE
      return `s:${Buffer.from(bytes).swap16().toString('utf16le')}`;
    case 0x1c: { // UniversalString, UTF-32BE
      let text = '';
      for (let index = 0; index + 3 < bytes.length; index += 4) text += String.fromCodePoint(bytes.readUInt32BE(index));
      return `s:${text}`;
    }
    default: {
      const der = whole ?? Buffer.concat([Buffer.from([tag]), encodedLength(content.length), bytes]);
      return `#${Buffer.from(der).toString('hex')}`;
    }
  }
}

function encodedLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return Buffer.from([0x80 | octets.length, ...octets]);
}
