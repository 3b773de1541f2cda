import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { allRuns, createScenario, startWorldAndMailroom, verifyCampaign, waitCompleted, type CampaignWorld, CAMPAIGN_MAX_MS, CAMPAIGN_STALL_MS } from './helpers/campaign.ts';
import { ENGINES, skipEngine, type TestMailroom } from './helpers/mailroom.ts';

/**
 * The 200-lead campaign against the simulated prospects' world over real SMTP (issue 6, first
 * acceptance point), with the sink-log checks of helpers/campaign.ts. The world is Mailroom's relay;
 * the campaign clock runs four hours a second. Safety cases: campaign-safety.test.ts.
 */
// Tight enough to bind when a window opens for many leads at once (a burst of first messages).
const LIMIT = { max: 30, seconds: 5 };

for (const engine of ENGINES) {
  describe(`${engine}: campaigns against the simulated world`, { skip: await skipEngine(engine) }, () => {
    let cw: CampaignWorld;
    let m: TestMailroom;
    let stop: () => Promise<void>;
    before(async () => {
      ({ cw, m, stop } = await startWorldAndMailroom(engine));
      // One shared budget for every send of the server: the campaign must wait for it, never exceed it.
      assert.equal((await m.api('POST', '/v1/limits', { scope: 'global', max: LIMIT.max, window_seconds: LIMIT.seconds })).status, 201);
    });
    after(() => stop?.());

    test('a 200-lead, 3-step campaign: every lead ends as its persona implies, and the sink log proves the rules held', { timeout: CAMPAIGN_MAX_MS + 300_000 }, async () => {
      const sc = await createScenario(m.api, cw, { leads: 200 });
      await waitCompleted(() => m.api, sc.id, CAMPAIGN_STALL_MS, CAMPAIGN_MAX_MS);
      const v = await verifyCampaign(m.api, cw, sc, { limit: LIMIT });
      assert.ok(v.deferredByLimit > 0, 'the rate limit bound at least once (else the check above proves nothing)');
      console.log(`  ${engine} campaign: ${JSON.stringify(v)}`);

      // One trace per run: agent calls, handoffs, the sends with their events, the reply and its handling.
      const runs = await allRuns(m.api, sc.id);
      const replied = runs.find((r) => r.reply_class === 'interested' && r.lead.email.startsWith('interested'))!;
      const trace = (await m.api('GET', `/v1/runs/${replied.id}/trace`)).body.timeline as any[];
      const names = trace.map((e) => `${e.kind}:${e.name}`);
      for (const want of ['agent:research', 'handoff:research → personalize', 'agent:personalize', 'agent:sequence', 'send:send step 1', 'event:message.sent', 'agent:respond', 'event:run.reply', 'event:run.finished']) {
        assert.ok(names.includes(want), `trace has ${want}: ${names.join(', ')}`);
      }
      assert.ok(names.indexOf('agent:research') < names.indexOf('send:send step 1') && names.indexOf('send:send step 1') < names.indexOf('agent:respond'));
      assert.ok(trace.filter((e) => e.kind === 'agent').every((e) => typeof e.duration_ms === 'number' && e.output), 'agent spans carry duration and output');
      const hard = runs.find((r) => r.lead.email.startsWith('hard-bounce'))!;
      assert.ok((await m.api('GET', `/v1/runs/${hard.id}/trace`)).body.timeline.some((e: any) => e.name === 'message.bounced'), 'a bounce is on its run\'s trace');
    });
  });
}
