import { readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * The CLI's HTTP client. Every command except `serve` talks to a running Mailroom over its API,
 * because one process owns the embedded store (see docs/architecture.md).
 *   MAILROOM_URL     default http://<MAILROOM_HOST or 127.0.0.1>:<MAILROOM_HTTP_PORT or 8080>
 *   MAILROOM_TOKEN   default: the admin token saved in $MAILROOM_DATA_DIR/admin-token
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class ServerUnreachable extends Error {}

export function baseUrl(env = process.env): string {
  if (env.MAILROOM_URL) return env.MAILROOM_URL.replace(/\/+$/, '');
  const host = env.MAILROOM_HOST && env.MAILROOM_HOST !== '0.0.0.0' ? env.MAILROOM_HOST : '127.0.0.1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${env.MAILROOM_HTTP_PORT ?? '8080'}`;
}

export async function resolveToken(env = process.env): Promise<string> {
  if (env.MAILROOM_TOKEN) return env.MAILROOM_TOKEN;
  const file = path.resolve(env.MAILROOM_DATA_DIR ?? './.mailroom', 'admin-token');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    throw new Error(`no token: set MAILROOM_TOKEN, or run this where ${file} exists (written by the first \`mailroom serve\`)`);
  }
}

export async function request<T = any>(method: string, p: string, body?: unknown, opts: { raw?: boolean } = {}): Promise<T> {
  const url = baseUrl() + p;
  const token = await resolveToken();
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (err) {
    throw new ServerUnreachable(`cannot reach Mailroom at ${baseUrl()} (${(err as any)?.cause?.code ?? (err as Error).message}); is \`mailroom serve\` running? Set MAILROOM_URL to point elsewhere.`);
  }
  if (!res.ok) {
    const text = await res.text();
    let problem: any = {};
    try { problem = JSON.parse(text); } catch {}
    throw new ApiError(res.status, problem.code ?? 'http_error', problem.detail ?? `HTTP ${res.status}`);
  }
  if (opts.raw) return Buffer.from(await res.arrayBuffer()) as T;
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}
