/**
 * An MCP server (Model Context Protocol, Streamable HTTP) protected by Tessera, built on the
 * official TypeScript SDK (@modelcontextprotocol/sdk). What the MCP authorization specification
 * asks of a server, and nothing of Tessera's but its discovery document, so it can be copied out:
 *
 * - RFC 9728 protected resource metadata at /.well-known/oauth-protected-resource/mcp (and at the
 *   root one): this server's resource indicator, Tessera as its authorization server, its scope;
 * - every request to /mcp needs a Bearer access token; without a good one the answer is 401 with
 *   `WWW-Authenticate: Bearer resource_metadata="..."`, which is how an MCP client finds Tessera;
 * - tokens are Tessera's RFC 9068 JWTs, verified offline with `jose` against Tessera's JWKS:
 *   `typ: at+jwt`, the issuer, `aud` exactly this server's resource URL (RFC 8707: a token for
 *   another API is refused), not expired, and the `mcp:tools` scope (403 insufficient_scope if not).
 *
 * On Tessera's side (README, "AI agents (MCP)"): register this server as a resource,
 *   tessera resources create --audience http://localhost:4100/mcp --scope mcp:tools --name "Notes MCP"
 * and let agents register themselves (DYNAMIC_CLIENT_REGISTRATION=open) or name a metadata document
 * (CLIENT_ID_METADATA_DOCUMENTS=on). The SDK's client does the rest: the 401, the metadata,
 * registration, PKCE, the person's sign-in and consent in a browser, the token, the tool call.
 *
 * Stateless: each POST gets a fresh McpServer and transport (the SDK's stateless mode), so any
 * number of instances can serve behind a load balancer.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { z } from 'zod';

export const MCP_SCOPE = 'mcp:tools';
const MCP_PATH = '/mcp';
const METADATA_PATH = '/.well-known/oauth-protected-resource';

export interface McpServerOptions {
  /** Tessera's issuer identifier, exactly as in its discovery document. */
  issuer: string;
  /** 0 picks a free port. */
  port: number;
  host?: string;
  /**
   * The public base URL, when it differs from http://localhost:PORT (behind a proxy). The resource
   * indicator is this plus /mcp, and must be registered with Tessera exactly so.
   */
  publicUrl?: string;
}

export interface RunningMcpServer {
  /** The resource indicator and the MCP endpoint: BASE/mcp. */
  readonly resource: string;
  readonly url: string;
  close(): Promise<void>;
}

interface AccessTokenClaims extends JWTPayload {
  client_id?: string;
  scope?: string;
}

/** The tools: small, and one that shows whose token it is, so a test (or a person) can see the chain. */
function buildMcpServer(): McpServer {
  const server = new McpServer({ name: 'tessera-example-mcp', version: '1.0.0' });
  server.registerTool('whoami', {
    title: 'Who am I',
    description: 'Tells which person and which agent the access token was issued to',
  }, async (extra) => {
    const claims = (extra.authInfo?.extra ?? {}) as AccessTokenClaims;
    return { content: [{ type: 'text', text: JSON.stringify({ sub: claims.sub, client_id: claims.client_id, scope: claims.scope }) }] };
  });
  server.registerTool('add', {
    title: 'Add',
    description: 'Adds two numbers',
    inputSchema: { a: z.number(), b: z.number() },
  }, async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] }));
  return server;
}

class Refusal extends Error {
  readonly status: 401 | 403;
  readonly error: 'invalid_token' | 'insufficient_scope' | undefined;

  constructor(status: 401 | 403, error: Refusal['error'], description: string) {
    super(description);
    this.status = status;
    this.error = error;
  }
}

export async function startMcpServer(options: McpServerOptions): Promise<RunningMcpServer> {
  const issuer = options.issuer.replace(/\/+$/, '');
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  /** Tessera's JWKS, found through its discovery document once, then cached and refreshed by jose. */
  async function keys() {
    if (!jwks) {
      const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json() as { jwks_uri: string };
      jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
    }
    return jwks;
  }

  const httpServer = http.createServer();
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, options.host ?? 'localhost', () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;
  const base = (options.publicUrl ?? `http://localhost:${port}`).replace(/\/+$/, '');
  const resource = `${base}${MCP_PATH}`;
  const metadataUrl = `${base}${METADATA_PATH}${MCP_PATH}`;
  const metadata = JSON.stringify({
    resource,
    authorization_servers: [issuer],
    scopes_supported: [MCP_SCOPE],
    bearer_methods_supported: ['header'],
    resource_name: 'Tessera example MCP server',
  });

  async function authenticate(request: http.IncomingMessage): Promise<AuthInfo> {
    const [scheme, token, ...rest] = (request.headers.authorization ?? '').split(' ');
    if (!token || rest.length || scheme?.toLowerCase() !== 'bearer') throw new Refusal(401, undefined, 'a Bearer access token is required');
    let claims: AccessTokenClaims;
    try {
      ({ payload: claims } = await jwtVerify<AccessTokenClaims>(token, await keys(), {
        issuer,
        audience: resource,
        typ: 'at+jwt',
        algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      }));
    } catch (error) {
      throw new Refusal(401, 'invalid_token', (error as Error).message);
    }
    const scopes = (claims.scope ?? '').split(' ').filter(Boolean);
    if (!scopes.includes(MCP_SCOPE)) throw new Refusal(403, 'insufficient_scope', `the token lacks ${MCP_SCOPE}`);
    return { token, clientId: String(claims.client_id ?? ''), scopes, ...(claims.exp && { expiresAt: claims.exp }), resource: new URL(resource), extra: { ...claims } };
  }

  function refuse(response: http.ServerResponse, refusal: Refusal): void {
    const error = refusal.error ? `, error="${refusal.error}", error_description="${refusal.message.replace(/["\\]/g, '')}"` : '';
    response.writeHead(refusal.status, {
      'WWW-Authenticate': `Bearer resource_metadata="${metadataUrl}", scope="${MCP_SCOPE}"${error}`,
      'Content-Type': 'application/json',
    });
    response.end(JSON.stringify({ error: refusal.error ?? 'invalid_request', error_description: refusal.message }));
  }

  httpServer.on('request', function handleRequest(request, response) {
    const path = new URL(request.url ?? '/', base).pathname;
    if (request.method === 'GET' && (path === `${METADATA_PATH}${MCP_PATH}` || path === METADATA_PATH)) {
      response.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'public, max-age=300' });
      response.end(metadata);
      return;
    }
    if (path !== MCP_PATH) {
      response.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":"not_found"}');
      return;
    }
    (async () => {
      let auth: AuthInfo;
      try {
        auth = await authenticate(request);
      } catch (error) {
        if (error instanceof Refusal) return refuse(response, error);
        throw error;
      }
      // Stateless mode keeps no session: there is no server-to-client stream to open (GET) or end (DELETE).
      if (request.method !== 'POST') {
        response.writeHead(405, { Allow: 'POST', 'Content-Type': 'application/json' }).end('{"error":"method_not_allowed"}');
        return;
      }
      const server = buildMcpServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      response.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(Object.assign(request, { auth }), response);
    })().catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ error: 'server_error', error_description: (error as Error).message }));
    });
  });

  return {
    resource,
    url: base,
    close: () => new Promise<void>((resolve) => {
      httpServer.close(() => resolve());
      httpServer.closeAllConnections();
    }),
  };
}
