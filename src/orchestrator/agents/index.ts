import { MailroomError } from '../../errors.ts';
import type { AgentRegistry, AgentSet, RoleName } from '../roles.ts';
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

/** The implementation of each role a campaign asked for: "builtin" or a name the server registered. */
export function resolveAgents(choice: Record<RoleName, string>, registry: AgentRegistry = {}): AgentSet {
  const pick = <R extends RoleName>(role: R): AgentSet[R] => {
    const name = choice[role];
    if (name === 'builtin') return BUILTIN_AGENTS[role];
    const impl = (registry[role] as Record<string, AgentSet[R]> | undefined)?.[name];
    if (!impl) {
      const known = ['builtin', ...Object.keys(registry[role] ?? {})].join(', ');
      throw new MailroomError('invalid_request', `agents.${role}: no implementation named "${name}" is registered (known: ${known})`);
    }
    return impl;
  };
  return { research: pick('research'), personalize: pick('personalize'), sequence: pick('sequence'), respond: pick('respond') };
}
