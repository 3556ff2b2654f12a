import { loadConfig } from './config.ts';
import { startServer } from './main.ts';

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'serve') {
    const server = await startServer(loadConfig());
    process.once('SIGTERM', () => void server.close());
    process.once('SIGINT', () => void server.close());
  }
}
