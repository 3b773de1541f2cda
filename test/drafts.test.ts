import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Mailroom, MailroomApiError } from '../packages/sdk/src/index.ts';
import { allRuns, waitCompleted } from './helpers/campaign.ts';
import { ENGINES, skipEngine, startTestMailroom, waitFor, waitForMessages, type TestMailroom } from './helpers/mailroom.ts';

/**
 * Drafts (issue 7, human in the loop): a draft-only token writes drafts and cannot send; an
 * approval sends the draft after checking the suppression list and the thread again; scheduled
 * drafts wait for send_at; a campaign with `approval: required` waits for each step's approval,
 * sends what the person edited, and cancels a waiting draft when the lead replies.
 */
const ALWAYS = { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '00:00', end: '24:00' };

for (const engine of ENGINES) {
  describe(`${engine}: drafts`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let agent: any; // the inbox an agent drafts from
    let other: any; // an inbox the draft-only token cannot see
    let draftOnly: string;
    const inbox = async (username: string, domain = 'mailroom.test') => {
      const r = await m.api('POST', '/v1/inboxes', { username, domain });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    };
    const events = async (draftId: string) => (await m.api('GET', '/v1/events?types=draft.created,draft.updated,draft.approved,draft.rejected,draft.sent,draft.failed,draft.cancelled&limit=500')).body.data
      .filter((e: any) => e.data.draft_id === draftId).map((e: any) => e.type);

    before(async () => {
      m = await startTestMailroom(engine);
      agent = await inbox('drafting-agent');
      other = await inbox('someone-else');
      const t = await m.api('POST', '/v1/tokens', { name: 'draft-only', scopes: ['inboxes:read', 'messages:read', 'drafts:write'], inbox_ids: [agent.id] });
      assert.equal(t.status, 201, JSON.stringify(t.body));
      draftOnly = t.body.token;
    });
    after(() => m?.destroy());

    test('a draft-only token writes drafts and cannot send; an approval by a sending token sends it once', async () => {
      const lead = await inbox('draft-lead', 'agents.test');
      const body = { to: lead.address, subject: 'Hello from a draft', text: 'Written by an agent, approved by a person.', client_id: 'click-1' };
      const created = await m.api('POST', `/v1/inboxes/${agent.id}/drafts`, body, draftOnly);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.status, 'pending');
      assert.deepEqual(created.body.content.to, [lead.address]);
      // The same client_id is the same draft (a double click writes one).
      const again = await m.api('POST', `/v1/inboxes/${agent.id}/drafts`, body, draftOnly);
      assert.equal(again.status, 200);
      assert.equal(again.body.id, created.body.id);

      const send = await m.api('POST', `/v1/inboxes/${agent.id}/messages`, { to: lead.address, subject: 'x', text: 'y' }, draftOnly);
      assert.equal(send.status, 403);
      assert.equal(send.body.code, 'insufficient_scope');
      const selfApprove = await m.api('POST', `/v1/drafts/${created.body.id}/approve`, {}, draftOnly);
      assert.equal(selfApprove.status, 403);
      assert.match(selfApprove.body.detail, /messages:send/);
      // Nothing went out.
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.length, 0);

      const approved = await m.api('POST', `/v1/drafts/${created.body.id}/approve`, { note: 'looks good' });
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      assert.equal(approved.body.status, 'approved');
      const [got] = await waitForMessages(m, lead.id);
      assert.equal(got.subject, 'Hello from a draft');
      const sent = await waitFor(async () => {
        const d = (await m.api('GET', `/v1/drafts/${created.body.id}`, undefined, draftOnly)).body;
        return d.status === 'sent' ? d : null;
      }, 15_000, 'the draft marked sent');
      assert.ok(sent.message_id);
      assert.equal(sent.review_note, 'looks good');
      const again2 = await m.api('POST', `/v1/drafts/${created.body.id}/approve`, {});
      assert.equal(again2.status, 409);
      assert.equal(again2.body.code, 'draft_not_pending');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.length, 1, 'sent exactly once');
      assert.deepEqual(await events(created.body.id), ['draft.created', 'draft.approved', 'draft.sent']);
    });

    test('SDK: mr.drafts — a draft-only client writes and lists, cannot approve (insufficient_scope); an admin client approves', async () => {
      const lead = await inbox('sdk-draft-lead', 'agents.test');
      const agentSdk = new Mailroom({ baseUrl: m.api.base, token: draftOnly });
      const admin = new Mailroom({ baseUrl: m.api.base, token: m.adminToken });
      const d = await agentSdk.drafts.create(agent.id, {
        to: lead.address, subject: 'From the SDK', text: 'Drafted.', client_id: 'sdk-1',
        attachments: [{ filename: 'note.txt', content_type: 'text/plain', content: new TextEncoder().encode('attached') }],
      });
      assert.equal(d.status, 'pending');
      assert.equal(d.content.attachments?.[0].content, Buffer.from('attached').toString('base64'));
      assert.equal((await agentSdk.drafts.create(agent.id, { to: lead.address, text: 'again', client_id: 'sdk-1' })).id, d.id);
      const pending: string[] = [];
      for await (const x of agentSdk.drafts.list({ status: 'pending', inbox_id: agent.id })) pending.push(x.id);
      assert.ok(pending.includes(d.id));
      await assert.rejects(agentSdk.drafts.approve(d.id), (err: unknown) => err instanceof MailroomApiError && err.code === 'insufficient_scope');
      const edited = await agentSdk.drafts.edit(d.id, { text: 'Drafted, then edited.' });
      assert.equal(edited.content.text, 'Drafted, then edited.');
      assert.equal((await admin.drafts.approve(d.id, { note: 'ok' })).status, 'approved');
      const [got] = await waitForMessages(m, lead.id);
      const full = (await m.api('GET', `/v1/messages/${got.id}`)).body;
      assert.match(full.text, /then edited/);
      assert.equal(full.attachments[0].filename, 'note.txt');
      await assert.rejects(admin.drafts.reject(d.id), (err: unknown) => err instanceof MailroomApiError && err.code === 'draft_not_pending');
    });

    test('drafts are checked as a send is: header injection, no recipient, a message of another inbox', async () => {
      const inj = await m.api('POST', `/v1/inboxes/${agent.id}/drafts`, { to: 'a@example.com', subject: 'Hi\r\nBcc: victim@example.com', text: 'x' }, draftOnly);
      assert.equal(inj.status, 400);
      assert.equal(inj.body.code, 'header_injection');
      const none = await m.api('POST', `/v1/inboxes/${agent.id}/drafts`, { subject: 'Hi', text: 'x' }, draftOnly);
      assert.equal(none.status, 400);
      assert.match(none.body.detail, /recipient/);
      const bad = await m.api('POST', `/v1/inboxes/${agent.id}/drafts`, { to: 'not an address', text: 'x' }, draftOnly);
      assert.equal(bad.status, 400);
      assert.equal(bad.body.code, 'invalid_address');
    });

    test('A10: a token limited to one inbox neither sees nor writes drafts of another (404), and lists only its own', async () => {
      const theirs = await m.api('POST', `/v1/inboxes/${other.id}/drafts`, { to: 'a@example.com', subject: 'x', text: 'y' });
      assert.equal(theirs.status, 201);
      assert.equal((await m.api('GET', `/v1/drafts/${theirs.body.id}`, undefined, draftOnly)).status, 404);
      assert.equal((await m.api('POST', `/v1/drafts/${theirs.body.id}/edit`, { text: 'mine now' }, draftOnly)).status, 404);
      assert.equal((await m.api('POST', `/v1/inboxes/${other.id}/drafts`, { to: 'a@example.com', text: 'y' }, draftOnly)).status, 404);
      const list = (await m.api('GET', '/v1/drafts?limit=200', undefined, draftOnly)).body.data;
      assert.ok(list.length > 0 && list.every((d: any) => d.inbox_id === agent.id));
    });

    test('approval checks again: a recipient suppressed since the draft was written is refused (422), the draft stays pending', async () => {
      const d = (await m.api('POST', `/v1/inboxes/${agent.id}/drafts`, { to: 'gone@example.net', subject: 'x', text: 'y' }, draftOnly)).body;
      assert.equal((await m.api('POST', '/v1/suppressions', { address: 'gone@example.net', reason: 'manual' })).status, 201);
      const r = await m.api('POST', `/v1/drafts/${d.id}/approve`, {});
      assert.equal(r.status, 422);
      assert.equal(r.body.code, 'recipient_suppressed');
      assert.equal((await m.api('GET', `/v1/drafts/${d.id}`)).body.status, 'pending');
    });

    test('an answer drafted before the thread received a newer reply is stale (409 draft_stale) until forced or edited', async () => {
      const lead = await inbox('stale-lead', 'agents.test');
      const asked = (await m.api('POST', `/v1/inboxes/${lead.id}/messages`, { to: agent.address, subject: 'Question', text: 'What does it cost?' })).body;
      const q = await waitFor(async () => (await m.api('GET', `/v1/inboxes/${agent.id}/messages`, undefined, draftOnly)).body.data.find((x: any) => x.subject === 'Question') ?? null, 15_000, 'the question at the agent');
      const d = (await m.api('POST', `/v1/inboxes/${agent.id}/drafts`, { reply_to_message_id: q.id, text: 'It costs 10 per seat.' }, draftOnly)).body;
      assert.equal(d.reply_to_message_id, q.id);
      // The lead writes again in the same thread before anyone approved the answer.
      await m.api('POST', `/v1/messages/${asked.id}/reply`, { text: 'Never mind, we found the pricing page.' });
      await waitFor(async () => (await m.api('GET', `/v1/inboxes/${agent.id}/messages?thread_id=${q.thread_id}`)).body.data.length >= 2 || null, 15_000, 'the second message in the thread');
      const stale = await m.api('POST', `/v1/drafts/${d.id}/approve`, {});
      assert.equal(stale.status, 409);
      assert.equal(stale.body.code, 'draft_stale');
      const forced = await m.api('POST', `/v1/drafts/${d.id}/approve`, { force: true });
      assert.equal(forced.status, 200, JSON.stringify(forced.body));
      const answer = await waitFor(async () => (await m.api('GET', `/v1/inboxes/${lead.id}/messages?direction=inbound`)).body.data.find((x: any) => x.subject === 'Re: Question') ?? null, 15_000, 'the answer at the lead');
      assert.match((await m.api('GET', `/v1/messages/${answer.id}`)).body.text, /10 per seat/);
    });

    test('a scheduled draft goes at send_at, not before; a rejected one never goes', async () => {
      const lead = await inbox('scheduled-lead', 'agents.test');
      const at = new Date(Date.now() + 4_000).toISOString();
      const d = (await m.api('POST', `/v1/inboxes/${agent.id}/drafts`, { to: lead.address, subject: 'Later', text: 'At the time you asked.', send_at: at }, draftOnly)).body;
      assert.equal(d.send_at, at);
      const approved = await m.api('POST', `/v1/drafts/${d.id}/approve`, {});
      assert.equal(approved.status, 200);
      await new Promise((r) => setTimeout(r, 2_000));
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.length, 0, 'not before send_at');
      const [got] = await waitForMessages(m, lead.id);
      assert.ok(Date.now() >= Date.parse(at));
      assert.equal(got.subject, 'Later');

      const r = (await m.api('POST', `/v1/inboxes/${agent.id}/drafts`, { to: lead.address, subject: 'Never', text: 'x' }, draftOnly)).body;
      const rejected = await m.api('POST', `/v1/drafts/${r.id}/reject`, { note: 'off-brand' }, draftOnly);
      assert.equal(rejected.status, 200);
      assert.equal(rejected.body.status, 'rejected');
      assert.equal((await m.api('POST', `/v1/drafts/${r.id}/approve`, {})).body.code, 'draft_not_pending');
    });

    test('a campaign created by a token that may not send (drafts:write, no messages:send) drafts every step for approval', async () => {
      const sender = await inbox('draftonly-sender');
      const lead = await inbox('draftonly-lead', 'agents.test');
      const t = (await m.api('POST', '/v1/tokens', { name: 'campaign drafter', scopes: ['campaigns:write', 'campaigns:read', 'drafts:write', 'inboxes:read'], inbox_ids: [sender.id] })).body.token;
      const r = await m.api('POST', '/v1/campaigns', {
        name: 'drafted by an agent', senders: [{ inbox: sender.id }], send_window: ALWAYS, clock: { scale: 3600 }, approval: 'none',
        steps: [{ subject: 'Hi', text: 'One step.', approval: 'none' }], stop: { final_wait_business_days: 0.02 }, escalate_to: agent.address,
        leads: [{ email: lead.address }],
      }, t);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.spec.approval, 'required', 'forced: the token cannot send');
      const d = await waitFor(async () => (await m.api('GET', `/v1/drafts?campaign_id=${r.body.id}`, undefined, t)).body.data[0] ?? null, 20_000, 'the step drafted');
      assert.equal(d.status, 'pending');
      await new Promise((res) => setTimeout(res, 1_000));
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.length, 0, 'nothing sent without approval');
      assert.equal((await m.api('POST', `/v1/drafts/${d.id}/approve`, {}, t)).status, 403, 'the drafter cannot approve its own step');
      assert.equal((await m.api('POST', `/v1/drafts/${d.id}/approve`, {})).status, 200);
      await waitForMessages(m, lead.id);
    });

    test('approval: required — each step waits as a draft; the edited text is what goes; a reply cancels the waiting draft', async () => {
      const sender = await inbox('approval-sender');
      const lead = await inbox('approval-lead', 'agents.test');
      const nope = await inbox('approval-nope', 'agents.test');
      const c = (await m.api('POST', '/v1/campaigns', {
        name: 'approval', senders: [{ inbox: sender.id }], send_window: ALWAYS, approval: 'required', clock: { scale: 3600 },
        steps: [{ subject: 'Hello {{first_name}}', text: 'Hi {{first_name}}, first step.' }, { text: 'Second step.', delay_business_days: 0.05 }],
        stop: { final_wait_business_days: 1 }, escalate_to: agent.address,
        leads: [{ email: lead.address, first_name: 'Ana' }, { email: nope.address, first_name: 'Bo' }],
      })).body;
      assert.ok(c.id, JSON.stringify(c));
      const pending = await waitFor(async () => {
        const l = (await m.api('GET', `/v1/drafts?campaign_id=${c.id}&status=pending`)).body.data;
        return l.length === 2 ? l : null;
      }, 20_000, 'two step-1 drafts');
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages`)).body.data.length, 0, 'nothing sent before approval');
      const ana = pending.find((d: any) => d.content.to[0] === lead.address);
      const bo = pending.find((d: any) => d.content.to[0] === nope.address);
      assert.equal(ana.step, 1);
      assert.equal(ana.content.subject, 'Hello Ana');

      // Bo's is rejected: the run ends. Ana's is edited, then approved: the edit is what arrives.
      assert.equal((await m.api('POST', `/v1/drafts/${bo.id}/reject`, { note: 'not a fit' })).status, 200);
      const edited = await m.api('POST', `/v1/drafts/${ana.id}/edit`, { text: 'Hi Ana, edited by a person.' });
      assert.equal(edited.status, 200, JSON.stringify(edited.body));
      assert.equal((await m.api('POST', `/v1/drafts/${ana.id}/approve`, {})).status, 200);
      const [first] = await waitForMessages(m, lead.id);
      assert.match((await m.api('GET', `/v1/messages/${first.id}`)).body.text, /edited by a person/);
      await waitFor(async () => ((await m.api('GET', `/v1/drafts/${ana.id}`)).body.status === 'sent') || null, 15_000, 'step 1 draft sent');

      // Step 2 is drafted after its delay; the lead replies meanwhile: the run ends, the draft is cancelled.
      const second = await waitFor(async () => (await m.api('GET', `/v1/drafts?campaign_id=${c.id}&status=pending`)).body.data.find((d: any) => d.step === 2) ?? null, 30_000, 'the step-2 draft');
      assert.equal(second.reply_to_message_id !== null, true);
      await m.api('POST', `/v1/messages/${first.id}/reply`, { text: 'Yes, interested. Call me Thursday?' });
      await waitCompleted(() => m.api, c.id, 60_000);
      const runs = await allRuns(m.api, c.id);
      const byLead = new Map(runs.map((r: any) => [r.lead.email, r]));
      assert.equal(byLead.get(nope.address).outcome, 'draft_rejected');
      assert.equal(byLead.get(lead.address).outcome, 'replied');
      assert.equal(byLead.get(lead.address).steps_sent, 1);
      const cancelled = (await m.api('GET', `/v1/drafts/${second.id}`)).body;
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(cancelled.error.code, 'run_finished');
      assert.equal((await m.api('GET', `/v1/inboxes/${nope.id}/messages`)).body.data.length, 0, 'a rejected first step sends nothing');
      assert.equal((await m.api('GET', `/v1/inboxes/${lead.id}/messages?direction=inbound`)).body.data.length, 1, 'step 2 never sent');
    });
  });
}
