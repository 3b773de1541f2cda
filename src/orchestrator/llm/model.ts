import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import type { LanguageModel } from 'ai';
import { guardedFetch } from './egress.ts';
import type { LlmSettings } from './settings.ts';

/**
 * The language model of one role call, from the Vercel AI SDK's providers: any OpenAI-compatible
 * chat completions endpoint (OpenAI, vLLM, Ollama, llama.cpp server…) or Anthropic's Messages API.
 *
 * A provider object is cheap (no connection, no network until a call), so each call gets its own,
 * with a fetch that counts the HTTP attempts the SDK makes and what each answered: the SDK retries
 * 429s, 5xx and dropped connections by itself and reports only the last error, while the trace and
 * the failure message ("rate limited (429) after 3 attempts") need the count.
 */

export interface Attempts {
  /** HTTP requests made so far. */
  count: number;
  /** The status of each, in order; 0 when no response came (refused, reset, aborted). */
  statuses: number[];
}

function countingFetch(attempts: Attempts, base: typeof fetch): typeof fetch {
  return async (input, init) => {
    attempts.count++;
    try {
      const res = await base(input, init);
      attempts.statuses.push(res.status);
      return res;
    } catch (err) {
      attempts.statuses.push(0);
      throw err;
    }
  };
}

/** The provider's name on the trace (ModelUsage.provider). */
export function providerLabel(s: LlmSettings): string {
  return s.provider;
}

export function languageModel(s: LlmSettings, attempts: Attempts): LanguageModel {
  // A campaign's own endpoint goes through the SSRF guard; the server's is the operator's choice.
  const fetch = countingFetch(attempts, s.egress ? guardedFetch(s.egress) : globalThis.fetch);
  if (s.provider === 'anthropic') {
    return createAnthropic({ baseURL: s.baseUrl, apiKey: s.apiKey, fetch }).languageModel(s.model);
  }
  return createOpenAICompatible({
    name: 'llm',
    baseURL: s.baseUrl,
    // Ollama and llama.cpp take none; the SDK then sends no Authorization header.
    apiKey: s.apiKey,
    fetch,
    // Send the role's JSON schema as response_format json_schema (OpenAI, vLLM, Ollama and the
    // llama.cpp server all constrain decoding with it), not the bare json_object mode.
    supportsStructuredOutputs: true,
    includeUsage: true,
  }).chatModel(s.model);
}

/**
 * Provider options of every call. Non-strict JSON schema: OpenAI's strict mode rejects schemas with
 * optional fields and open records (a Draft's optional subject, research variables), and the output
 * is validated with the role's zod schema after the call anyway.
 */
export const PROVIDER_OPTIONS = { openaiCompatible: { strictJsonSchema: false } } as const;
