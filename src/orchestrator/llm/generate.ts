import { APICallError, generateText, JSONParseError, NoObjectGeneratedError, Output, RetryError, TypeValidationError, type LanguageModelUsage } from 'ai';
import type { z } from 'zod';
import type { ModelUsage, RoleContext } from '../roles.ts';
import { languageModel, PROVIDER_OPTIONS, providerLabel, type Attempts } from './model.ts';
import { renderPrompt, type Prompt } from './prompts.ts';
import type { LlmSettings } from './settings.ts';

/**
 * One model call of a role: the role's prompt, structured output validated with the role's own zod
 * schema (the same one callRole checks again), and an entry on the trace for every call, failed or
 * not (tokens, latency, HTTP attempts, the prompt version). What can go wrong becomes an
 * LlmCallError whose message says why in words an operator can act on — the engine puts it on the
 * run (retried with backoff, then dead-lettered with it).
 *
 * Retries: the SDK retries what the endpoint refused for the moment (429 after its Retry-After, 5xx,
 * a dropped connection) up to maxRetries times. A timeout, malformed JSON or an answer outside the
 * schema is not retried here: the role call fails and the engine's backoff retries the run.
 */

export class LlmCallError extends Error {
  override readonly name = 'LlmCallError';
}

export interface GenerateOptions<S extends z.ZodType> {
  settings: LlmSettings;
  prompt: Prompt;
  /** The user template's slots. */
  values: Record<string, string>;
  schema: S;
  /** The output's name in the request (json_schema.name): which answer is asked for. */
  name: string;
  description: string;
}

function tokens(u: LanguageModelUsage | undefined): { input_tokens: number | null; output_tokens: number | null } {
  return { input_tokens: u?.inputTokens ?? null, output_tokens: u?.outputTokens ?? null };
}

const short = (s: string, n = 300) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function statusWord(status: number): string {
  if (status === 429) return 'rate limited (429)';
  if (status === 401 || status === 403) return `refused our credentials (${status})`;
  if (status === 0) return 'unreachable';
  return `answered ${status}`;
}

/** "summary: expected string; facts: …" from the ZodError behind a TypeValidationError. */
function zodIssues(err: unknown): string | null {
  const issues = (err as { issues?: { path: PropertyKey[]; message: string }[] } | undefined)?.issues;
  if (!Array.isArray(issues)) return null;
  return issues.slice(0, 5).map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Why a call failed, for the run's last_error (and the trace). */
export function describeFailure(err: unknown, attempts: Attempts, timeoutMs: number, timedOut: boolean): string {
  const n = attempts.count;
  const times = `after ${n} attempt${n === 1 ? '' : 's'}`;
  if (timedOut) return `no answer within ${timeoutMs} ms (${times})`;
  if (NoObjectGeneratedError.isInstance(err)) {
    const cause = err.cause;
    if (JSONParseError.isInstance(cause)) return 'model returned invalid JSON';
    if (TypeValidationError.isInstance(cause)) return `model output does not match the schema: ${short(zodIssues(cause.cause) ?? cause.message, 500)}`;
    return `model returned no usable answer (finish reason: ${err.finishReason ?? 'unknown'})`;
  }
  const last = RetryError.isInstance(err) ? err.lastError : err;
  if (APICallError.isInstance(last)) {
    const status = last.statusCode ?? attempts.statuses.at(-1) ?? 0;
    const word = statusWord(status);
    // The provider's own message helps with 4xx (a wrong model name); a 429's says nothing more.
    return status === 429 || status === 0 ? `model endpoint ${word} ${times}` : `model endpoint ${word} ${times}: ${short(last.message)}`;
  }
  const e = last as Error | undefined;
  return `model call failed ${times}: ${short(e?.message ?? String(last))}`;
}

export async function generate<S extends z.ZodType>(o: GenerateOptions<S>, ctx: RoleContext): Promise<z.output<S>> {
  const { settings } = o;
  const attempts: Attempts = { count: 0, statuses: [] };
  const record = (u: Omit<ModelUsage, 'provider' | 'model' | 'attempts' | 'prompt'>) =>
    ctx.recordUsage?.({ provider: providerLabel(settings), model: settings.model, prompt: o.prompt.version, ...u, attempts: attempts.count });
  // Our own deadline rather than the SDK's `timeout`, so a timeout is told apart from the role
  // call's cancellation (ctx.signal: callRole's own deadline, or shutdown).
  const deadline = AbortSignal.timeout(settings.timeoutMs);
  const t0 = performance.now();
  try {
    const result = await generateText({
      model: languageModel(settings, attempts),
      instructions: o.prompt.system,
      prompt: renderPrompt(o.prompt, o.values),
      output: Output.object({ schema: o.schema, name: o.name, description: o.description }),
      maxRetries: settings.maxRetries,
      abortSignal: AbortSignal.any([ctx.signal, deadline]),
      providerOptions: PROVIDER_OPTIONS,
    });
    record({ ...tokens(result.totalUsage), latency_ms: Math.round(performance.now() - t0) });
    return result.output as z.output<S>;
  } catch (err) {
    const why = describeFailure(err, attempts, settings.timeoutMs, deadline.aborted && !ctx.signal.aborted);
    record({ ...tokens(NoObjectGeneratedError.isInstance(err) ? err.usage : undefined), latency_ms: Math.round(performance.now() - t0), error: why });
    throw new LlmCallError(why, { cause: err });
  }
}
