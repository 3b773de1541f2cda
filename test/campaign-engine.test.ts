import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newId } from '../src/ids.ts';
import { ingestReceipts } from '../src/inbound/ingest.ts';
import { builtinPersonalize } from '../src/orchestrator/agents/personalize.ts';
import type { AgentRegistry, PersonalizeAgent, RespondAgent } from '../src/orchestrator/roles.ts';
import { allRuns, waitCompleted } from './helpers/campaign.ts';
import { ENGINES, skipEngine, startTestMailroom, waitFor, waitForMessages, type TestMailroom } from './helpers/mailroom.ts';

/**
 * The campaign engine's contract, with leads that are inboxes of the same server (local delivery:
 * fast and deterministic): a user's own TypeScript agent plugged in by name, agent failures retried
 * and then dead-lettered with the reason, the dead-letter queue and its retry, schema-checked agent
 * output, the campaign file over the API with line-precise errors, CSV leads with a mapping,
 * idempotent creation, pause and resume, and visibility for restricted tokens.
 */
const ALWAYS = { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '00:00', end: '24:00' };

let failPersonalize = true;
let personalizeCalls = 0;
/** Fails while `failPersonalize` is set, then behaves like the built-in. */
const flaky: PersonalizeAgent = {
  async personalize(input, ctx) {
    personalizeCalls++;
    if (failPersonalize) throw new Error('model endpoint unavailable (simulated)');
    return builtinPersonalize.personalize(input, ctx);
  },
};
/** Returns something that is not a Draft. */
const malformed: PersonalizeAgent = { personalize: async () => ({ subject: 42 }) as never };
/** A user's response agent: everything is a question, answered by escalation. */
const seen: string[] = [];
const userRespond: RespondAgent = {
  async respond(input) {
    seen.push(input.reply.agent_view);
    return { classification: 'question', confidence: 0.9, summary: `user agent read: ${input.reply.extracted_text.slice(0, 40)}`, return_date: null, referral: null, action: input.allowed.question };
  },
};
const registry: AgentRegistry = { personalize: { flaky, malformed }, respond: { mine: userRespond } };

for (const engine of ENGINES) {
  describe(`${engine}: campaign engine`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let sender: any;
    let owner: any;
    const inbox = async (username: string, domain = 'mailroom.test') => (await m.api('POST', '/v1/inboxes', { username, domain })).body;
    const base = (leads: string[], extra: Record<string, unknown> = {}) => ({
      name: `engine ${Math.random().toString(36).slice(2, 6)}`, senders: [{ inbox: sender.id }], send_window: ALWAYS,
      steps: [{ subject: 'Hello {{first_name|there}}', text: 'Hi {{first_name|there}}, {{notes.hook}}' }],
      stop: { final_wait_business_days: 0.02 }, escalate_to: owner.address, clock: { scale: 3600 },
      leads: leads.map((email) => ({ email, first_name: 'Kim' })), ...extra,
    });

    before(async () => {
      m = await startTestMailroom(engine, {}, { agents: registry, engine: { retryBaseMs: 50, maxAttempts: 3 } });
      sender = await inbox('engine-sender');
      owner = await inbox('engine-owner');
    });
    after(() => m?.destroy());

    test('a user TypeScript agent plugged in by name reads the agent view of the reply and decides', async () => {
      const lead = await inbox('plug-lead', 'agents.test');
      const c = (await m.api('POST', '/v1/campaigns', base([lead.address], { agents: { respond: 'mine' }, stop: { final_wait_business_days: 2 } }))).body;
      const [first] = await waitForMessages(m, lead.id);
      await m.api('POST', `/v1/messages/${first.id}/reply`, { text: 'What does the pilot cost?' }, m.adminToken);
      await waitCompleted(() => m.api, c.id, 60_000);
      const [run] = await allRuns(m.api, c.id);
      assert.equal(run.reply_class, 'question');
      assert.match(run.detail, /user agent read: What does the pilot cost/);
      assert.ok(seen.some((v) => /<UNTRUSTED-[0-9a-f]+>/.test(v) && v.includes('What does the pilot cost?')), 'the agent got the fenced agent view');
    });

    test('an agent that keeps failing is retried with backoff, then dead-lettered with the reason; retry from the DLQ finishes the run', async () => {
      const lead = await inbox('flaky-lead', 'agents.test');
      failPersonalize = true;
      personalizeCalls = 0;
      const c = (await m.api('POST', '/v1/campaigns', base([lead.address], { agents: { personalize: 'flaky' } }))).body;
      const dead = await waitFor(async () => {
        const page = (await m.api('GET', '/v1/runs?status=dead')).body.data;
        return page.find((r: any) => r.campaign_id === c.id);
      }, 30_000, 'the run in the dead-letter queue');
      assert.equal(personalizeCalls, 3, 'three attempts (maxAttempts), then dead');
      assert.equal(dead.stage, 'personalize');
      assert.match(dead.last_error, /personalize agent: model endpoint unavailable/);
      const trace = (await m.api('GET', `/v1/runs/${dead.id}/trace`)).body.timeline;
      assert.equal(trace.filter((e: any) => e.kind === 'agent' && e.status === 'error').length, 3);
      assert.ok(trace.some((e: any) => e.name === 'run.dead'));
      assert.equal((await m.api('GET', `/v1/campaigns/${c.id}`)).body.funnel.failed, 1);

      failPersonalize = false;
      const retried = await m.api('POST', `/v1/runs/${dead.id}/retry`);
      assert.equal(retried.status, 200);
      assert.equal((await m.api('POST', `/v1/runs/${dead.id}/retry`)).status, 200, 'retrying a run that is going again answers the same (a lost answer, retried)');
      const run = await waitFor(async () => {
        const r = (await m.api('GET', `/v1/runs/${dead.id}`)).body;
        return r.status === 'done' ? r : null;
      }, 60_000, 'the retried run to finish');
      assert.equal((await m.api('POST', `/v1/runs/${dead.id}/retry`)).status, 409, 'a run that ended cannot be retried');
      await waitCompleted(() => m.api, c.id, 60_000);
      assert.equal(run.outcome, 'no_reply');
      assert.equal((await waitForMessages(m, lead.id)).length, 1, 'the lead got its message once');
    });

    test('an agent output that does not match the role schema is a failure, never a send', async () => {
      const lead = await inbox('malformed-lead', 'agents.test');
      const c = (await m.api('POST', '/v1/campaigns', base([lead.address], { agents: { personalize: 'malformed' } }))).body;
      const dead = await waitFor(async () => (await m.api('GET', `/v1/campaigns/${c.id}/runs?status=dead`)).body.data[0], 30_000, 'dead run');
      assert.match(dead.last_error, /output does not match the role's schema/);
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.length, 0);
    });

    test('invalid campaigns are refused with every problem named; a YAML file with its line; an unknown agent name', async () => {
      const bad = await m.api('POST', '/v1/campaigns', { name: 'x', senders: [], steps: [{ text: 'no subject' }], send_window: { start: '18:00', end: '09:00' } });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.code, 'invalid_request');
      const paths = bad.body.errors.map((d: any) => d.path);
      for (const p of ['senders', 'send_window.end', 'steps.0.subject']) assert.ok(paths.includes(p), `${p} in ${paths}`);

      const yaml = ['name: from a file', 'senders:', `  - inbox: ${sender.address}`, 'steps:', '  - subject: Hi', '    text: Hello', '    delay_business_days: soon', ''].join('\n');
      const res = await fetch(`${m.api.base}/v1/campaigns`, { method: 'POST', headers: { authorization: `Bearer ${m.adminToken}`, 'content-type': 'application/yaml' }, body: yaml });
      const problem = await res.json();
      assert.equal(res.status, 400);
      assert.ok(problem.errors.some((d: any) => d.line === 7 && /delay_business_days/.test(d.path)), JSON.stringify(problem.errors));

      const unknown = await m.api('POST', '/v1/campaigns', base(['x@agents.test'], { agents: { research: 'nope' } }));
      assert.equal(unknown.status, 400);
      assert.match(unknown.body.detail, /no implementation named "nope".*known: builtin/);
    });

    test('a valid YAML campaign is created; client_id makes creation idempotent; CSV leads with a mapping; pause and resume', async () => {
      const yaml = ['name: yaml campaign', 'senders:', `  - inbox: ${sender.address}`, 'send_window: { days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "24:00" }', 'steps:', '  - subject: Hi', '    text: Hello {{first_name|there}}', `escalate_to: ${owner.address}`, 'clock: { scale: 3600 }', ''].join('\n');
      const post = () => fetch(`${m.api.base}/v1/campaigns?client_id=yaml-1`, { method: 'POST', headers: { authorization: `Bearer ${m.adminToken}`, 'content-type': 'application/yaml' }, body: yaml });
      const first = await post();
      assert.equal(first.status, 201);
      const c = await first.json();
      const again = await post();
      assert.equal(again.status, 200);
      assert.equal((await again.json()).id, c.id);

      assert.equal((await m.api('POST', `/v1/campaigns/${c.id}/pause`)).body.status, 'paused');
      const csvLead = await inbox('csv-lead', 'agents.test');
      const csv = `E-mail;Given;Plan\n${csvLead.address};Noor;pro\nnot-an-address;X;y\n`;
      const imported = await fetch(`${m.api.base}/v1/campaigns/${c.id}/leads?map=email:E-mail,first_name:Given,fields.plan:Plan`, { method: 'POST', headers: { authorization: `Bearer ${m.adminToken}`, 'content-type': 'text/csv' }, body: csv });
      const body = await imported.json();
      assert.equal(imported.status, 200, JSON.stringify(body));
      assert.equal(body.added, 1);
      assert.equal(body.problems.length, 1);
      assert.equal(body.problems[0].row, 3);
      const [run] = await allRuns(m.api, c.id);
      assert.equal(run.status, 'paused');
      assert.deepEqual(run.lead.data.fields, { plan: 'pro' });
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await m.api('GET', `/v1/inboxes/${csvLead.id}/messages`)).body.data.length, 0, 'nothing is sent while paused');
      assert.equal((await m.api('POST', `/v1/campaigns/${c.id}/resume`)).body.status, 'running');
      const [msg] = await waitForMessages(m, csvLead.id);
      assert.equal(msg.subject, 'Hi');
      assert.equal((await m.api('GET', `/v1/messages/${msg.id}`)).body.text.trim(), 'Hello Noor');
    });

    test('daily caps per sender: two senders with a cap of 2 send 4 first messages a day, rotated, the rest the next day; max_steps stops after one step', async () => {
      const second = await inbox(`cap-sender-${engine}`);
      const leads = await Promise.all(Array.from({ length: 6 }, (_, i) => inbox(`cap-lead-${i}`, 'agents.test')));
      const c = (await m.api('POST', '/v1/campaigns', base(leads.map((l) => l.address), {
        senders: [{ inbox: sender.id, daily_cap: 2 }, { inbox: second.id, daily_cap: 2 }],
        steps: [{ subject: 'Capped', text: 'One' }, { text: 'Two', delay_business_days: 0 }, { text: 'Three', delay_business_days: 0 }],
        stop: { max_steps: 1, final_wait_business_days: 0, on_company_reply: false },
        clock: { scale: 6 * 3600, start: '2027-01-04T09:00:00Z' }, timezone: 'UTC',
      }))).body;
      await waitCompleted(() => m.api, c.id, 60_000);
      const runs = await allRuns(m.api, c.id);
      assert.ok(runs.every((r) => r.outcome === 'no_reply' && r.steps_sent === 1), 'max_steps: one step each, then the reply wait');
      const sends = await Promise.all(leads.map(async (l) => {
        const [msg] = await waitForMessages(m, l.id);
        const full = (await m.api('GET', `/v1/messages/${msg.id}`)).body;
        const header = (n: string) => full.headers.find((h: any) => h.name.toLowerCase() === n)?.value;
        return { day: header('x-mailroom-scheduled-at').slice(0, 10), from: full.from.address, count: (await m.api('GET', `/v1/inboxes/${l.id}/messages`)).body.data.length };
      }));
      assert.ok(sends.every((x) => x.count === 1), 'max_steps: no follow-up');
      const perDay = new Map<string, Map<string, number>>();
      for (const x of sends) {
        const d = perDay.get(x.day) ?? new Map();
        d.set(x.from, (d.get(x.from) ?? 0) + 1);
        perDay.set(x.day, d);
      }
      const days = [...perDay.keys()].sort();
      assert.equal(days.length, 2, `two days: ${JSON.stringify([...perDay].map(([d, v]) => [d, [...v]]))}`);
      assert.deepEqual([...perDay.get(days[0])!.values()].sort(), [2, 2], 'day one: both senders up to their cap');
      assert.equal([...perDay.get(days[1])!.values()].reduce((a, b) => a + b, 0), 2, 'the rest on day two');
    });

    test('a suppression added while a run waits for its next step ends the run before the follow-up (suppressed), nothing more is sent', async () => {
      const lead = await inbox('suppressed-lead', 'agents.test');
      const c = (await m.api('POST', '/v1/campaigns', base([lead.address], {
        // A quarter business day = 6 campaign hours = 6 s: time for the suppression to land first.
        steps: [{ subject: 'First', text: 'One' }, { text: 'Two', delay_business_days: 0.25 }],
        clock: { scale: 3600 },
      }))).body;
      await waitForMessages(m, lead.id);
      await waitFor(async () => (await allRuns(m.api, c.id))[0].stage === 'send' || null, 15_000, 'the run waiting for step 2');
      assert.equal((await m.api('POST', '/v1/suppressions', { address: lead.address, reason: 'manual' })).status, 201);
      await waitCompleted(() => m.api, c.id, 60_000);
      const [run] = await allRuns(m.api, c.id);
      assert.equal(run.outcome, 'suppressed');
      assert.equal(run.steps_sent, 1);
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.length, 1);
    });

    test('a follow-up held in the outbox by a rate limit is recalled when the lead replies: suppressed (cancelled), an event, never sent', async () => {
      const lead = await inbox('recall-lead', 'agents.test');
      // One message a day to agents.test from now on: step 1 takes it, step 2 waits in the outbox.
      const limit = (await m.api('POST', '/v1/limits', { scope: 'recipient_domain', match: 'agents.test', max: 1, window: 'day' })).body;
      try {
        const c = (await m.api('POST', '/v1/campaigns', base([lead.address], {
          steps: [{ subject: 'First', text: 'One' }, { text: 'Two', delay_business_days: 0.05 }],
          stop: { final_wait_business_days: 2 },
        }))).body;
        const [first] = await waitForMessages(m, lead.id);
        const held = await waitFor(async () => {
          const row = await (m.store.db as any).selectFrom('campaign_sends').select('message_id').where('campaign_id', '=', c.id).where('step', '=', 1).where('message_id', 'is not', null).executeTakeFirst();
          if (!row) return null;
          const msg = (await m.api('GET', `/v1/messages/${row.message_id}`)).body;
          return msg.delivery.recipients[0].status === 'deferred' || (msg.delivery.recipients[0].status === 'queued' && msg.delivery.recipients[0].attempts === 0) ? msg : null;
        }, 30_000, 'step 2 handed to the outbox and held by the limit');
        const reply = await m.api('POST', `/v1/messages/${first.id}/reply`, { text: 'Yes, interested. Can we talk on Thursday?' });
        assert.equal(reply.status, 202, JSON.stringify(reply.body));
        await waitCompleted(() => m.api, c.id, 60_000);
        const [run] = await allRuns(m.api, c.id);
        assert.equal(run.outcome, 'replied');
        const after = (await m.api('GET', `/v1/messages/${held.id}`)).body.delivery.recipients[0];
        assert.equal(after.status, 'suppressed');
        assert.match(after.response, /^cancelled: campaign run run_\w+ ended: replied/);
        const events = (await m.api('GET', `/v1/events?limit=500`)).body.data.filter((e: any) => e.message_id === held.id && e.type === 'message.suppressed');
        assert.equal(events.length, 1, JSON.stringify(events));
        assert.deepEqual({ reason: events[0].data.reason, cancelled: events[0].data.cancelled }, { reason: 'run_ended', cancelled: true });
        assert.equal((await m.api('GET', `/v1/campaigns/${c.id}`)).body.funnel.cancelled, 1, 'the funnel counts it as cancelled, not sent');
        const received = (await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.filter((x: any) => x.direction === 'inbound');
        assert.equal(received.length, 1, 'step 2 never reached the lead');
      } finally {
        await m.api('DELETE', `/v1/limits/${limit.id}`);
      }
    });

    test('D1: a follow-up waits while a reply acknowledged with 250 is not parsed yet (its ingest worker died), and that reply, once parsed, stops the run', async () => {
      const lead = await inbox('unread-lead', 'agents.test');
      const c = (await m.api('POST', '/v1/campaigns', base([lead.address], {
        steps: [{ subject: 'First', text: 'One' }, { text: 'Two', delay_business_days: 0.1 }],
        stop: { final_wait_business_days: 2 },
      }))).body;
      const [first] = await waitForMessages(m, lead.id);
      // The lead's reply as a crash leaves it: its receipt and delivery committed (the 250 went), its
      // ingest job held by a worker that died, so no message row yet. Here: no job at all, until below.
      const id = newId('rcv');
      const ref = first.message_id.startsWith('<') ? first.message_id : `<${first.message_id}>`;
      const raw = Buffer.from([
        `From: Kim <${lead.address}>`, `To: ${sender.address}`, 'Subject: Re: First', `Message-ID: <${id}@agents.test>`,
        `In-Reply-To: ${ref}`, `References: ${ref}`, `Date: ${new Date().toUTCString()}`, '',
        'Yes, interested. Can we talk on Thursday?', '',
      ].join('\r\n'));
      const sha256 = await m.store.blobs.put(raw);
      await m.store.db.transaction().execute(async (trx) => {
        await trx.insertInto('receipts').values({
          id, mail_from: lead.address, helo: 'agents.test', remote_address: '127.0.0.1', tls: false, raw_sha256: sha256, raw_size: raw.length,
          trace_size: 0, received_at: new Date(), state: 'accepted',
        }).execute();
        await trx.insertInto('deliveries').values({ id: newId('msg'), receipt_id: id, inbox_id: sender.id, rcpt_to: sender.address }).execute();
      });
      // Step 2 is due 2.4 campaign hours (2.4 s) after step 1; it must not go while the reply is unread.
      await waitFor(async () => (await allRuns(m.api, c.id))[0].stage === 'send' || null, 15_000, 'the run waiting for step 2');
      await new Promise((r) => setTimeout(r, 6_000));
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.length, 1, 'no follow-up while mail to the inbox is unread');
      assert.equal((await allRuns(m.api, c.id))[0].status, 'waiting');
      // The job is retried (here: run by hand): the reply is parsed, the router wakes the run, it ends.
      assert.equal(await ingestReceipts(m.store, m.boss, [id], m.log), 1);
      await waitCompleted(() => m.api, c.id, 30_000);
      const [run] = await allRuns(m.api, c.id);
      assert.equal(run.outcome, 'replied');
      assert.equal(run.reply_class, 'interested');
      assert.equal(run.steps_sent, 1);
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.length, 1, 'step 2 never sent');
    });

    test('a token restricted to another inbox does not see the campaign, its runs or their traces (404)', async () => {
      const other = await inbox('other-tenant');
      const c = (await m.api('POST', '/v1/campaigns', base(['nobody@agents.test']))).body;
      const [run] = await allRuns(m.api, c.id);
      const t = (await m.api('POST', '/v1/tokens', { scopes: ['campaigns:read', 'campaigns:write'], inbox_ids: [other.id] })).body.token;
      for (const p of [`/v1/campaigns/${c.id}`, `/v1/campaigns/${c.id}/runs`, `/v1/runs/${run.id}`, `/v1/runs/${run.id}/trace`]) {
        assert.equal((await m.api('GET', p, undefined, t)).status, 404, p);
      }
      assert.ok(!(await m.api('GET', '/v1/campaigns', undefined, t)).body.data.some((x: any) => x.id === c.id));
      const own = await m.api('POST', '/v1/campaigns', base(['nobody@agents.test'], { senders: [{ inbox: sender.id }] }), t);
      assert.equal(own.status, 400, 'it cannot send from an inbox it cannot see');
      assert.match(own.body.detail, /senders\.0\.inbox/);
    });
  });
}
