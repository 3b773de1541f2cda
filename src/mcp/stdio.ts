import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { baseUrl } from '../cli/client.ts';
import { httpApiFetch } from './api-fetch.ts';
import { createMcpServer } from './tools.ts';

/**
 * `mailroom mcp`: MCP over stdio for a running Mailroom at MAILROOM_URL (default
 * http://127.0.0.1:8080), as MAILROOM_TOKEN. stdout carries the protocol and nothing else; every
 * message of our own goes to stderr. Returns the exit code for a refusal to start, or null once
 * serving (the process then ends when the client closes stdin).
 */
export function mcpCommand(env: NodeJS.ProcessEnv = process.env): number | null {
  const token = env.MAILROOM_TOKEN?.trim();
  if (!token) {
    process.stderr.write('mailroom mcp: MAILROOM_TOKEN is required (a Mailroom API token, e.g. from `mailroom token create`); set MAILROOM_URL too when the server is not at http://127.0.0.1:8080\n');
    return 2;
  }
  const url = baseUrl(env);
  const api = httpApiFetch(url, token);
  const handle = serveStdio(() => createMcpServer(api), {
    onerror: (err) => process.stderr.write(`mailroom mcp: ${err.message}\n`),
  });
  // The client closing stdin ends the session; leave no keep-alive socket holding the process.
  process.stdin.once('end', () => { void handle.close().finally(() => process.exit(0)); });
  process.stderr.write(`mailroom mcp: serving MCP on stdio for ${url}\n`);
  return null;
}
