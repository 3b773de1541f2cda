import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { allRuns, waitCompleted } from './helpers/campaign.ts';
import { contentText, reply, startLlmStub, type ChatCompletionRequest, type LlmStub, type StubReply } from './helpers/llm-stub.ts';
import { ENGINES, skipEngine, startTestMailroom, waitFor, waitForMessages, type TestMailroom } from './helpers/mailroom.ts';

/**
 * The model-backed agent roles (src/orchestrator/llm/) through the real path: a Mailroom whose
 * MAILROOM_LLM_* point at a scripted OpenAI-compatible server on loopback (helpers/llm-stub.ts),
 * campaigns with `agents: … 'llm'`, leads that are local inboxes. The stub answers by the output
 * the request asks for (json_schema.name: research_notes, draft, sequence_decision,
 * response_decision) and by the lead the prompt is about, whose address says how to misbehave:
 * `malformed-…` (broken JSON), `slow-…` (later than MAILROOM_LLM_TIMEOUT_MS), `limited-…` (429 on
 * every attempt), `overrule-…` (the response model proposes an action the campaign does not allow).
 */
const ALWAYS = { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '00:00', end: '24:00' };
const TIMEOUT_MS = 400;
const MAX_RETRIES = 2;
const MODEL_TEXT = 'Hi Kim, I saw Acme is growing its ops team: would a 15-minute call next week help?';
const REPLY_TEXT = 'Sounds good, can we talk on Tuesday at 10?';

const userText = (r: ChatCompletionRequest) => r.messages.filter((m) => m.role === 'user').map((m) => contentText(m.content)).join('\n');
const outputName = (r: ChatCompletionRequest) => r.response_format?.json_schema?.name ?? '';
/** The behaviour the lead's address asks for: "full", "malformed", "slow", "limited", "overrule". */
const modeOf = (r: ChatCompletionRequest) => /"email": "([a-z]+)-/.exec(userText(r))?.[1] ?? 'unknown';

function answer(r: ChatCompletionRequest): StubReply {
  const mode = modeOf(r);
  switch (outputName(r)) {
    case 'research_notes':
      if (mode === 'malformed') return reply.malformedJson();
      if (mode === 'slow') return reply.delay(TIMEOUT_MS * 4, reply.json({ summary: 'too late', facts: [], sources: [] }));
      if (mode === 'limited') return reply.rateLimited(0);
      return reply.json({ summary: 'Kim runs operations at Acme.', facts: ['Kim is Head of Ops'], sources: ['crm:title'], variables: { hook: 'Acme is growing its ops team' } });
    case 'draft':
      return reply.json({ subject: 'A question for Acme ops', text: MODEL_TEXT });
    case 'sequence_decision':
      // Earlier than the calendar allows: the agent keeps the calendar's time.
      return reply.json({ action: 'send', send_at: '2000-01-01T00:00:00Z', reason: 'first step, no reason to wait' });
    case 'response_decision':
      return mode === 'overrule'
        ? reply.json({ classification: 'interested', confidence: 0.9, summary: 'wants a call', action: 'reply', text: 'Tuesday at 10 works, talk then!' })
        : reply.json({ classification: 'interested', confidence: 0.93, summary: 'asks for a call on Tuesday', return_date: null, referral: null, action: 'escalate' });
    default:
      return reply.error(400, { message: `test stub: unexpected output ${outputName(r)}` });
  }
}

for (const engine of ENGINES) {
  describe(`${engine}: model-backed agent roles`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let stub: LlmStub;
    let other: LlmStub;
    let sender: any;
    let owner: any;
    const inbox = async (username: string, domain = 'mailroom.test') => (await m.api('POST', '/v1/inboxes', { username, domain })).body;
    const campaign = (lead: any, extra: Record<string, unknown> = {}) => ({
      name: `llm ${Math.random().toString(36).slice(2, 6)}`, senders: [{ inbox: sender.id }], send_window: ALWAYS,
      steps: [{ subject: 'Hello {{first_name|there}}', text: 'Hi {{first_name|there}}, {{notes.hook}}' }],
      stop: { final_wait_business_days: 2 }, escalate_to: owner.address, clock: { scale: 3600 },
      agents: { research: 'llm', personalize: 'llm', sequence: 'llm', respond: 'llm' },
      leads: [{ email: lead.address, first_name: 'Kim', company: 'Acme', title: 'Head of Ops' }], ...extra,
    });
    const requestsFor = (s: LlmStub, mode: string) => s.chatRequests().filter((r) => modeOf(r) === mode);
    const deadRun = (campaignId: string) => waitFor(async () => {
      const page = (await m.api('GET', '/v1/runs?status=dead')).body.data;
      return page.find((r: any) => r.campaign_id === campaignId);
    }, 30_000, 'the run in the dead-letter queue');

    before(async () => {
      stub = await startLlmStub({ script: answer });
      other = await startLlmStub({ script: answer, apiKey: 'sk-other', model: 'other-model' });
      m = await startTestMailroom(engine, {
        MAILROOM_LLM_BASE_URL: stub.url, MAILROOM_LLM_MODEL: 'stub-model', MAILROOM_LLM_API_KEY: stub.apiKey,
        MAILROOM_LLM_TIMEOUT_MS: String(TIMEOUT_MS), MAILROOM_LLM_MAX_RETRIES: String(MAX_RETRIES),
        // A campaign's own endpoint names its key's variable (never the server's key).
        OTHER_LLM_API_KEY: 'sk-other',
        // A campaign's own endpoint must be public unless allowed: this one name (loopback, RFC 6761).
        MAILROOM_LLM_ALLOW: 'models.localhost',
      }, { engine: { retryBaseMs: 50, maxAttempts: 3 } });
      sender = await inbox('llm-sender');
      owner = await inbox('llm-owner');
    });
    after(async () => {
      await m?.destroy();
      await stub?.close();
      await other?.close();
    });

    test('all four roles on "llm": schema-valid output over HTTP at each step, the reply shown fenced with its verdicts, model calls with tokens on the trace', async () => {
      const lead = await inbox('full-lead', 'agents.test');
      const created = await m.api('POST', '/v1/campaigns', campaign(lead));
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const [first] = await waitForMessages(m, lead.id);
      const sent = (await m.api('GET', `/v1/messages/${first.id}`)).body;
      assert.equal(sent.subject, 'A question for Acme ops', "the personalization model's subject");
      assert.equal(sent.text.trim(), MODEL_TEXT, "the personalization model's text went out");

      await m.api('POST', `/v1/messages/${first.id}/reply`, { text: REPLY_TEXT });
      await waitCompleted(() => m.api, created.body.id, 30_000);
      const [run] = await allRuns(m.api, created.body.id);
      assert.equal(run.status, 'done');
      assert.equal(run.outcome, 'replied');
      assert.equal(run.reply_class, 'interested');
      assert.match(run.detail, /asks for a call on Tuesday/);
      const escalation = await waitForMessages(m, owner.id);
      assert.ok(escalation.some((e: any) => /\[Mailroom\] interested/.test(e.subject)), 'the escalation reached the owner');

      const asked = requestsFor(stub, 'full');
      assert.deepEqual(asked.map(outputName), ['research_notes', 'draft', 'sequence_decision', 'response_decision'], 'one model call per role, in order');
      assert.ok(asked.every((r) => r.model === 'stub-model' && r.response_format?.type === 'json_schema'), 'the role schema is sent as response_format json_schema');
      assert.ok(stub.requests.every((r) => r.headers.authorization === `Bearer ${stub.apiKey}`), 'the server key goes to the server endpoint');

      // What the response model was shown: Mailroom's fence and verdicts, the sender's words only inside the fence.
      const shown = userText(asked[3]);
      const fence = /<(UNTRUSTED-[0-9a-f]+)>/.exec(shown)?.[1];
      assert.ok(fence, 'the agent view with its fence');
      const inside = shown.slice(shown.indexOf(`\n<${fence}>\n`), shown.lastIndexOf(`\n</${fence}>`));
      assert.ok(inside.includes(REPLY_TEXT), 'the reply inside the fence');
      assert.equal(shown.split(REPLY_TEXT).length, 2, 'the reply text appears exactly once, inside the fence: never extracted_text beside it');
      assert.match(shown, /"injection": \{\s*"level": "(none|low)"/, 'the injection verdict');
      assert.match(shown, /Injection risk: (none|low)/, "Mailroom's own verdict lines of the agent view");
      assert.match(shown, /"interested": "escalate"/, 'the allowed action per class');

      // Each agent span carries its model call: provider, model, prompt version, tokens, latency, attempts.
      const trace = (await m.api('GET', `/v1/runs/${run.id}/trace`)).body.timeline;
      const agents = trace.filter((e: any) => e.kind === 'agent');
      assert.deepEqual(agents.map((e: any) => e.name), ['research', 'personalize', 'sequence', 'respond']);
      for (const span of agents) {
        const [call, ...more] = span.input.model_calls;
        assert.equal(more.length, 0, `${span.name}: one model call`);
        assert.equal(call.provider, 'openai-compatible');
        assert.equal(call.model, 'stub-model');
        assert.equal(call.prompt, `${span.name}.v1`);
        assert.equal(call.attempts, 1);
        assert.ok(call.input_tokens > 0 && call.output_tokens > 0, `${span.name}: tokens ${JSON.stringify(call)}`);
        assert.ok(call.latency_ms >= 0 && call.latency_ms < TIMEOUT_MS, `${span.name}: latency ${call.latency_ms}`);
        assert.equal(call.error, undefined);
      }
      assert.match(agents[2].output.reason, /^model: .*at the calendar's time/, 'the too-early time was replaced by the calendar rule');
    });

    test("a response model's action outside what the campaign allows for the class is refused and escalated; nothing is sent to the lead", async () => {
      const lead = await inbox('overrule-lead', 'agents.test');
      const created = (await m.api('POST', '/v1/campaigns', campaign(lead, { reply_template: 'Thanks!' }))).body;
      const [first] = await waitForMessages(m, lead.id);
      await m.api('POST', `/v1/messages/${first.id}/reply`, { text: 'Yes please, call me.' });
      await waitCompleted(() => m.api, created.id, 30_000);
      const [run] = await allRuns(m.api, created.id);
      assert.equal(run.reply_class, 'interested');
      const trace = (await m.api('GET', `/v1/runs/${run.id}/trace`)).body.timeline;
      const respond = trace.find((e: any) => e.kind === 'agent' && e.name === 'respond');
      assert.equal(respond.output.action, 'reply', 'the model proposed to answer by itself');
      assert.ok(trace.some((e: any) => e.kind === 'decision' && /refused action "reply" for interested \(allowed: escalate\); escalated/.test(e.name)), 'the engine refused it');
      assert.ok(trace.some((e: any) => e.name === 'run.escalated'));
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.filter((x: any) => x.direction === 'inbound').length, 1, 'the lead got the campaign email only, no model-written answer');
    });

    test('malformed JSON from the model: retried with backoff, then dead-lettered with the reason', async () => {
      const lead = await inbox('malformed-lead', 'agents.test');
      const created = (await m.api('POST', '/v1/campaigns', campaign(lead))).body;
      const dead = await deadRun(created.id);
      assert.equal(dead.stage, 'research');
      assert.equal(dead.attempts, 3);
      assert.match(dead.last_error, /^research agent: model returned invalid JSON$/);
      assert.equal(requestsFor(stub, 'malformed').length, 3, 'one request per attempt of the run (a broken answer is not an HTTP error the SDK retries)');
      const errors = (await m.api('GET', `/v1/runs/${dead.id}/trace`)).body.timeline.filter((e: any) => e.kind === 'agent' && e.status === 'error');
      assert.equal(errors.length, 3);
      assert.equal(errors[0].input.model_calls[0].error, 'model returned invalid JSON');
      assert.ok(errors[0].input.model_calls[0].output_tokens > 0, 'the tokens of a failed call are counted too');
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.length, 0, 'nothing was sent');
    });

    test('a model slower than MAILROOM_LLM_TIMEOUT_MS: each call gives up at the timeout, the run is dead-lettered saying so', async () => {
      const lead = await inbox('slow-lead', 'agents.test');
      const created = (await m.api('POST', '/v1/campaigns', campaign(lead))).body;
      const dead = await deadRun(created.id);
      assert.match(dead.last_error, new RegExp(`^research agent: no answer within ${TIMEOUT_MS} ms`));
      const calls = (await m.api('GET', `/v1/runs/${dead.id}/trace`)).body.timeline.filter((e: any) => e.kind === 'agent' && e.status === 'error').map((e: any) => e.input.model_calls[0]);
      assert.equal(calls.length, 3);
      for (const c of calls) assert.ok(c.latency_ms >= TIMEOUT_MS && c.latency_ms < TIMEOUT_MS * 3, `gave up near the timeout: ${c.latency_ms} ms`);
    });

    test('429 on every attempt: the SDK retries after Retry-After, the role call fails naming the rate limit, the run is dead-lettered', async () => {
      const lead = await inbox('limited-lead', 'agents.test');
      const created = (await m.api('POST', '/v1/campaigns', campaign(lead))).body;
      const dead = await deadRun(created.id);
      const attempts = MAX_RETRIES + 1;
      assert.equal(dead.last_error, `research agent: model endpoint rate limited (429) after ${attempts} attempts`);
      assert.equal(requestsFor(stub, 'limited').length, 3 * attempts, 'each of the 3 run attempts made 1 + MAILROOM_LLM_MAX_RETRIES requests');
      const calls = (await m.api('GET', `/v1/runs/${dead.id}/trace`)).body.timeline.filter((e: any) => e.kind === 'agent' && e.status === 'error').map((e: any) => e.input.model_calls[0]);
      assert.ok(calls.every((c: any) => c.attempts === attempts && c.input_tokens === null), JSON.stringify(calls));
    });

    test("a campaign's own llm block: its endpoint, model and key variable; the server's key never goes there", async () => {
      const lead = await inbox('own-lead', 'agents.test');
      const spec = campaign(lead, {
        agents: { research: 'llm' }, stop: { final_wait_business_days: 0.02 },
        llm: { base_url: other.url.replace('127.0.0.1', 'models.localhost'), model: 'other-model', api_key_env: 'OTHER_LLM_API_KEY' },
      });
      const created = await m.api('POST', '/v1/campaigns', spec);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.spec.llm.api_key_env, 'OTHER_LLM_API_KEY', 'the variable name is stored, never a key');
      await waitCompleted(() => m.api, created.body.id, 30_000);
      const [run] = await allRuns(m.api, created.body.id);
      assert.equal(run.outcome, 'no_reply');
      const asked = requestsFor(other, 'own');
      assert.equal(asked.length, 1);
      assert.equal(asked[0].model, 'other-model');
      assert.ok(other.requests.every((r) => r.headers.authorization === 'Bearer sk-other'));
      assert.equal(requestsFor(stub, 'own').length, 0);
      const [message] = await waitForMessages(m, lead.id);
      assert.match((await m.api('GET', `/v1/messages/${message.id}`)).body.text, /Acme is growing its ops team/, "the research model's hook, through the built-in template");
    });

    test('creation refuses an "llm" role that cannot work, naming what is missing', async () => {
      const lead = { address: 'nobody@agents.test' };
      const elsewhere = await m.api('POST', '/v1/campaigns', campaign(lead, { agents: { respond: 'llm' }, llm: { base_url: 'http://127.0.0.1:9/v1' } }));
      assert.equal(elsewhere.status, 400);
      assert.equal(elsewhere.body.code, 'invalid_request');
      assert.match(elsewhere.body.detail, /agents\.respond is "llm" but no model is configured: .*another endpoint.*set llm\.model/);

      const unset = await m.api('POST', '/v1/campaigns', campaign(lead, { llm: { model: 'x', api_key_env: 'MISSING_API_KEY' } }));
      assert.equal(unset.status, 400);
      assert.match(unset.body.detail, /llm\.api_key_env: MISSING_API_KEY is not set in the server's environment/);

      const secret = await m.api('POST', '/v1/campaigns', campaign(lead, { llm: { api_key_env: 'DATABASE_URL' } }));
      assert.equal(secret.status, 400);
      assert.ok(secret.body.errors.some((e: any) => e.path === 'llm.api_key_env'), JSON.stringify(secret.body));

      const anthropic = await m.api('POST', '/v1/campaigns', campaign(lead, { llm: { provider: 'anthropic', model: 'claude-x' } }));
      assert.equal(anthropic.status, 400);
      assert.match(anthropic.body.detail, /anthropic provider, which needs an API key/);

      // A5 SSRF: the campaign's own endpoint may not reach the server's network (MAILROOM_LLM_ALLOW
      // names models.localhost only); nothing is created and nothing is requested.
      const before = stub.requests.length + other.requests.length;
      for (const base_url of [other.url, 'http://169.254.169.254/latest/v1', 'http://[::1]:11434/v1', 'http://10.0.0.7/v1']) {
        const r = await m.api('POST', '/v1/campaigns', campaign(lead, { agents: { research: 'llm' }, llm: { base_url, model: 'm' } }));
        assert.equal(r.status, 400, base_url);
        assert.equal(r.body.code, 'llm_url_forbidden', JSON.stringify(r.body));
        assert.match(r.body.detail, /set MAILROOM_LLM_ALLOW/);
      }
      assert.equal(stub.requests.length + other.requests.length, before);
    });
  });
}
