import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Prospect } from '../src/orchestrator/demo/personas.ts';
import { INJECTION_HIDDEN, INJECTION_VISIBLE } from '../src/orchestrator/demo/personas.ts';
import { allRuns, createScenario, startWorldAndMailroom, waitCompleted, type CampaignWorld } from './helpers/campaign.ts';
import { ENGINES, skipEngine, waitFor, type TestMailroom } from './helpers/mailroom.ts';

/**
 * Campaign safety against the simulated world over real SMTP (issue 6; issue 4's "never reaches a
 * workflow"): a high-risk reply goes to a human, never to an agent or an automatic answer; a reply
 * from anyone at the lead's company stops every lead there.
 */

const prospect = (persona: Prospect['persona'], n: number, domain: string): Prospect => ({
  address: `${persona.replace(/_/g, '-')}.${n}@${domain}`, persona, first_name: 'Sam', last_name: 'Lee', company: domain.split('.')[0], domain,
});

for (const engine of ENGINES) {
  describe(`${engine}: campaign safety against the simulated world`, { skip: await skipEngine(engine) }, () => {
    let cw: CampaignWorld;
    let m: TestMailroom;
    let stop: () => Promise<void>;
    before(async () => {
      ({ cw, m, stop } = await startWorldAndMailroom(engine));
    });
    after(() => stop?.());

    test('A high-risk reply escalates to the human address and is never answered automatically, nor shown to the response agent', async () => {
      // Every class would be answered automatically here: only the injection policy stands between the reply and an answer.
      const prospects = [prospect('interested', 1, 'calm-1.example.de'), prospect('injection', 2, 'hostile-2.example.de')];
      const sc = await createScenario(m.api, cw, {
        // Three business days before a follow-up: the replies are parsed long before, even on a loaded machine.
        leads: 2, prospects, delays: [3, 3],
        tweak: (s) => {
          s.responses = { interested: 'reply', question: 'reply', not_interested: 'stop', wrong_person: 'reply' };
          s.reply_template = 'Thanks {{first_name|there}}! Here is the pilot guide you asked about.';
        },
      });
      await waitCompleted(() => m.api, sc.id, 120_000, 540_000);
      const runs = await allRuns(m.api, sc.id);
      const calm = runs.find((r) => r.lead.email === prospects[0].address)!;
      const hostile = runs.find((r) => r.lead.email === prospects[1].address)!;
      assert.equal(calm.outcome, 'replied');
      assert.equal(hostile.status, 'needs_human');
      assert.equal(hostile.outcome, 'needs_human');

      // The calm reply was answered automatically (proving the path is live); the hostile one was not.
      const answered = (addr: string) => cw.world.received.filter((w) => w.to === addr && /pilot guide you asked about/.test(w.text));
      await waitFor(async () => answered(prospects[0].address).length === 1, 15_000, 'the automatic answer to the calm reply');
      assert.equal(answered(prospects[1].address).length, 0, 'no automatic answer to the high-risk reply');
      assert.equal(cw.world.received.filter((w) => w.to === prospects[1].address).length, 1, 'nothing after the first message to the hostile prospect');

      // The human got an escalation that points at the message without carrying its text.
      const escalation = await waitFor(async () => {
        const list = (await m.api('GET', `/v1/inboxes/${sc.ownerInboxId}/messages?limit=50`)).body.data;
        const hit = list.find((x: any) => /needs a human/.test(x.subject) && x.subject.includes(prospects[1].address));
        return hit ? (await m.api('GET', `/v1/messages/${hit.id}`)).body : null;
      }, 15_000, 'the escalation email');
      assert.match(escalation.text, /not shown to any agent/);
      assert.ok(!escalation.text.includes(INJECTION_VISIBLE.slice(0, 40)) && !escalation.text.includes(INJECTION_HIDDEN.slice(0, 40)), 'the escalation does not carry the attacker\'s text');

      // Its content never reached the response agent: no respond span on its trace.
      const trace = (await m.api('GET', `/v1/runs/${hostile.id}/trace`)).body.timeline as any[];
      assert.ok(!trace.some((e) => e.kind === 'agent' && e.name === 'respond'), 'the response agent was not called');
      assert.ok(trace.some((e) => e.name === 'run.escalated'));
    });

    test('a reply from anyone at the same company stops every lead there; the world sees no follow-up to them', async () => {
      const prospects = [prospect('interested', 1, 'shared-co.example.fr'), prospect('silent', 2, 'shared-co.example.fr'), prospect('silent', 3, 'shared-co.example.fr'), prospect('silent', 4, 'elsewhere-4.example.fr')];
      const sc = await createScenario(m.api, cw, { leads: 4, prospects });
      await waitCompleted(() => m.api, sc.id, 120_000, 540_000);
      const runs = await allRuns(m.api, sc.id);
      const by = (addr: string) => runs.find((r) => r.lead.email === addr)!;
      assert.equal(by(prospects[0].address).reply_class, 'interested');
      for (const p of prospects.slice(1, 3)) {
        assert.equal(by(p.address).outcome, 'company_replied', p.address);
        assert.equal(cw.world.received.filter((w) => w.to === p.address).length, 1, `${p.address} got the first step only`);
      }
      assert.equal(by(prospects[3].address).outcome, 'no_reply', 'another company is not stopped');
      assert.equal(cw.world.received.filter((w) => w.to === prospects[3].address).length, 3);
    });
  });
}
