import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  defineCampaign, Mailroom, MailroomApiError, MailroomConnectionError, Page,
  type Campaign, type CampaignDefinition, type CampaignFunnel, type CampaignProblem, type CampaignRun, type FetchLike, type Inbox, type TraceEntry,
} from '../packages/sdk/src/index.ts';
import type { CampaignView, RunView, TraceEntry as ServerTraceEntry } from '../src/orchestrator/campaigns.ts';
import type { CampaignSpecInput } from '../src/orchestrator/spec.ts';
import type { Funnel } from '../src/orchestrator/store.ts';
import { ENGINES, skipEngine, startTestMailroom, waitFor, waitForMessages, type TestMailroom } from './helpers/mailroom.ts';

/**
 * @mailroom/sdk's campaigns and runs against a real Mailroom, with leads that are inboxes of the same
 * server (local delivery) and a campaign clock of an hour per second: the funnel moving to the end,
 * runs auto-paginated, a run's trace, CSV import with a mapping, YAML files and their line-precise
 * errors, idempotent creation (and the retries it allows), pause and resume, the dead-letter queue.
 */

// ---- The hand-written SDK types say what the server says (checked by `npm run typecheck`) ----

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Def<T> = Exclude<T, undefined>;
type Item<T> = Def<T> extends readonly (infer E)[] ? E : Def<T>;
/** Same keys on the object and on each nested definition object, and each side assignable to the other. */
type Faithful<A, B> = Same<keyof A, keyof B> extends true
  ? { [K in keyof A & keyof B]: Item<A[K]> extends object ? (string extends keyof Item<A[K]> ? Same<A[K], B[K]> : Faithful<Item<A[K]>, Item<B[K]>>) : Same<A[K], B[K]> }[keyof A & keyof B] extends true ? true : false
  : false;
const definitionIsFaithful: Faithful<CampaignDefinition, CampaignSpecInput> = true;
const definitionAssignable: Same<CampaignDefinition, CampaignSpecInput> = true;
const campaignKeys: Same<keyof Campaign, keyof CampaignView> = true;
const funnelKeys: Same<keyof CampaignFunnel, keyof Funnel> = true;
const runKeys: Same<keyof CampaignRun, keyof RunView> & Same<keyof CampaignRun['lead'], keyof RunView['lead']> = true;
const traceKeys: Same<keyof TraceEntry, keyof ServerTraceEntry> = true;
void [definitionIsFaithful, definitionAssignable, campaignKeys, funnelKeys, runKeys, traceKeys];

const ALWAYS = { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '00:00', end: '24:00' } as const;

/**
 * A fetch whose first request matching `match` reaches the server and is answered, but whose answer
 * is lost (the connection resets, as undici reports it): the server did the work, the client never
 * hears of it. Every request is logged.
 */
function losingFetch(match: (method: string, url: URL) => boolean) {
  const log: { method: string; path: string; lost: boolean }[] = [];
  let armed = true;
  const f: FetchLike = async (input, init) => {
    const method = init?.method ?? 'GET';
    const url = new URL(String(input));
    const lose = armed && match(method, url);
    if (lose) armed = false;
    log.push({ method, path: url.pathname + url.search, lost: lose });
    const res = await fetch(input, init);
    if (!lose) return res;
    await res.arrayBuffer();
    throw new TypeError('fetch failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) });
  };
  return { fetch: f, log, rearm: () => { armed = true; } };
}

for (const engine of ENGINES) {
  describe(`${engine}: @mailroom/sdk campaigns against a running Mailroom`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let mr: Mailroom;
    let sender: Inbox;
    let owner: Inbox;
    const lead = (username: string) => mr.inboxes.create({ username, domain: 'agents.test' });
    const yamlFile = (name: string, extra: string[] = []) => [
      `name: ${name}`,
      'senders:',
      `  - inbox: ${sender.address}`,
      'send_window: { days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "24:00" }',
      'steps:',
      '  - subject: Hi',
      '    text: Hello {{first_name|there}}',
      `escalate_to: ${owner.address}`,
      'clock: { scale: 3600 }',
      ...extra,
      '',
    ].join('\n');

    before(async () => {
      m = await startTestMailroom(engine);
      mr = new Mailroom({ baseUrl: m.api.base, token: m.adminToken });
      sender = await mr.inboxes.create({ username: 'sdk-campaign-sender' });
      owner = await mr.inboxes.create({ username: 'sdk-campaign-owner' });
    });
    after(async () => { await m?.destroy(); });

    test('create (typed with defineCampaign), get: the funnel goes from queued to sent to done; list; runs auto-paginate; a run and its trace', async () => {
      const leads = await Promise.all(Array.from({ length: 7 }, (_, i) => lead(`sdk-funnel-${i}`)));
      const definition = defineCampaign({
        name: 'sdk funnel',
        senders: [{ inbox: sender.id, daily_cap: 100 }],
        send_window: { ...ALWAYS, days: [...ALWAYS.days] },
        steps: [{ subject: 'Hello {{first_name|there}}', text: 'Hi {{first_name|there}}, about {{fields.plan|your plan}}.' }],
        stop: { final_wait_business_days: 0.02 },
        escalate_to: owner.address,
        clock: { scale: 3600 },
        labels: ['sdk-campaign'],
        leads: leads.map((l, i) => ({ email: l.address, first_name: `Lead${i}`, fields: { plan: 'pro' } })),
      });
      const c = await mr.campaigns.create(definition);
      assert.match(c.id, /^cmp_/);
      assert.equal(c.status, 'running');
      assert.equal(c.name, 'sdk funnel');
      assert.equal(c.client_id, null);
      assert.deepEqual(c.senders, [{ inbox_id: sender.id, address: sender.address, daily_cap: 100 }]);
      assert.equal(c.steps, 1);
      assert.equal(c.clock.scale, 3600);
      assert.deepEqual(c.spec.labels, ['sdk-campaign']);
      assert.equal(c.spec.timezone, 'UTC', 'the spec comes back as validated, defaults filled in');
      assert.ok(!('leads' in c.spec), 'without its leads');
      assert.equal(c.funnel.leads, 7);
      assert.equal(c.funnel.queued, 7, 'at creation every run is queued, none has sent');
      assert.deepEqual(c.funnel.sent_per_step, [0]);

      // The funnel moves: every first message sent, then every run ends (no reply) and the campaign completes.
      const done = await waitFor(async () => {
        const now = await mr.campaigns.get(c.id);
        return now.status === 'completed' ? now : null;
      }, 90_000, 'the campaign to complete');
      assert.ok(done.completed_at);
      assert.deepEqual(done.funnel.sent_per_step, [7]);
      assert.equal(done.funnel.queued, 0);
      assert.deepEqual(done.funnel.status, { done: 7 });
      assert.deepEqual(done.funnel.outcomes, { no_reply: 7 });
      assert.equal(done.funnel.stopped, 7);
      assert.equal(done.funnel.failed, 0);
      for (const [i, l] of leads.entries()) {
        const [msg] = await waitForMessages(m, l.id);
        assert.equal(msg.subject, `Hello Lead${i}`, 'personalized from the lead');
        assert.equal((await mr.messages.list(l.id).toArray()).length, 1, 'one message per lead');
      }

      const listed = await mr.campaigns.list().toArray();
      assert.ok(listed.some((x) => x.id === c.id && x.funnel.sent_per_step[0] === 7));
      const firstPage = await mr.campaigns.list({ limit: 1 });
      assert.ok(firstPage instanceof Page);
      assert.equal(firstPage.data.length, 1);

      // Runs: 7 over pages of 3, each once, in the order of one big page.
      const page = await mr.campaigns.runs(c.id, { limit: 3 });
      assert.equal(page.data.length, 3);
      assert.ok(page.hasNextPage());
      const sizes: number[] = [];
      for await (const p of page.pages()) sizes.push(p.data.length);
      assert.deepEqual(sizes, [3, 3, 1]);
      const runs: CampaignRun[] = [];
      for await (const r of mr.campaigns.runs(c.id, { limit: 3 })) runs.push(r);
      assert.equal(runs.length, 7);
      assert.equal(new Set(runs.map((r) => r.id)).size, 7, 'none twice');
      assert.deepEqual(runs.map((r) => r.lead.email).toSorted(), leads.map((l) => l.address).toSorted());
      assert.deepEqual(runs.map((r) => r.id), (await mr.campaigns.runs(c.id, { limit: 200 })).data.map((r) => r.id));
      assert.ok(runs.every((r) => r.campaign_id === c.id && r.status === 'done' && r.stage === 'finished' && r.outcome === 'no_reply' && r.steps_sent === 1 && r.inbox_id === sender.id));
      assert.equal((await mr.campaigns.runs(c.id, { status: 'done', limit: 2 }).toArray()).length, 7);
      assert.equal((await mr.campaigns.runs(c.id, { status: 'waiting' }).toArray()).length, 0, 'the status filter applies');
      const everywhere = await mr.runs.list({ limit: 4 }).toArray();
      assert.ok(runs.every((r) => everywhere.some((x) => x.id === r.id)), 'runs.list walks every campaign\'s runs');

      const run = runs.find((r) => r.lead.email === leads[2].address)!;
      const got = await mr.runs.get(run.id);
      assert.deepEqual(got, run);
      assert.equal(got.lead.data.first_name, 'Lead2');
      assert.deepEqual(got.lead.data.fields, { plan: 'pro' });

      const { run: traced, timeline } = await mr.runs.trace(run.id);
      assert.equal(traced.id, run.id);
      const names = timeline.map((e) => `${e.kind}:${e.name}`);
      for (const want of ['agent:research', 'agent:personalize', 'agent:sequence', 'send:send step 1', 'event:message.sent']) {
        assert.ok(names.includes(want), `${want} in ${names.join(', ')}`);
      }
      assert.ok(names.indexOf('agent:research') < names.indexOf('agent:personalize') && names.indexOf('agent:personalize') < names.indexOf('event:message.sent'), 'oldest first');
      const agents = timeline.filter((e) => e.kind === 'agent');
      assert.ok(agents.every((e) => e.status === 'ok' && typeof e.duration_ms === 'number' && e.output !== undefined), 'agent spans with their duration and output');
      const personalized = agents.find((e) => e.name === 'personalize')!.output as { subject?: string };
      assert.equal(personalized.subject, 'Hello Lead2');
      const sentEvent = timeline.find((e) => e.name === 'message.sent')!;
      assert.ok(sentEvent.message_id);
      const outbound = await mr.messages.get(sentEvent.message_id);
      assert.equal(outbound.direction, 'outbound');
      assert.equal(outbound.inbox_id, sender.id);
      assert.deepEqual(outbound.to.map((t) => t.address), [leads[2].address]);
      assert.equal(outbound.thread_id, run.thread_id);
    });

    test('createFromYaml: idempotent with clientId; mistakes come back as invalid_request with their line; JSON create with every problem named', async () => {
      const first = await mr.campaigns.createFromYaml(yamlFile('sdk yaml'), { clientId: 'sdk-yaml-1' });
      assert.match(first.id, /^cmp_/);
      assert.equal(first.client_id, 'sdk-yaml-1');
      assert.equal(first.name, 'sdk yaml');
      const again = await mr.campaigns.createFromYaml(yamlFile('sdk yaml, second try'), { clientId: 'sdk-yaml-1' });
      assert.equal(again.id, first.id, 'the same client_id returns the same campaign');
      assert.equal(again.name, 'sdk yaml');
      assert.equal((await mr.campaigns.list().toArray()).filter((x) => x.client_id === 'sdk-yaml-1').length, 1);

      // A type mistake: its line and path.
      const typo = yamlFile('bad type', ['steps_extra: 1']).replace('    text: Hello {{first_name|there}}', '    text: Hello\n    delay_business_days: soon');
      const typed = await mr.campaigns.createFromYaml(typo).catch((e: unknown) => e);
      assert.ok(typed instanceof MailroomApiError, String(typed));
      assert.equal(typed.status, 400);
      assert.equal(typed.code, 'invalid_request');
      const typeProblems = typed.errors as CampaignProblem[];
      assert.ok(Array.isArray(typeProblems), JSON.stringify(typed.errors));
      assert.ok(typeProblems.some((p) => p.line === 8 && /delay_business_days/.test(p.path)), JSON.stringify(typeProblems));
      assert.ok(typeProblems.some((p) => p.line === 11 && /steps_extra/.test(p.path + p.message)), `the unknown key, on its line: ${JSON.stringify(typeProblems)}`);
      assert.match(typed.detail, /delay_business_days/);

      // A YAML syntax mistake: an unclosed flow sequence on line 4.
      const syntax = yamlFile('bad syntax').replace('send_window: { days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "24:00" }', 'send_window: { days: [mon, tue, start: "00:00"');
      const broken = await mr.campaigns.createFromYaml(syntax).catch((e: unknown) => e);
      assert.ok(broken instanceof MailroomApiError, String(broken));
      assert.equal(broken.code, 'invalid_request');
      const syntaxProblems = broken.errors as CampaignProblem[];
      // The parser notices the unclosed bracket where the next line starts.
      assert.ok(syntaxProblems.length >= 1 && syntaxProblems.every((p) => p.line === 4 || p.line === 5), JSON.stringify(syntaxProblems));
      assert.ok(syntaxProblems.some((p) => /YAML syntax/.test(p.message)), JSON.stringify(syntaxProblems));
      assert.equal((await mr.campaigns.list().toArray()).filter((x) => /^bad /.test(x.name)).length, 0, 'nothing was created');

      // JSON: the schema's problems, each with its path (the SDK does not validate; the server does).
      const invalid = await mr.campaigns.create({ name: 'x', senders: [], steps: [{ text: 'no subject' }], send_window: { start: '18:00', end: '09:00' } }).catch((e: unknown) => e);
      assert.ok(invalid instanceof MailroomApiError);
      assert.equal(invalid.code, 'invalid_request');
      const paths = (invalid.errors as CampaignProblem[]).map((p) => p.path);
      for (const p of ['senders', 'send_window.end', 'steps.0.subject']) assert.ok(paths.includes(p), `${p} in ${paths}`);
      const unknownInbox = await mr.campaigns.create({ name: 'x', senders: [{ inbox: 'nobody@mailroom.test' }], steps: [{ subject: 'a', text: 'b' }], escalate_to: owner.address }).catch((e: unknown) => e);
      assert.ok(unknownInbox instanceof MailroomApiError && unknownInbox.code === 'invalid_request' && /senders\.0\.inbox/.test(unknownInbox.detail));

      await assert.rejects(mr.campaigns.get('cmp_00000000000000000000000000'), (e: unknown) => e instanceof MailroomApiError && e.code === 'not_found');
      await assert.rejects(mr.runs.get('run_00000000000000000000000000'), (e: unknown) => e instanceof MailroomApiError && e.code === 'not_found');
    });

    test('pause, importCsv with a mapping (a bad row reported), addLeads skipping what is already in, resume: the leads get their message only then', async () => {
      const c = await mr.campaigns.create(defineCampaign({
        name: 'sdk csv', senders: [{ inbox: sender.address }], send_window: { ...ALWAYS, days: [...ALWAYS.days] },
        steps: [{ subject: 'Hi {{first_name|there}}', text: 'Hello {{first_name|there}}, on {{fields.plan|no}} plan.' }],
        escalate_to: owner.address, clock: { scale: 3600 },
      }), { clientId: 'sdk-csv-1' });
      assert.equal(c.funnel.leads, 0);
      const paused = await mr.campaigns.pause(c.id);
      assert.equal(paused.status, 'paused');
      assert.equal((await mr.campaigns.pause(c.id)).status, 'paused', 'pausing twice changes nothing');

      const noor = await lead('sdk-csv-noor');
      const kim = await lead('sdk-csv-kim');
      const csv = `E-mail;Given;Plan\n${noor.address};Noor;pro\nnot-an-address;X;y\n`;
      const imported = await mr.campaigns.importCsv(c.id, csv, { map: { email: 'E-mail', first_name: 'Given', 'fields.plan': 'Plan' } });
      assert.equal(imported.added, 1);
      assert.deepEqual(imported.skipped, []);
      assert.equal(imported.problems.length, 1, JSON.stringify(imported.problems));
      assert.equal(imported.problems[0].row, 3, 'the spreadsheet row of the bad address (the header is row 1)');
      assert.match(imported.problems[0].message, /email/);

      // The same file again, with the mapping written as the API takes it: the good row is already in.
      const repeat = await mr.campaigns.importCsv(c.id, csv, { map: 'email:E-mail,first_name:Given,fields.plan:Plan' });
      assert.equal(repeat.added, 0);
      assert.deepEqual(repeat.skipped, [{ email: noor.address, reason: 'already in the campaign' }]);

      const added = await mr.campaigns.addLeads(c.id, [{ email: noor.address.toUpperCase() }, { email: kim.address, first_name: 'Kim' }]);
      assert.equal(added.added, 1);
      assert.deepEqual(added.skipped, [{ email: noor.address.toUpperCase(), reason: 'already in the campaign' }]);
      assert.deepEqual(added.problems, []);

      const runs = await mr.campaigns.runs(c.id).toArray();
      assert.equal(runs.length, 2);
      assert.ok(runs.every((r) => r.status === 'paused'), 'leads added to a paused campaign wait');
      assert.deepEqual(runs.find((r) => r.lead.email === noor.address)!.lead.data.fields, { plan: 'pro' });
      assert.equal((await mr.campaigns.get(c.id)).funnel.leads, 2);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await mr.messages.list(noor.id).toArray()).length, 0, 'nothing is sent while paused');

      const resumed = await mr.campaigns.resume(c.id);
      assert.equal(resumed.status, 'running');
      const [toNoor] = await waitForMessages(m, noor.id);
      assert.equal(toNoor.subject, 'Hi Noor');
      assert.equal((await mr.messages.get(toNoor.id)).text?.trim(), 'Hello Noor, on pro plan.');
      const [toKim] = await waitForMessages(m, kim.id);
      assert.equal(toKim.subject, 'Hi Kim');
      await waitFor(async () => (await mr.campaigns.get(c.id)).funnel.sent_per_step[0] === 2 || null, 30_000, 'both sends in the funnel');

      const again = await mr.campaigns.create(defineCampaign({ name: 'another', senders: [{ inbox: sender.id }], steps: [{ subject: 'x', text: 'y' }], escalate_to: owner.address }), { clientId: 'sdk-csv-1' });
      assert.equal(again.id, c.id, 'create with a known clientId returns that campaign');
      assert.equal(again.funnel.leads, 2, 'and adds nothing');

      await assert.rejects(mr.campaigns.importCsv(c.id, 'email\nx@y.z\n', { map: { 'a,b': 'E-mail' } }), TypeError, 'a mapping the API could not read is refused before sending');
    });

    test('retries: create with a clientId, pause and resume are retried after a lost response and act once; create without one, and addLeads, are not', async () => {
      const viaNet = (match: (method: string, url: URL) => boolean) => {
        const f = losingFetch(match);
        return { sdk: new Mailroom({ baseUrl: m.api.base, token: m.adminToken, fetch: f.fetch, maxRetries: 2 }), log: f.log };
      };
      const isCreate = (method: string, url: URL) => method === 'POST' && url.pathname === '/v1/campaigns';
      const named = async (name: string) => (await mr.campaigns.list().toArray()).filter((x) => x.name === name);

      // create with clientId: the server creates it, the answer is lost, the retry gets the same campaign.
      const a = viaNet(isCreate);
      const created = await a.sdk.campaigns.create({ name: 'sdk lost create', senders: [{ inbox: sender.id }], steps: [{ subject: 'x', text: 'y' }], escalate_to: owner.address }, { clientId: 'sdk-lost-1' });
      assert.deepEqual(a.log.map((l) => l.lost), [true, false], 'one retry');
      assert.deepEqual((await named('sdk lost create')).map((x) => x.id), [created.id], 'one campaign');

      // The same for a YAML file (client_id as a query parameter).
      const y = viaNet(isCreate);
      const fromYaml = await y.sdk.campaigns.createFromYaml(yamlFile('sdk lost yaml'), { clientId: 'sdk-lost-yaml' });
      assert.deepEqual(y.log.map((l) => [l.path, l.lost]), [['/v1/campaigns?client_id=sdk-lost-yaml', true], ['/v1/campaigns?client_id=sdk-lost-yaml', false]]);
      assert.deepEqual((await named('sdk lost yaml')).map((x) => x.id), [fromYaml.id]);

      // Without a clientId a repeat would create a second campaign: the SDK does not retry.
      const b = viaNet(isCreate);
      await assert.rejects(b.sdk.campaigns.create({ name: 'sdk lost unkeyed', senders: [{ inbox: sender.id }], steps: [{ subject: 'x', text: 'y' }], escalate_to: owner.address }), MailroomConnectionError);
      assert.equal(b.log.length, 1, 'not retried');
      assert.equal((await named('sdk lost unkeyed')).length, 1, 'the server did create it: a retry would have made two');

      // pause / resume are retried (a second pause changes nothing).
      const target = await lead('sdk-lost-lead');
      const live = await mr.campaigns.create({ name: 'sdk lost pause', senders: [{ inbox: sender.id }], steps: [{ subject: 'x', text: 'y' }], escalate_to: owner.address, leads: [{ email: target.address }] });
      const p = viaNet((method, url) => method === 'POST' && url.pathname.endsWith('/pause'));
      assert.equal((await p.sdk.campaigns.pause(live.id)).status, 'paused');
      assert.deepEqual(p.log.map((l) => l.lost), [true, false]);
      const r = viaNet((method, url) => method === 'POST' && url.pathname.endsWith('/resume'));
      assert.equal((await r.sdk.campaigns.resume(live.id)).status, 'running');
      assert.deepEqual(r.log.map((l) => l.lost), [true, false]);

      // addLeads has no key: not retried once the server may have acted.
      const other = await lead('sdk-lost-other');
      const l = viaNet((method, url) => method === 'POST' && url.pathname.endsWith('/leads'));
      await assert.rejects(l.sdk.campaigns.addLeads(live.id, [{ email: other.address }]), MailroomConnectionError);
      assert.equal(l.log.length, 1);
      assert.ok((await mr.campaigns.runs(live.id).toArray()).some((run) => run.lead.email === other.address), 'the lead was added once');
    });

    test('the dead-letter queue is empty; runs.list filters by status; retry of a run that is not dead is a conflict', async () => {
      assert.deepEqual(await mr.runs.list({ status: 'dead' }).toArray(), []);
      const done = await mr.runs.list({ status: 'done', limit: 5 }).toArray();
      assert.ok(done.length >= 7, `${done.length} done runs`);
      assert.ok(done.every((r) => r.status === 'done'));
      const conflict = await mr.runs.retry(done[0].id).catch((e: unknown) => e);
      assert.ok(conflict instanceof MailroomApiError);
      assert.equal(conflict.status, 409);
      assert.equal(conflict.code, 'conflict');
      assert.equal((await mr.runs.get(done[0].id)).status, 'done', 'unchanged');
    });
  });
}
