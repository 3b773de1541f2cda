import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A scripted, OpenAI-compatible model server for tests: a real HTTP listener on 127.0.0.1 that any
 * OpenAI client (the `openai` package behind the OpenAI Agents SDK, LangChain's ChatOpenAI, the
 * Vercel AI SDK's openai-compatible provider, plain fetch) can use as its base URL.
 *
 *   const stub = await startLlmStub({ script: [reply.toolCall('create_inbox', { display_name: 'Bot' }), reply.text('Done.')] });
 *   new OpenAI({ baseURL: stub.url, apiKey: stub.apiKey });   // stub.url ends in /v1
 *   …
 *   stub.chatRequests()   // every chat completion request, parsed, in arrival order
 *   await stub.close();
 *
 * Endpoints: `POST /v1/chat/completions` (JSON, or Server-Sent Events chunks when the request says
 * `stream: true`, with a usage chunk for `stream_options.include_usage`), `GET /v1/models`. There is
 * no Responses API endpoint: every SDK used here can be pointed at chat completions.
 *
 * What the model says comes from the script, one reply per chat request:
 * - an array of steps, consumed in order (a request past the end gets a 500 naming the exhaustion,
 *   so a test that drives one step too many fails loudly);
 * - or one function called for every request, which can react to what the model is shown (the
 *   last tool result, see `lastToolResult`), the way a real model would.
 * A step is a `StubReply` or a function returning one. Replies are an assistant message (text, tool
 * calls, or both; `reply.json` for structured output, where the stub returns whatever the script
 * says whatever `response_format` asked for) or a fault: an HTTP error (429 with Retry-After, 500…),
 * a delay before answering (longer than the client's timeout to test it), a raw body (a broken
 * response), or malformed JSON content.
 *
 * Every request is recorded, errors and unknown paths included, with its parsed body, headers and
 * arrival time, so tests can assert what the model was shown and when a client retried.
 */

// ---- The OpenAI Chat Completions shapes the stub reads (only the fields it needs are typed) ----

export interface ContentPart {
  type: string;
  text?: string;
}

export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content?: string | ContentPart[] | null;
  tool_calls?: ChatToolCall[];
  tool_call_id?: string;
  name?: string;
}

export interface ChatTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean | null };
}

export interface ChatCompletionRequest {
  model: string;
  messages: ChatMessage[];
  tools?: ChatTool[];
  tool_choice?: unknown;
  /** `{ type: 'json_schema', json_schema: { name, schema, strict } }` for structured output, or `json_object`. */
  response_format?: { type: 'text' | 'json_object' | 'json_schema'; json_schema?: { name: string; schema?: Record<string, unknown>; strict?: boolean | null } };
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  [field: string]: unknown;
}

// ---- Scripts ----

export interface ToolCallSpec {
  name: string;
  /** An object is sent JSON-encoded; a string is sent as is (so a test can send broken JSON). */
  arguments: unknown;
  /** Default: a fresh `call_<n>`. */
  id?: string;
}

export type StubReply =
  | { kind: 'message'; content: string | null; toolCalls: ToolCallSpec[]; finishReason?: string }
  | { kind: 'error'; status: number; message: string; type: string; retryAfterSeconds?: number; retryAfterMs?: number }
  | { kind: 'delay'; ms: number; then: StubReply }
  | { kind: 'raw'; status: number; contentType: string; body: string };

export interface ScriptContext {
  /** 0 for the first chat request this stub received, then 1, 2… (faults included). */
  call: number;
  /** Every request recorded so far, this one last. */
  requests: readonly RecordedRequest[];
}

export type ScriptStep = StubReply | ((request: ChatCompletionRequest, ctx: ScriptContext) => StubReply | Promise<StubReply>);
export type StubScript = ScriptStep | ScriptStep[];

/** Builders for the replies a script returns. */
export const reply = {
  /** A final assistant answer. */
  text: (content: string): StubReply => ({ kind: 'message', content, toolCalls: [] }),
  /** One tool call (`arguments` is JSON-encoded unless it is a string). */
  toolCall: (name: string, args: unknown, id?: string): StubReply => ({ kind: 'message', content: null, toolCalls: [{ name, arguments: args, id }] }),
  /** Several tool calls in one turn (parallel tool calls), optionally with text beside them. */
  toolCalls: (calls: ToolCallSpec[], content: string | null = null): StubReply => ({ kind: 'message', content, toolCalls: calls }),
  /** Structured output: the content is `value` as JSON, whatever `response_format` the request had. */
  json: (value: unknown): StubReply => ({ kind: 'message', content: JSON.stringify(value), toolCalls: [] }),
  /** Content that claims to be JSON and is not (an unterminated object). */
  malformedJson: (): StubReply => ({ kind: 'message', content: '{"summary": "the reply was cut off', toolCalls: [] }),
  /** An OpenAI-style error document with this HTTP status. */
  error: (status: number, opts: { message?: string; type?: string; retryAfterSeconds?: number; retryAfterMs?: number } = {}): StubReply => ({
    kind: 'error', status, message: opts.message ?? `llm stub: scripted ${status}`, type: opts.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error'),
    retryAfterSeconds: opts.retryAfterSeconds, retryAfterMs: opts.retryAfterMs,
  }),
  /** 429 with `Retry-After: <seconds>`. */
  rateLimited: (retryAfterSeconds: number): StubReply => reply.error(429, { message: 'llm stub: rate limited', type: 'rate_limit_exceeded', retryAfterSeconds }),
  /** Answers `then` after `ms` (unless the client hung up first: then nothing is written). */
  delay: (ms: number, then: StubReply): StubReply => ({ kind: 'delay', ms, then }),
  /** Any status and body, e.g. a truncated JSON document. */
  raw: (status: number, body: string, contentType = 'application/json'): StubReply => ({ kind: 'raw', status, contentType, body }),
};

// ---- Reading a request, for reactive scripts ----

/** The text of a message's content, whether a string or an array of parts. */
export function contentText(content: ChatMessage['content']): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  return content.map((p) => p.text ?? '').join('');
}

export interface ToolResult {
  /** The tool's name, from the assistant turn that called it. */
  name: string;
  /** The call's arguments, parsed (the raw string when they are not JSON). */
  arguments: unknown;
  callId: string;
  /** What the tool returned, as the model was shown it. */
  content: string;
}

/** Every tool result in the conversation, oldest first, each matched to the call that asked for it. */
export function toolResults(request: ChatCompletionRequest): ToolResult[] {
  const calls = new Map<string, ChatToolCall>();
  const results: ToolResult[] = [];
  for (const m of request.messages) {
    for (const c of m.tool_calls ?? []) calls.set(c.id, c);
    if (m.role !== 'tool' || !m.tool_call_id) continue;
    const call = calls.get(m.tool_call_id);
    results.push({
      name: call?.function.name ?? '(unknown call)', arguments: parseMaybeJson(call?.function.arguments ?? ''),
      callId: m.tool_call_id, content: contentText(m.content),
    });
  }
  return results;
}

/** The tool result the model is answering now (the conversation's last message), or null. */
export function lastToolResult(request: ChatCompletionRequest): ToolResult | null {
  const last = request.messages.at(-1);
  if (last?.role !== 'tool') return null;
  return toolResults(request).at(-1) ?? null;
}

/** JSON-decodes `text`, or returns it unchanged when it is not JSON. */
export function parseMaybeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// ---- The server ----

export interface RecordedRequest {
  method: string;
  /** Path and query, e.g. "/v1/chat/completions". */
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The parsed JSON body (undefined without one; the raw text when it is not JSON). */
  body: unknown;
  /** Date.now() when the request had been read. */
  at: number;
}

export interface LlmStubOptions {
  script: StubScript;
  /** The id `GET /v1/models` lists. Default "stub-model". */
  model?: string;
  /** Requests without `Authorization: Bearer <apiKey>` get a 401. Default "sk-stub". */
  apiKey?: string;
}

export interface LlmStub {
  /** The base URL for OpenAI clients: `http://127.0.0.1:<port>/v1`. */
  url: string;
  apiKey: string;
  model: string;
  /** Replace the script (the call counter keeps counting). */
  script: StubScript;
  /** Every request received, in arrival order. */
  requests: RecordedRequest[];
  /** The chat completion requests' bodies, in arrival order. */
  chatRequests(): ChatCompletionRequest[];
  /** Stops listening and drops every connection (pending delays are cancelled); idempotent. */
  close(): Promise<void>;
}

export async function startLlmStub(options: LlmStubOptions): Promise<LlmStub> {
  const model = options.model ?? 'stub-model';
  const apiKey = options.apiKey ?? 'sk-stub';
  const timers = new Set<NodeJS.Timeout>();
  let chatCalls = 0;
  let nextCallId = 0;
  let nextResponseId = 0;

  const stub: LlmStub = {
    url: '', apiKey, model, script: options.script, requests: [],
    chatRequests: () => stub.requests.filter((r) => r.method === 'POST' && r.path.startsWith('/v1/chat/completions')).map((r) => r.body as ChatCompletionRequest),
    close: async () => {},
  };

  /** The reply for the `call`-th chat request: the next queued step, or the one function. */
  async function scripted(request: ChatCompletionRequest, call: number): Promise<StubReply> {
    const ctx: ScriptContext = { call, requests: stub.requests };
    let step: ScriptStep | undefined;
    if (Array.isArray(stub.script)) {
      step = stub.script[call];
      if (step === undefined) return reply.error(500, { message: `llm stub: script exhausted (it has ${stub.script.length} step(s); this is request ${call + 1})` });
    } else {
      step = stub.script;
    }
    return typeof step === 'function' ? step(request, ctx) : step;
  }

  function answer(res: http.ServerResponse, r: StubReply, request: ChatCompletionRequest | null): void {
    if (res.destroyed || res.writableEnded) return; // the client gave up (its timeout): nothing to say
    switch (r.kind) {
      case 'delay': {
        const t = setTimeout(() => { timers.delete(t); answer(res, r.then, request); }, r.ms);
        timers.add(t);
        res.once('close', () => { clearTimeout(t); timers.delete(t); });
        return;
      }
      case 'error': {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (r.retryAfterSeconds !== undefined) headers['retry-after'] = String(r.retryAfterSeconds);
        if (r.retryAfterMs !== undefined) headers['retry-after-ms'] = String(r.retryAfterMs);
        res.writeHead(r.status, headers).end(JSON.stringify({ error: { message: r.message, type: r.type, param: null, code: null } }));
        return;
      }
      case 'raw':
        res.writeHead(r.status, { 'content-type': r.contentType }).end(r.body);
        return;
      case 'message': {
        const completion = toCompletion(r, request);
        if (request?.stream) streamCompletion(res, completion, Boolean(request.stream_options?.include_usage));
        else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completion));
      }
    }
  }

  function toCompletion(r: Extract<StubReply, { kind: 'message' }>, request: ChatCompletionRequest | null): Completion {
    const toolCalls: ChatToolCall[] = r.toolCalls.map((c) => ({
      id: c.id ?? `call_${++nextCallId}`, type: 'function',
      function: { name: c.name, arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments ?? {}) },
    }));
    const promptTokens = Math.ceil(JSON.stringify(request?.messages ?? []).length / 4);
    const completionTokens = Math.ceil(((r.content ?? '').length + toolCalls.reduce((n, c) => n + c.function.arguments.length, 0)) / 4) || 1;
    return {
      id: `chatcmpl-stub-${++nextResponseId}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: request?.model ?? model,
      choices: [{
        index: 0,
        message: { role: 'assistant', content: r.content, ...(toolCalls.length ? { tool_calls: toolCalls } : {}), refusal: null },
        finish_reason: r.finishReason ?? (toolCalls.length ? 'tool_calls' : 'stop'),
        logprobs: null,
      }],
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    };
  }

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers,
      body: text ? parseMaybeJson(text) : undefined, at: Date.now(),
    };
    stub.requests.push(recorded);
    try {
      if (req.headers.authorization !== `Bearer ${apiKey}`) {
        return answer(res, reply.error(401, { message: 'llm stub: invalid API key', type: 'invalid_api_key' }), null);
      }
      const route = `${recorded.method} ${recorded.path.split('?')[0]}`;
      if (route === 'GET /v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ object: 'list', data: [{ id: model, object: 'model', created: 0, owned_by: 'mailroom-llm-stub' }] }));
        return;
      }
      if (route !== 'POST /v1/chat/completions') return answer(res, reply.error(404, { message: `llm stub: no route ${route}` }), null);
      const request = recorded.body as ChatCompletionRequest;
      if (typeof request !== 'object' || request === null || !Array.isArray(request.messages)) {
        return answer(res, reply.error(400, { message: 'llm stub: the body is not a chat completion request' }), null);
      }
      answer(res, await scripted(request, chatCalls++), request);
    } catch (err) {
      // A script that throws is a broken test: say so to the client rather than hang it.
      answer(res, reply.error(500, { message: `llm stub: the script threw: ${(err as Error).stack ?? err}` }), null);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  let closing: Promise<void> | null = null;
  stub.close = () => closing ??= new Promise<void>((resolve) => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return stub;
}

// ---- Streaming ----

interface Completion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: number; message: { role: 'assistant'; content: string | null; tool_calls?: ChatToolCall[]; refusal: null }; finish_reason: string; logprobs: null }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** Splits `s` into up to `n` pieces, so clients have to reassemble deltas as with a real model. */
function pieces(s: string, n = 3): string[] {
  if (s.length <= 1) return [s];
  const size = Math.ceil(s.length / n);
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

/** The completion as `chat.completion.chunk` events: role, content pieces, each tool call (name first, then its arguments in pieces), finish, usage. */
function streamCompletion(res: http.ServerResponse, c: Completion, includeUsage: boolean): void {
  const { message, finish_reason } = c.choices[0];
  const chunk = (delta: Record<string, unknown>, finishReason: string | null = null) => ({
    id: c.id, object: 'chat.completion.chunk', created: c.created, model: c.model,
    choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
  });
  const events: unknown[] = [chunk({ role: 'assistant', content: '' })];
  if (message.content) for (const p of pieces(message.content)) events.push(chunk({ content: p }));
  (message.tool_calls ?? []).forEach((call, index) => {
    events.push(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] }));
    for (const p of pieces(call.function.arguments)) events.push(chunk({ tool_calls: [{ index, function: { arguments: p } }] }));
  });
  events.push(chunk({}, finish_reason));
  if (includeUsage) events.push({ id: c.id, object: 'chat.completion.chunk', created: c.created, model: c.model, choices: [], usage: c.usage });
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  for (const e of events) res.write(`data: ${JSON.stringify(e)}\n\n`);
  res.end('data: [DONE]\n\n');
}
