/**
 * Which peers are trusted proxies (TRUSTED_PROXIES), decided the same way everywhere a forwarded
 * header is read: the client address (rate-limit.ts), the request's host (edge.ts) and a
 * forwarded client certificate (oidc/client-certificates.ts).
 */
import { BlockList, isIP } from 'node:net';

export function trustedProxyList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, prefix] = entry.split('/');
    const family = isIP(address!) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address!, family);
    else list.addSubnet(address!, Number(prefix), family);
  }
  return list;
}

/** An IP address as sockets and proxies write it ("::ffff:192.0.2.1", "192.0.2.1:443", "[2001:db8::1]:443"), or undefined. */
export function normalizeAddress(address: string | undefined): string | undefined {
  const trimmed = address?.trim()
    .replace(/^\[([^\]]+)\](:\d+)?$/, '$1')
    .replace(/^(\d+\.\d+\.\d+\.\d+):\d+$/, '$1');
  if (!trimmed) return undefined;
  const plain = trimmed.startsWith('::ffff:') && isIP(trimmed.slice(7)) === 4 ? trimmed.slice(7) : trimmed;
  return isIP(plain) ? plain : undefined;
}

export function isTrusted(proxies: BlockList, address: string): boolean {
  return proxies.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/** Whether a socket's peer address (as the socket gives it) is one of the trusted proxies. */
export function peerIsTrusted(proxies: BlockList, remoteAddress: string | undefined): boolean {
  const peer = normalizeAddress(remoteAddress);
  return peer !== undefined && isTrusted(proxies, peer);
}
