/**
 * How the MCP tools reach Mailroom: through its REST API, with the caller's bearer token, so
 * scopes, validation, idempotency and error codes are exactly the REST ones. On `/mcp` the request
 * goes to the same Hono app in-process; `mailroom mcp` (stdio) sends it over HTTP to a running server.
 */
export interface ApiInit {
  method: string;
  headers?: Record<string, string>;
  body?: string;
  /** Aborts the request when the MCP call is cancelled. */
  signal?: AbortSignal;
}

export type ApiFetch = (path: string, init: ApiInit) => Promise<Response>;

/** Something with Hono's `app.request(path, init)`. */
export interface InProcessApp {
  request(input: string, init?: RequestInit): Response | Promise<Response>;
}

/** Calls `app` in-process, as `authorization` (the `/mcp` request's own header). */
export function inProcessApiFetch(app: InProcessApp, authorization: string): ApiFetch {
  return async (path, init) => app.request(path, {
    method: init.method,
    headers: { ...init.headers, authorization },
    body: init.body,
    signal: init.signal,
  });
}

/** Calls a Mailroom at `baseUrl` over HTTP with `token`. */
export function httpApiFetch(baseUrl: string, token: string, fetchImpl: typeof fetch = fetch): ApiFetch {
  const base = baseUrl.replace(/\/+$/, '');
  return async (path, init) => {
    try {
      return await fetchImpl(base + path, {
        method: init.method,
        headers: { ...init.headers, authorization: `Bearer ${token}` },
        body: init.body,
        signal: init.signal,
      });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`cannot reach Mailroom at ${base} (${cause?.code ?? cause?.message ?? (err as Error).message}); is \`mailroom serve\` running there? Set MAILROOM_URL to point elsewhere`, { cause: err });
    }
  };
}
