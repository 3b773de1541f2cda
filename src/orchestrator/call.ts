import type { z } from 'zod';
import { ROLE_SCHEMAS, type AgentSet, type ModelUsage, type RoleContext, type RoleName } from './roles.ts';

/**
 * Calling an agent role: the input is validated before the call and the output after it, the call
 * has a deadline, and its timing is measured for the trace. Whatever goes wrong — a throw, a
 * timeout, an output that does not match the role's schema — is an AgentFailure, which the engine
 * retries with backoff and finally dead-letters with this reason. A user's agent can therefore
 * never push an unchecked value into a run.
 */
export class AgentFailure extends Error {
  readonly role: RoleName;
  /** The model calls the agent reported before it failed (the 429s, the timed-out attempt), for the trace. */
  usage: ModelUsage[] = [];
  constructor(role: RoleName, message: string, options?: { cause?: unknown }) {
    super(`${role} agent: ${message}`, options);
    this.name = 'AgentFailure';
    this.role = role;
  }
}

type In<R extends RoleName> = z.input<(typeof ROLE_SCHEMAS)[R]['input']>;
type Out<R extends RoleName> = z.output<(typeof ROLE_SCHEMAS)[R]['output']>;

export interface RoleCall<R extends RoleName> {
  output: Out<R>;
  startedAt: Date;
  durationMs: number;
  /** The model calls the agent reported (RoleContext.recordUsage), for the trace. */
  usage: ModelUsage[];
}

const METHOD = { research: 'research', personalize: 'personalize', sequence: 'sequence', respond: 'respond' } as const;

function issues(err: z.ZodError): string {
  return err.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

export async function callRole<R extends RoleName>(role: R, agents: AgentSet, input: In<R>, ctx: Omit<RoleContext, 'signal' | 'recordUsage'>, timeoutMs: number): Promise<RoleCall<R>> {
  const schemas = ROLE_SCHEMAS[role];
  const parsedIn = schemas.input.safeParse(input);
  if (!parsedIn.success) throw new AgentFailure(role, `input does not match the role's schema: ${issues(parsedIn.error)}`);
  const controller = new AbortController();
  const startedAt = new Date();
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const usage: ModelUsage[] = [];
  try {
    const agent = agents[role] as unknown as Record<string, (i: unknown, c: RoleContext) => Promise<unknown>>;
    const call = agent[METHOD[role]].call(agent, parsedIn.data, { ...ctx, signal: controller.signal, recordUsage: (u: ModelUsage) => void usage.push(u) });
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort(new Error('timeout'));
        reject(new AgentFailure(role, `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    const raw = await Promise.race([call, deadline]);
    const parsedOut = schemas.output.safeParse(raw);
    if (!parsedOut.success) throw new AgentFailure(role, `output does not match the role's schema: ${issues(parsedOut.error)}`);
    return { output: parsedOut.data as Out<R>, startedAt, durationMs: performance.now() - t0, usage };
  } catch (err) {
    const failure = err instanceof AgentFailure ? err : new AgentFailure(role, (err as Error)?.message ?? String(err), { cause: err });
    failure.usage = usage;
    throw failure;
  } finally {
    clearTimeout(timer);
  }
}
