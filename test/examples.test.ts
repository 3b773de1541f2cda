import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { Agent, OpenAIProvider, Runner, tool as agentsTool } from '@openai/agents';
import { APICallError, generateText, Output, stepCountIs, streamText, tool } from 'ai';
import { z } from 'zod';
import { run as runLangchain } from '../examples/langchain/agent.ts';
import { run as runOpenaiAgents } from '../examples/openai-agents/agent.ts';
import { INSTRUCTIONS, type ExampleOptions } from '../examples/shared/options.ts';
import { run as runVercelAi } from '../examples/vercel-ai/agent.ts';
import {
  contentText, lastToolResult, parseMaybeJson, reply, startLlmStub, toolResults,
  type ChatCompletionRequest, type LlmStub, type ScriptStep,
} from './helpers/llm-stub.ts';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';

/**
 * The framework examples (examples/): each runs against a real Mailroom and the scripted
 * OpenAI-compatible stub model (helpers/llm-stub.ts), which calls the Mailroom tools the way a model
 * would. A "prospect" inbox on the same server answers the agent's email through the reply API (local
 * delivery), and the tests check what happened in Mailroom and what the model was shown. The stub
 * itself is tested first against real clients (AI SDK, OpenAI client via the Agents SDK), faults included.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const EXAMPLES = [
  { name: 'openai-agents', run: runOpenaiAgents },
  { name: 'langchain', run: runLangchain },
  { name: 'vercel-ai', run: runVercelAi },
] as const;

const TOOL_NAMES = ['create_inbox', 'get_message', 'send_email', 'wait_for_reply'];
const SUBJECT = 'A short call next week?';

// ---- The model: a reactive script that drives the outreach like a model would ----

/** The recipient, as the example's task prompt names it ("Email <address> to propose …"). */
function recipientOf(request: ChatCompletionRequest): string {
  const prompt = request.messages.filter((m) => m.role === 'user').map((m) => contentText(m.content)).join('\n');
  const to = /Email (\S+@\S+) to propose/.exec(prompt)?.[1];
  if (!to) throw new Error(`no recipient in the task prompt: ${prompt}`);
  return to;
}

/** The first line of the sender's text inside the agent view's fence. */
function fencedFirstLine(agentView: string): string | undefined {
  return /<(UNTRUSTED-[0-9a-f]{16})>\n([^]*?)\n<\/\1>/.exec(agentView)?.[2].split('\n')[0];
}

function expectedSummary(to: string, replyLine: string): string {
  return `Summary: ${to} answered "${replyLine}" (injection risk low).`;
}

/**
 * Decides each turn from the conversation alone (so one stub serves concurrent runs): create the
 * inbox, send, send the same email again (a model repeating itself must not send twice), wait for
 * the reply, read it, then answer with a summary quoting the reply's first line and its verdict.
 */
const outreachScript: ScriptStep = (request) => {
  const last = lastToolResult(request);
  if (!last) return reply.toolCall('create_inbox', { display_name: 'Outreach agent' });
  const result = parseMaybeJson(last.content);
  if (last.name !== 'get_message' && (typeof result !== 'object' || result === null)) return reply.text(`tool ${last.name} failed: ${last.content}`);
  const r = result as Record<string, string>;
  switch (last.name) {
    case 'create_inbox':
      return reply.toolCall('send_email', { inbox_id: r.inbox_id, to: recipientOf(request), subject: SUBJECT, text: 'Hi! Would a 20-minute call next week work for you?' });
    case 'send_email': {
      const sends = toolResults(request).filter((t) => t.name === 'send_email');
      return sends.length < 2 ? reply.toolCall('send_email', sends[0].arguments) : reply.toolCall('wait_for_reply', { thread_id: r.thread_id });
    }
    case 'wait_for_reply':
      return r.timed_out ? reply.text('No reply came.') : reply.toolCall('get_message', { message_id: r.message_id });
    case 'get_message':
      return reply.text(`Summary: ${recipientOf(request)} answered "${fencedFirstLine(last.content)}" (injection risk ${/Injection risk: (\w+)/.exec(last.content)?.[1]}).`);
    default:
      return reply.text(`unexpected tool ${last.name}`);
  }
};

// ---- The prospect: another inbox on the same server that answers the first mail it gets ----

interface Prospect {
  id: string;
  address: string;
}

async function createProspect(m: TestMailroom, username: string): Promise<Prospect> {
  const r = await m.api('POST', '/v1/inboxes', { username });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

/** Waits (long-poll) for the agent's email in the prospect's inbox and answers it in its thread. */
async function answerFirstEmail(m: TestMailroom, prospect: Prospect, text: string): Promise<{ received: any; answer: any }> {
  for (const deadline = Date.now() + 25_000; Date.now() < deadline;) {
    const w = await m.api('GET', `/v1/inboxes/${prospect.id}/messages/wait?since=1970-01-01T00:00:00Z&timeout=5`);
    assert.equal(w.status, 200, JSON.stringify(w.body));
    if (!w.body.message) continue;
    const answer = await m.api('POST', `/v1/messages/${w.body.message.id}/reply`, { text });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    return { received: w.body.message, answer: answer.body };
  }
  throw new Error(`no email reached ${prospect.address}`);
}

/** The scopes examples/README.md tells users the agent's token needs, and no more. */
async function agentToken(m: TestMailroom): Promise<string> {
  const r = await m.api('POST', '/v1/tokens', { scopes: ['inboxes:write', 'messages:send', 'messages:read'], name: 'examples' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.token;
}

function exampleOptions(m: TestMailroom, token: string, stub: LlmStub, to: string, taskId: string): ExampleOptions {
  return {
    mailroom: { baseUrl: m.api.base, token },
    openai: { baseURL: stub.url, apiKey: stub.apiKey, model: stub.model },
    to, topic: 'a short call', taskId, waitTimeoutMs: 20_000, maxSteps: 10,
  };
}

// ---- The stub itself, against real clients ----

describe('llm stub', () => {
  // Every stub a test starts is closed after the suite, also when the test failed half-way.
  const started: LlmStub[] = [];
  const startStub = async (options: Parameters<typeof startLlmStub>[0]) => {
    const stub = await startLlmStub(options);
    started.push(stub);
    return stub;
  };
  after(async () => { await Promise.all(started.map((s) => s.close())); });

  function aiSdkModel(s: LlmStub, settings: { supportsStructuredOutputs?: boolean } = {}) {
    return createOpenAICompatible({ name: 'stub', baseURL: s.url, apiKey: s.apiKey, includeUsage: true, ...settings }).chatModel(s.model);
  }

  test('streams tool calls and text that the AI SDK and the OpenAI client (Agents SDK) reassemble', async () => {
    const weather = (request: ChatCompletionRequest) => {
      const last = lastToolResult(request);
      return last ? reply.text(`Forecast: ${last.content}`) : reply.toolCall('get_weather', { city: 'Paris', unit: 'celsius' });
    };
    const stub = await startStub({ script: weather });
    const seen: unknown[] = [];
    const streamed = streamText({
      model: aiSdkModel(stub), prompt: 'Weather in Paris?', stopWhen: stepCountIs(3),
      tools: { get_weather: tool({ inputSchema: z.object({ city: z.string(), unit: z.string() }), execute: async (input) => { seen.push(input); return 'sunny, 21 degrees'; } }) },
    });
    assert.equal(await streamed.text, 'Forecast: sunny, 21 degrees');
    assert.deepEqual(seen, [{ city: 'Paris', unit: 'celsius' }]);
    const [first, second] = stub.chatRequests();
    assert.equal(first.stream, true);
    assert.deepEqual(first.stream_options, { include_usage: true });
    assert.equal(first.tools?.[0].function.name, 'get_weather');
    assert.deepEqual(toolResults(second).map((t) => [t.name, t.content]), [['get_weather', 'sunny, 21 degrees']]);
    assert.equal((await streamed.totalUsage).outputTokens! > 0, true, 'the usage chunk was read');

    const agent = new Agent({
      name: 'weather', instructions: 'Answer with the forecast.', model: stub.model,
      tools: [agentsTool({ name: 'get_weather', description: 'Forecast', parameters: z.object({ city: z.string(), unit: z.string() }), execute: async ({ city }) => `rain in ${city}` })],
    });
    const runner = new Runner({ modelProvider: new OpenAIProvider({ baseURL: stub.url, apiKey: stub.apiKey, useResponses: false }), tracingDisabled: true });
    const result = await runner.run(agent, 'Weather in Paris?', { stream: true });
    await result.completed;
    assert.equal(result.finalOutput, 'Forecast: rain in Paris');
    assert.equal(stub.chatRequests().filter((r) => r.stream).length, 4, 'the Agents SDK streamed both turns too');
  });

  test('structured output: records response_format json_schema, returns what the script says, and malformed JSON fails the parse', async () => {
    const verdict = { intent: 'interested', confidence: 0.9 };
    const stub = await startStub({ script: [reply.json(verdict), reply.malformedJson()] });
    const schema = z.object({ intent: z.enum(['interested', 'not_now']), confidence: z.number() });
    const model = aiSdkModel(stub, { supportsStructuredOutputs: true });
    const ok = await generateText({ model, prompt: 'Classify: "sounds good"', output: Output.object({ schema }) });
    assert.deepEqual(ok.output, verdict);
    const asked = stub.chatRequests()[0].response_format;
    assert.equal(asked?.type, 'json_schema');
    assert.deepEqual(Object.keys((asked?.json_schema?.schema as any).properties).sort(), ['confidence', 'intent']);

    await assert.rejects(generateText({ model, prompt: 'Classify again', output: Output.object({ schema }) }), /parse|JSON|No (object|output) generated/i);
  });

  test('faults: 429 with Retry-After is retried after the wait, 500 surfaces, an exhausted script says so', async () => {
    const stub = await startStub({ script: [reply.rateLimited(1), reply.text('after the wait'), reply.error(500)] });
    const model = aiSdkModel(stub);
    const ok = await generateText({ model, prompt: 'hi', maxRetries: 1 });
    assert.equal(ok.text, 'after the wait');
    const [limited, retried] = stub.requests;
    assert.ok(retried.at - limited.at >= 900, `retried ${retried.at - limited.at} ms after the 429 (Retry-After: 1)`);

    await assert.rejects(generateText({ model, prompt: 'hi', maxRetries: 0 }), (err: unknown) => {
      assert.ok(APICallError.isInstance(err), String(err));
      assert.equal(err.statusCode, 500);
      assert.match(err.message, /scripted 500/);
      return true;
    });
    await assert.rejects(generateText({ model, prompt: 'hi', maxRetries: 0 }), /script exhausted \(it has 3 step\(s\); this is request 4\)/);
  });

  test('a delay longer than the client timeout: the client gives up, the stub writes nothing and keeps serving; close() does not wait for it', async () => {
    const stub = await startStub({ script: [reply.delay(30_000, reply.text('too late')), reply.text('on time')] });
    const model = aiSdkModel(stub);
    const started = Date.now();
    await assert.rejects(generateText({ model, prompt: 'hi', maxRetries: 0, abortSignal: AbortSignal.timeout(300) }), /abort|timeout/i);
    assert.ok(Date.now() - started < 5000, 'the client timed out, the stub did not answer');
    assert.equal((await generateText({ model, prompt: 'again', maxRetries: 0 })).text, 'on time');
    const closing = Date.now();
    await stub.close();
    assert.ok(Date.now() - closing < 2000, 'close() does not wait for the pending delay');
  });

  test('GET /v1/models lists the model; a wrong API key is a 401; every request is recorded', async () => {
    const stub = await startStub({ script: [], model: 'tiny-model', apiKey: 'sk-right' });
    const models = await fetch(`${stub.url}/models`, { headers: { authorization: 'Bearer sk-right' } });
    assert.equal(models.status, 200);
    assert.deepEqual((await models.json()).data.map((m: any) => m.id), ['tiny-model']);
    const wrong = await fetch(`${stub.url}/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-wrong' }, body: '{}' });
    assert.equal(wrong.status, 401);
    assert.equal((await wrong.json()).error.type, 'invalid_api_key');
    assert.deepEqual(stub.requests.map((r) => `${r.method} ${r.path}`), ['GET /v1/models', 'POST /v1/chat/completions']);
  });
});

// ---- The examples, per engine ----

for (const engine of ENGINES) {
  describe(`${engine}: framework examples`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let stub: LlmStub;
    let token: string;
    before(async () => {
      m = await startTestMailroom(engine);
      stub = await startLlmStub({ script: outreachScript });
      token = await agentToken(m);
    });
    after(async () => {
      await stub?.close();
      await m?.destroy();
    });

    for (const example of EXAMPLES) {
      test(`${example.name}: provisions an inbox, sends once, waits for the reply, reads it in the agent view and summarizes it`, { timeout: 30_000 }, async () => {
        const prospect = await createProspect(m, `prospect-${example.name}`);
        const replyLine = `Tuesday at 10:00 works for the ${example.name} team.`;
        const taskId = `test-${engine}-${example.name}`;
        const requestsBefore = stub.chatRequests().length;

        const [result, prospectSide] = await Promise.all([
          example.run(exampleOptions(m, token, stub, prospect.address, taskId)),
          answerFirstEmail(m, prospect, `${replyLine}\nSpeak soon,\nProspect`),
        ]);

        // The final output is the model's final text, which quoted the reply it was shown.
        assert.equal(result.output, expectedSummary(prospect.address, replyLine));

        const requests = stub.chatRequests().slice(requestsBefore);
        assert.deepEqual(requests[0].tools?.map((t) => t.function.name).sort(), TOOL_NAMES, 'the model was offered the four Mailroom tools');
        assert.equal(requests[0].model, stub.model);
        const instructions = requests[0].messages.find((msg) => msg.role === 'system' || msg.role === 'developer');
        assert.equal(contentText(instructions?.content), INSTRUCTIONS);
        const shown = toolResults(requests.at(-1)!);
        assert.deepEqual(shown.map((t) => t.name), ['create_inbox', 'send_email', 'send_email', 'wait_for_reply', 'get_message']);
        const [created, sent, sentAgain, waited, read] = shown.map((t) => t.content);

        // The inbox exists.
        const inbox = parseMaybeJson(created) as { inbox_id: string; address: string };
        const got = await m.api('GET', `/v1/inboxes/${inbox.inbox_id}`);
        assert.equal(got.status, 200);
        assert.equal(got.body.address, inbox.address);
        assert.equal(got.body.display_name, 'Outreach agent');

        // Sent once, with the task's idempotency key, although the model asked twice.
        const first = parseMaybeJson(sent) as { message_id: string; thread_id: string };
        assert.equal((parseMaybeJson(sentAgain) as { message_id: string }).message_id, first.message_id, 'the repeated send returned the original message');
        const outbound = await m.api('GET', `/v1/inboxes/${inbox.inbox_id}/messages?direction=outbound`);
        assert.deepEqual(outbound.body.data.map((x: any) => x.id), [first.message_id]);
        const message = await m.api('GET', `/v1/messages/${first.message_id}`);
        assert.equal(message.body.delivery.idempotency_key, `${taskId}/first-touch/${prospect.address}`);
        assert.equal(prospectSide.received.subject, SUBJECT);
        assert.equal(prospectSide.received.from.address, inbox.address);
        const prospectInbound = await m.api('GET', `/v1/inboxes/${prospect.id}/messages?direction=inbound`);
        assert.equal(prospectInbound.body.data.length, 1, 'the prospect got one email');

        // The reply arrived in the agent's inbox, in the thread, and the model read it through the agent view.
        const inbound = await m.api('GET', `/v1/inboxes/${inbox.inbox_id}/messages?direction=inbound`);
        assert.equal(inbound.body.data.length, 1);
        const [answer] = inbound.body.data;
        assert.equal(answer.from.address, prospect.address);
        assert.equal(answer.thread_id, first.thread_id);
        assert.equal(answer.subject, `Re: ${SUBJECT}`);
        assert.deepEqual(parseMaybeJson(waited), { timed_out: false, message_id: answer.id, from: prospect.address, kind: answer.kind });
        assert.equal(fencedFirstLine(read), replyLine, 'the reply text reached the model inside the agent view fence');
        assert.match(read, /Injection risk: low/, 'with its verdict');

        await waitFor(async () => (await m.api('GET', `/v1/messages/${first.message_id}`)).body.delivery.status === 'sent', 15_000, 'the first email to be delivered');
      });
    }

    test('script form: `node examples/<framework>/agent.ts <to>` reads its configuration from the environment and prints the summary', { skip: engine !== ENGINES[0] && 'one engine is enough', timeout: 60_000 }, async () => {
      await Promise.all(EXAMPLES.map(async (example) => {
        const prospect = await createProspect(m, `script-${example.name}`);
        const replyLine = `Script ${example.name}: Thursday suits me.`;
        const env = {
          PATH: process.env.PATH ?? '', MAILROOM_URL: m.api.base, MAILROOM_TOKEN: token,
          OPENAI_BASE_URL: stub.url, OPENAI_API_KEY: stub.apiKey, OPENAI_MODEL: stub.model, MAILROOM_WAIT_SECONDS: '20',
        };
        const [out] = await Promise.all([
          runScript(`examples/${example.name}/agent.ts`, [prospect.address, 'a short call'], env),
          answerFirstEmail(m, prospect, replyLine),
        ]);
        assert.equal(out.code, 0, `${example.name} exited with ${out.code}: ${out.stderr}`);
        assert.equal(out.stdout.trim(), expectedSummary(prospect.address, replyLine));
      }));
      const noArgs = await runScript('examples/vercel-ai/agent.ts', [], { PATH: process.env.PATH ?? '' });
      assert.notEqual(noArgs.code, 0);
      assert.match(noArgs.stderr, /usage: node examples\/<framework>\/agent\.ts <recipient address>/);
    });

    test('MCP configs: valid JSON; the stdio command they name serves the tools, the Streamable HTTP entry works with its bearer header', { skip: engine !== ENGINES[0] && 'one engine is enough', timeout: 30_000 }, async () => {
      const claude = JSON.parse(await readFile(`${ROOT}examples/mcp/claude_desktop_config.json`, 'utf8'));
      const cursor = JSON.parse(await readFile(`${ROOT}examples/mcp/cursor-mcp.json`, 'utf8'));
      const stdioEntries = [claude.mcpServers.mailroom, cursor.mcpServers.mailroom];
      for (const entry of stdioEntries) {
        assert.deepEqual(entry.args.slice(-2), ['mailroom', 'mcp']);
        assert.deepEqual(Object.keys(entry.env).sort(), ['MAILROOM_TOKEN', 'MAILROOM_URL']);
      }
      assert.deepEqual(claude.mcpServers.mailroom, cursor.mcpServers.mailroom, 'the same stdio entry in both');

      const entry = stdioEntries[0];
      const transport = new StdioClientTransport({
        command: entry.command, args: entry.args.map((a: string) => fillPlaceholders(a, m)), cwd: '/', stderr: 'pipe',
        env: { PATH: process.env.PATH ?? '', ...Object.fromEntries(Object.entries(entry.env).map(([k, v]) => [k, fillPlaceholders(v as string, m)])) },
      });
      await expectMailroomTools(transport);

      const http = cursor.mcpServers['mailroom-http'];
      assert.equal(http.url, 'http://127.0.0.1:8080/mcp');
      const headers = { authorization: fillPlaceholders(http.headers.Authorization, m) };
      await expectMailroomTools(new StreamableHTTPClientTransport(new URL(fillPlaceholders(http.url, m)), { requestInit: { headers } }));
    });
  });
}

/** The configs' placeholders replaced with this test's server, token and checkout. */
function fillPlaceholders(value: string, m: TestMailroom): string {
  return value
    .replaceAll('/absolute/path/to/mailroom', ROOT.replace(/\/$/, ''))
    .replaceAll('http://127.0.0.1:8080', m.api.base)
    .replaceAll('mr_your_token_here', m.adminToken);
}

async function expectMailroomTools(transport: StdioClientTransport | StreamableHTTPClientTransport): Promise<void> {
  const client = new Client({ name: 'examples-test', version: '1.0.0' });
  await client.connect(transport);
  try {
    const names = (await client.listTools()).tools.map((t) => t.name);
    for (const n of ['create_inbox', 'send_email', 'wait_for_email', 'get_message']) assert.ok(names.includes(n), `${n} in ${names}`);
    const listed = await client.callTool({ name: 'list_inboxes', arguments: { limit: 1 } });
    assert.ok(!listed.isError, JSON.stringify(listed.content));
  } finally {
    await client.close();
  }
}

function runScript(file: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
