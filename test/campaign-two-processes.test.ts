import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { allRuns, campaignServes, createScenario, verifyCampaign, waitCompleted, CAMPAIGN_MAX_MS, CAMPAIGN_STALL_MS } from './helpers/campaign.ts';
import { skipEngine } from './helpers/mailroom.ts';
import { startServe } from './helpers/process.ts';

/**
 * Two orchestrator processes on one PostgreSQL run the same 200-lead campaign (issue 6): the same
 * outcome as one process, no step sent twice. PostgreSQL only: the embedded store belongs to one
 * process by design (its data-directory lock).
 */
const ADMIN = 'campaign-two-processes-admin-token-01';

describe('postgres: two orchestrator processes', { skip: await skipEngine('postgres') }, () => {
  const serves = campaignServes('postgres', ADMIN);
  after(() => serves.cleanup());

  test('two serve processes on one PostgreSQL: every lead ends as its persona implies, no step sent twice, both processes did the work', { timeout: CAMPAIGN_MAX_MS + 300_000 }, async () => {
    const { cw, env, p: a, api } = await serves.launch();
    const b = await startServe(env);
    // Replies may land on either process: the world sends them to the second, whose ingest wakes runs anywhere.
    cw.world.setMailroom({ host: '127.0.0.1', port: b.smtpPort });
    const sc = await createScenario(api, cw, { leads: 200 });
    await waitCompleted(() => api, sc.id, CAMPAIGN_STALL_MS, CAMPAIGN_MAX_MS);
    const v = await verifyCampaign(api, cw, sc);
    console.log(`  two processes: ${JSON.stringify(v)}`);
    // Both processes did campaign work: each agent span names the process that ran it.
    const workers = new Set<string>();
    for (const r of (await allRuns(api, sc.id)).slice(0, 60)) {
      for (const e of (await api('GET', `/v1/runs/${r.id}/trace`)).body.timeline) if (e.kind === 'agent') workers.add(e.input.worker);
    }
    assert.deepEqual([...workers].map((w) => w.split(':')[1]).sort(), [String(a.pid), String(b.pid)].sort(), 'runs were worked by both processes');
  });
});
