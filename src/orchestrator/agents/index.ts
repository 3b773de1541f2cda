import { MailroomError } from '../../errors.ts';
import { llmAgent } from '../llm/agents.ts';
import { resolveLlmSettings, type LlmServerSettings, type LlmSettings } from '../llm/settings.ts';
import type { AgentRegistry, AgentSet, RoleName } from '../roles.ts';
import type { LlmSpec } from '../spec.ts';
import { builtinPersonalize } from './personalize.ts';
import { builtinResearch } from './research.ts';
import { builtinRespond } from './respond.ts';
import { builtinSequence } from './sequence.ts';

/** The implementations that need no network and no model: the default for every role. */
export const BUILTIN_AGENTS: AgentSet = {
  research: builtinResearch(),
  personalize: builtinPersonalize,
  sequence: builtinSequence,
  respond: builtinRespond,
};

/** The name that picks the model-backed implementation of a role (orchestrator/llm/). */
export const LLM_AGENT = 'llm';

/** What "llm" roles need: the campaign's llm block and the server's MAILROOM_LLM_* settings. */
export interface LlmSource {
  spec?: LlmSpec;
  server?: LlmServerSettings;
  /**
   * The engine's way: a model that cannot be configured here (the key's variable missing in this
   * process) fails each call of its roles with the reason, so runs are retried and then
   * dead-lettered saying why, instead of the job erroring where nobody looks. Creation throws.
   */
  deferErrors?: boolean;
}

/**
 * The implementation of each role a campaign asked for: "builtin", "llm", or a name the server
 * registered. Throws invalid_request for an unknown name, or for "llm" without a usable model.
 */
export function resolveAgents(choice: Record<RoleName, string>, registry: AgentRegistry = {}, llm: LlmSource = {}): AgentSet {
  const llmRoles = ROLES.filter((r) => choice[r] === LLM_AGENT);
  let settings: LlmSettings | null = null;
  let unusable: MailroomError | null = null;
  if (llmRoles.length) {
    try {
      settings = resolveLlmSettings(llm.spec, llm.server, llmRoles);
    } catch (err) {
      if (!(err instanceof MailroomError) || !llm.deferErrors) throw err;
      unusable = err;
    }
  }
  const pick = <R extends RoleName>(role: R): AgentSet[R] => {
    const name = choice[role];
    if (name === 'builtin') return BUILTIN_AGENTS[role];
    if (name === LLM_AGENT) return settings ? llmAgent(role, settings) : failing(role, unusable!.message);
    const impl = (registry[role] as Record<string, AgentSet[R]> | undefined)?.[name];
    if (!impl) {
      const known = ['builtin', LLM_AGENT, ...Object.keys(registry[role] ?? {})].join(', ');
      throw new MailroomError('invalid_request', `agents.${role}: no implementation named "${name}" is registered (known: ${known})`);
    }
    return impl;
  };
  return { research: pick('research'), personalize: pick('personalize'), sequence: pick('sequence'), respond: pick('respond') };
}

const ROLES: RoleName[] = ['research', 'personalize', 'sequence', 'respond'];

/** An implementation whose every call fails with `reason` (callRole makes it an AgentFailure). */
function failing<R extends RoleName>(role: R, reason: string): AgentSet[R] {
  const fail = async () => { throw new Error(reason); };
  return { [role]: fail } as unknown as AgentSet[R];
}
