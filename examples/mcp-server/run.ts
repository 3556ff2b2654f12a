/**
 * Runs the example MCP server:
 *
 *   ISSUER=https://id.example.com PORT=4100 node examples/mcp-server/run.ts
 *
 * Then, once, on Tessera's side (the resource indicator must match exactly):
 *
 *   tessera resources create --audience http://localhost:4100/mcp --scope mcp:tools --name "Example MCP server"
 *
 * PUBLIC_URL: the server's public base URL when a proxy fronts it (the resource is PUBLIC_URL/mcp).
 */
import { startMcpServer } from './server.ts';

const issuer = process.env.ISSUER;
if (!issuer) {
  console.error('ISSUER is required');
  process.exit(2);
}
const server = await startMcpServer({
  issuer,
  port: Number(process.env.PORT || 4100),
  ...(process.env.HOST && { host: process.env.HOST }),
  ...(process.env.PUBLIC_URL && { publicUrl: process.env.PUBLIC_URL }),
});
console.log(`example MCP server at ${server.resource} (tools: whoami, add; scope mcp:tools)`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close().then(() => process.exit(0), () => process.exit(1));
  });
}
