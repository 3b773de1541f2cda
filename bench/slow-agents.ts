/**
 * Simulated agent latency for `bench/campaign.ts`, through Mailroom's public plug-in mechanism:
 * `MAILROOM_AGENTS_MODULE=bench/slow-agents.ts` registers an implementation named `slow` for every
 * role, which waits a fixed time (as a model call would) and then answers exactly as the built-in
 * agent does (src/orchestrator/agents/). A campaign picks them with
 * `agents: { research: 'slow', personalize: 'slow', sequence: 'slow', respond: 'slow' }`.
 *
 * The wait per role comes from BENCH_AGENT_LATENCY in the server's environment, e.g.
 * `research=200,personalize=400,sequence=20,respond=100` (milliseconds; roles left out keep these
 * defaults). The wait is a timer, not CPU work: the process stays free for other runs meanwhile,
 * as it would while a remote model thinks. It honours the engine's abort signal (agent timeout).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { BUILTIN_AGENTS } from '../src/orchestrator/agents/index.ts';
import type { AgentRegistry, RoleContext, RoleName } from '../src/orchestrator/roles.ts';

export const DEFAULT_LATENCY_MS: Record<RoleName, number> = { research: 200, personalize: 400, sequence: 20, respond: 100 };

/** `research=200,personalize=400` → the defaults with those roles changed; throws on anything else. */
export function parseLatency(spec: string | undefined): Record<RoleName, number> {
  const out = { ...DEFAULT_LATENCY_MS };
  for (const part of (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(research|personalize|sequence|respond)\s*=\s*(\d+(?:\.\d+)?)\s*(?:ms)?$/.exec(part);
    if (!m) throw new Error(`agent latency: "${part}" is not role=milliseconds (roles: research, personalize, sequence, respond)`);
    out[m[1] as RoleName] = Number(m[2]);
  }
  return out;
}

const latency = parseLatency(process.env.BENCH_AGENT_LATENCY);

const wait = (role: RoleName, ctx: RoleContext) => (latency[role] > 0 ? delay(latency[role], undefined, { signal: ctx.signal }) : Promise.resolve());

const agents: AgentRegistry = {
  research: { slow: { async research(input, ctx) { await wait('research', ctx); return BUILTIN_AGENTS.research.research(input, ctx); } } },
  personalize: { slow: { async personalize(input, ctx) { await wait('personalize', ctx); return BUILTIN_AGENTS.personalize.personalize(input, ctx); } } },
  sequence: { slow: { async sequence(input, ctx) { await wait('sequence', ctx); return BUILTIN_AGENTS.sequence.sequence(input, ctx); } } },
  respond: { slow: { async respond(input, ctx) { await wait('respond', ctx); return BUILTIN_AGENTS.respond.respond(input, ctx); } } },
};

export default agents;
