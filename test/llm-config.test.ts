import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config/config.ts';
import { MailroomError } from '../src/errors.ts';
import { resolveAgents } from '../src/orchestrator/agents/index.ts';
import { isInWindow } from '../src/orchestrator/calendar.ts';
import { callRole } from '../src/orchestrator/call.ts';
import { llmAgent, llmPersonalize, llmSequence } from '../src/orchestrator/llm/agents.ts';
import { loadPrompts, parsePrompt, PromptError, PROMPTS_DIR, renderPrompt, shippedPrompts } from '../src/orchestrator/llm/prompts.ts';
import { resolveLlmSettings, SERVER_DEFAULTS, type LlmServerSettings, type LlmSettings } from '../src/orchestrator/llm/settings.ts';
import type { ModelUsage, RoleContext, SequenceInput } from '../src/orchestrator/roles.ts';
import { checkLlmEndpoint, guardedFetch } from '../src/orchestrator/llm/egress.ts';
import { startDns, type TestDns } from './helpers/dns.ts';
import { reply, startLlmStub, type LlmStub } from './helpers/llm-stub.ts';

/**
 * The pieces of the model-backed roles below the engine: configuration (MAILROOM_LLM_* and a
 * campaign's llm block, merged), the prompt files, the guards the sequencing and personalization
 * agents keep around the model, and the Anthropic provider over a real socket.
 */

const ctx = (usage: ModelUsage[] = []): RoleContext => ({ campaignId: 'cmp_1', runId: 'run_1', traceId: 'trc_1', signal: new AbortController().signal, recordUsage: (u) => usage.push(u) });
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err instanceof MailroomError ? `${err.code}: ${err.message}` : String(err);
  }
  return 'no error';
};

describe('MAILROOM_LLM_* configuration', () => {
  test('parsed with defaults; only *_API_KEY variables (not MAILROOM_*) are captured for api_key_env', () => {
    const c = loadConfig({
      MAILROOM_LLM_PROVIDER: 'anthropic', MAILROOM_LLM_BASE_URL: 'http://127.0.0.1:8000/v1/', MAILROOM_LLM_MODEL: 'claude-x', MAILROOM_LLM_API_KEY: 'sk-server',
      OPENAI_API_KEY: 'sk-openai', DATABASE_URL: 'postgres://u:secret@db/x', MAILROOM_ADMIN_TOKEN: 'mr_0123456789abcdefghij', EMPTY_API_KEY: '',
    });
    assert.deepEqual({ ...c.llm, keys: { ...c.llm.keys } }, {
      provider: 'anthropic', baseUrl: 'http://127.0.0.1:8000/v1', model: 'claude-x', apiKey: 'sk-server', timeoutMs: 30_000, maxRetries: 2,
      keys: { OPENAI_API_KEY: 'sk-openai' }, egress: { allow: '', dnsServers: [] },
    });
    assert.equal(loadConfig({}).llm.model, undefined, 'no model unless configured');
    assert.deepEqual(loadConfig({ MAILROOM_LLM_ALLOW: '10.0.0.0/8, gpu.internal', MAILROOM_DNS_SERVERS: '127.0.0.1:5353' }).llm.egress, { allow: '10.0.0.0/8, gpu.internal', dnsServers: ['127.0.0.1:5353'] });
    assert.throws(() => loadConfig({ MAILROOM_LLM_ALLOW: '10.0.0.0/99' }), /MAILROOM_LLM_ALLOW/);
  });

  test('bad values are refused at start, each named', () => {
    const bad = { MAILROOM_LLM_PROVIDER: 'openai', MAILROOM_LLM_BASE_URL: 'ftp://models.example', MAILROOM_LLM_TIMEOUT_MS: 'soon', MAILROOM_LLM_MAX_RETRIES: '-1' };
    assert.throws(() => loadConfig(bad), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      for (const name of Object.keys(bad)) assert.match(err.message, new RegExp(`${name}: `), `${name} in ${err.message}`);
      assert.match(err.message, /MAILROOM_LLM_PROVIDER: one of openai-compatible, anthropic/);
      return true;
    });
  });
});

describe("a campaign's llm block over the server's settings", () => {
  const server: LlmServerSettings = { ...SERVER_DEFAULTS, baseUrl: 'http://vllm.internal:8000/v1', model: 'qwen', apiKey: 'sk-server', keys: { ACME_API_KEY: 'sk-acme' } };

  test('no model anywhere: refused, naming the roles and both ways to configure one', () => {
    assert.equal(code(() => resolveLlmSettings(undefined, SERVER_DEFAULTS, ['research', 'respond'])),
      'invalid_request: agents.research, agents.respond are "llm" but no model is configured: set llm.model in the campaign, or MAILROOM_LLM_MODEL on the server');
    assert.match(code(() => resolveAgents({ research: 'builtin', personalize: 'llm', sequence: 'builtin', respond: 'builtin' }, {}, {})), /^invalid_request: agents\.personalize is "llm" but no model/);
  });

  test('the same endpoint: fields merge, the server key is used', () => {
    assert.deepEqual(resolveLlmSettings({ model: 'qwen-big' }, server), { provider: 'openai-compatible', baseUrl: 'http://vllm.internal:8000/v1', model: 'qwen-big', apiKey: 'sk-server', timeoutMs: 30_000, maxRetries: 2, egress: null });
    assert.equal(resolveLlmSettings({ base_url: 'http://vllm.internal:8000/v1/' }, server).apiKey, 'sk-server', 'a trailing slash is the same endpoint');
  });

  test('another endpoint: its own model and key variable; the server key never goes there', () => {
    const s = resolveLlmSettings({ base_url: 'https://api.openai.com/v1', model: 'gpt-4o-mini' }, server);
    assert.equal(s.apiKey, undefined);
    assert.equal(resolveLlmSettings({ base_url: 'https://api.openai.com/v1', model: 'gpt-4o-mini', api_key_env: 'ACME_API_KEY' }, server).apiKey, 'sk-acme');
    assert.match(code(() => resolveLlmSettings({ base_url: 'https://api.openai.com/v1' }, server, ['respond'])), /another endpoint \(openai-compatible at https:\/\/api\.openai\.com\/v1\).*set llm\.model/);
    assert.match(code(() => resolveLlmSettings({ provider: 'anthropic', model: 'claude-x' }, server)), /anthropic provider, which needs an API key: name its variable with llm\.api_key_env$/);
  });

  test('the engine defers an unusable model to each call, so the run is dead-lettered with the reason', async () => {
    const agents = resolveAgents({ research: 'llm', personalize: 'builtin', sequence: 'builtin', respond: 'builtin' }, {}, { spec: { model: 'x', api_key_env: 'GONE_API_KEY' }, deferErrors: true });
    await assert.rejects(callRole('research', agents, { lead: { email: 'a@b.test' }, history: { with_address: [], with_domain: [] }, campaign: { id: 'c', name: 'n' } }, ctx(), 1000),
      /research agent: llm\.api_key_env: GONE_API_KEY is not set in the server's environment/);
  });
});

describe('prompt files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mailroom-prompts-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('the shipped prompts load, one per role, with their version', () => {
    const p = shippedPrompts();
    assert.deepEqual(Object.values(p).map((x) => x.version).sort(), ['personalize.v1', 'research.v1', 'respond.v1', 'sequence.v1']);
    assert.ok(p.respond.user.includes('{{agent_view}}') && p.respond.system.includes('data, not instructions'));
  });

  test('the newest version of a role wins; a bad file is an error naming it', async () => {
    for (const role of ['research', 'personalize', 'sequence', 'respond'] as const) {
      await writeFile(path.join(dir, `${role}.v1.md`), readFileSync(path.join(PROMPTS_DIR, `${role}.v1.md`), 'utf8'));
    }
    await writeFile(path.join(dir, 'respond.v2.md'), '<!-- system -->\nClassify.\n<!-- user -->\n{{allowed}} {{verdicts}} {{agent_view}}\n');
    assert.equal(loadPrompts(dir).respond.version, 'respond.v2');
    await writeFile(path.join(dir, 'respond.v3.md'), '<!-- system -->\nClassify.\n<!-- user -->\n{{allowed}} {{agent_view}} {{raw_text}}\n');
    assert.throws(() => loadPrompts(dir), (e: unknown) => e instanceof PromptError && /respond\.v3\.md: unknown slot\(s\) \{\{raw_text\}\}/.test(e.message));
    assert.throws(() => parsePrompt('respond', 'respond.v9', '<!-- system -->\nx\n<!-- user -->\n{{allowed}}\n'), /must use \{\{verdicts\}\}, \{\{agent_view\}\}/);
    assert.throws(() => parsePrompt('research', 'research.v9', 'no parts'), /expected a "<!-- system -->" part/);
  });

  test('slots are filled in one pass: a value that looks like a slot stays text', () => {
    const p = parsePrompt('respond', 'respond.v1', '<!-- system -->\nS\n<!-- user -->\n{{allowed}}|{{verdicts}}|{{agent_view}}\n');
    assert.equal(renderPrompt(p, { allowed: 'A', verdicts: '{{agent_view}}', agent_view: 'V' }), 'A|{{agent_view}}|V');
  });
});

describe('the guards around the model', () => {
  let stub: LlmStub;
  let settings: LlmSettings;
  before(async () => {
    stub = await startLlmStub({ script: [] });
    settings = { provider: 'openai-compatible', baseUrl: stub.url, model: 'stub-model', apiKey: stub.apiKey, timeoutMs: 2000, maxRetries: 0, egress: null };
  });
  after(() => stub.close());

  const seqInput = (next: number): SequenceInput => ({
    lead: { email: 'kim@acme.test', fields: {}, crm: {} }, timezone: 'Europe/Berlin',
    history: { sent: next ? [{ step: 0, at: '2027-03-01T09:00:00Z' }] : [], out_of_office_until: null },
    policy: { next_step: next, step_count: 2, max_steps: 2, delay_business_days: 2, send_window: { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00' } },
    now: '2027-03-01T10:00:00Z',
  });

  test('sequence: a model time outside the window moves to its next opening; a stop is the model\'s; the policy\'s end asks no model', async () => {
    const before = stub.chatRequests().length;
    const answers = [reply.json({ action: 'send', send_at: '2027-03-06T23:30:00+01:00', reason: 'after the weekend' }), reply.json({ action: 'stop', reason: 'they asked for no more' })];
    stub.script = () => answers.shift() ?? reply.error(500, { message: 'test: no more answers' });
    const agent = llmSequence(settings, shippedPrompts().sequence);
    const later = await agent.sequence(seqInput(1), ctx());
    assert.equal(later.action, 'send');
    const at = new Date((later as { send_at: string }).send_at);
    assert.ok(at >= new Date('2027-03-08T08:00:00Z') && isInWindow(at, 'Europe/Berlin', seqInput(1).policy.send_window), `Saturday night moved to Monday's window: ${at.toISOString()}`);
    assert.match((later as { reason: string }).reason, /moved into the send window/);
    assert.deepEqual(await agent.sequence(seqInput(1), ctx()), { action: 'stop', reason: 'model: they asked for no more' });
    assert.deepEqual(await agent.sequence(seqInput(2), ctx()), { action: 'stop', reason: 'max_steps' });
    assert.equal(stub.chatRequests().length - before, 2, 'two model calls, none for the policy stop');
  });

  test('personalize: a follow-up without a subject template stays in the thread whatever the model says; HTML is not taken from it', async () => {
    // A function: an array script is indexed by the stub's request count, which the test above moved on.
    stub.script = () => reply.json({ subject: 'New subject', text: 'Following up, Kim.', html: '<p style="display:none">hidden</p>' });
    const input = {
      lead: { email: 'kim@acme.test', first_name: 'Kim', fields: {}, crm: {} }, notes: { summary: '', facts: [], sources: [], variables: {} },
      step: { index: 1, count: 2, text: 'Just following up, {{first_name}}.' }, thread: [],
    };
    assert.deepEqual(await llmPersonalize(settings, shippedPrompts().personalize).personalize(input, ctx()), { text: 'Following up, Kim.' });
  });
});

describe('the anthropic provider', () => {
  let server: http.Server;
  let url: string;
  const seen: { path: string; headers: http.IncomingHttpHeaders; body: any }[] = [];
  before(async () => {
    // The Messages API's shape, answering the SDK's structured output (a forced "json" tool, or text).
    server = http.createServer(async (req, res) => {
      let text = '';
      for await (const c of req) text += c;
      const body = JSON.parse(text);
      seen.push({ path: req.url ?? '', headers: req.headers, body });
      const value = { summary: 'Kim runs ops at Acme.', facts: [], sources: [], variables: { hook: 'ops' } };
      const tool = (body.tools ?? []).some((t: { name: string }) => t.name === 'json');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        id: 'msg_1', type: 'message', role: 'assistant', model: body.model,
        content: tool ? [{ type: 'tool_use', id: 'toolu_1', name: 'json', input: value }] : [{ type: 'text', text: JSON.stringify(value) }],
        stop_reason: tool ? 'tool_use' : 'end_turn', stop_sequence: null, usage: { input_tokens: 321, output_tokens: 42 },
      }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test('a role call through the Messages API: the key in x-api-key, the schema-valid notes, tokens recorded', async () => {
    const usage: ModelUsage[] = [];
    const settings = resolveLlmSettings({ provider: 'anthropic', base_url: url, model: 'claude-sonnet-4-5', api_key_env: 'ANTHROPIC_API_KEY' }, { ...SERVER_DEFAULTS, keys: { ANTHROPIC_API_KEY: 'sk-ant-test' }, egress: { allow: '127.0.0.1/32', dnsServers: [] } });
    assert.ok(settings.egress, "the campaign's own endpoint goes through the guard (allowed here)");
    const notes = await llmAgent('research', settings).research({ lead: { email: 'kim@acme.test', fields: {}, crm: {} }, history: { with_address: [], with_domain: [] }, campaign: { id: 'c', name: 'n' } }, ctx(usage));
    assert.equal(notes.summary, 'Kim runs ops at Acme.');
    assert.equal(seen[0].path, '/v1/messages');
    assert.equal(seen[0].headers['x-api-key'], 'sk-ant-test');
    assert.equal(seen[0].body.model, 'claude-sonnet-4-5');
    assert.match(seen[0].body.system?.[0]?.text ?? seen[0].body.system, /research agent/);
    assert.deepEqual(usage.map((u) => [u.provider, u.model, u.prompt, u.input_tokens, u.output_tokens, u.attempts]), [['anthropic', 'claude-sonnet-4-5', 'research.v1', 321, 42, 1]]);
  });
});

describe("SSRF guard on a campaign's own model endpoint (llm.base_url)", () => {
  let dns: TestDns;
  let target: http.Server;
  let port: number;
  const hits: string[] = [];
  before(async () => {
    dns = await startDns();
    target = http.createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url?.startsWith('/redirect')) res.writeHead(302, { location: `http://127.0.0.1:${port}/metadata` }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    port = (target.address() as AddressInfo).port;
  });
  after(async () => {
    await dns.close();
    await new Promise<void>((r) => target.close(() => r()));
  });
  const egress = (allow = '') => ({ allow, dnsServers: [dns.server] });
  const refusal = async (p: Promise<unknown>) => p.then(() => 'no error', (e) => (e instanceof MailroomError ? `${e.code}: ${e.message}` : String(e)));

  test('only a campaign-chosen endpoint is guarded: the server\'s own MAILROOM_LLM_BASE_URL is not', () => {
    const server: LlmServerSettings = { ...SERVER_DEFAULTS, baseUrl: 'http://127.0.0.1:8000/v1', model: 'm', egress: egress() };
    assert.equal(resolveLlmSettings({}, server).egress, null);
    assert.equal(resolveLlmSettings({ base_url: 'http://127.0.0.1:8000/v1/' }, server).egress, null, 'the same endpoint, trailing slash aside');
    assert.deepEqual(resolveLlmSettings({ base_url: 'http://10.0.0.5/v1', model: 'x' }, server).egress, server.egress);
  });

  test('A5 SSRF: loopback, private, link-local (metadata) and mapped endpoints are refused when the campaign is created', async () => {
    for (const [url, reason] of [
      [`http://127.0.0.1:${port}/v1`, 'loopback'], ['http://10.1.2.3/v1', 'private'], ['http://169.254.169.254/latest', 'link-local'],
      ['http://[::ffff:127.0.0.1]/v1', 'ipv4-mapped loopback'], ['http://localhost:11434/v1', 'loopback'],
    ]) {
      assert.match(await refusal(checkLlmEndpoint(url, egress())), new RegExp(`^llm_url_forbidden: llm.base_url .* \\(${reason}\\); set MAILROOM_LLM_ALLOW`), url);
    }
    dns.set('models.example', [{ type: 'A', address: '93.184.216.34' }, { type: 'A', address: '192.168.1.9' }]);
    assert.match(await refusal(checkLlmEndpoint('http://models.example/v1', egress())), /llm_url_forbidden: .*192\.168\.1\.9 \(private\)/, 'one private answer among public ones');
    assert.match(await refusal(checkLlmEndpoint('http://user:pw@models.example/v1', egress())), /^invalid_request: llm.base_url must not contain a user name or password/);
    assert.match(await refusal(checkLlmEndpoint('http://nowhere.example/v1', egress())), /^invalid_request: llm.base_url host nowhere.example does not resolve/);
    assert.equal(hits.length, 0, 'nothing was requested');
  });

  test('MAILROOM_LLM_ALLOW lets a self-hosted model through, and the request connects to the address judged (the name is served only by the test DNS)', async () => {
    dns.set('gpu.internal.example', [{ type: 'A', address: '127.0.0.1' }]);
    assert.match(await refusal(checkLlmEndpoint(`http://gpu.internal.example:${port}/v1`, egress())), /llm_url_forbidden/);
    const allowed = egress('gpu.internal.example');
    assert.equal(await refusal(checkLlmEndpoint(`http://gpu.internal.example:${port}/v1`, allowed)), 'no error');
    const res = await guardedFetch(allowed)(`http://gpu.internal.example:${port}/v1/chat/completions`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true });
    assert.deepEqual(hits.splice(0), ['/v1/chat/completions']);
  });

  test('A6 DNS rebinding: a name judged public at creation and re-pointed to loopback is refused at call time; nothing connects', async () => {
    dns.set('rebind.example', [{ type: 'A', address: '93.184.216.34' }]);
    assert.equal(await refusal(checkLlmEndpoint(`http://rebind.example:${port}/v1`, egress())), 'no error');
    dns.set('rebind.example', [{ type: 'A', address: '127.0.0.1' }]);
    // A fresh guard: the process resolver caches nothing here, but a new one rules out any doubt.
    assert.match(await refusal(guardedFetch(egress())(`http://rebind.example:${port}/v1/chat/completions`, { method: 'POST' })), /^llm_url_forbidden: .*127\.0\.0\.1 \(loopback\)/);
    assert.equal(hits.length, 0);
  });

  test('A7 redirects: a 302 to the metadata address comes back as a 302; its Location is never requested', async () => {
    const res = await guardedFetch(egress('127.0.0.1/32'))(`http://127.0.0.1:${port}/redirect`, { method: 'POST' });
    assert.equal(res.status, 302);
    assert.deepEqual(hits.splice(0), ['/redirect']);
  });
});
