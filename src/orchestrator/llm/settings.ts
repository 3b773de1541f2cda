import { MailroomError } from '../../errors.ts';
import type { Config } from '../../config/config.ts';
import type { LlmProvider, LlmSpec } from '../spec.ts';

/**
 * Which model a campaign's "llm" roles talk to: its `llm` block merged over the server's
 * MAILROOM_LLM_* settings. Resolved when the campaign is created (a campaign that cannot work is
 * refused then, with what is missing) and again by the engine of whichever process runs it.
 */

/** The server's side: config.ts `Config.llm`. */
export type LlmServerSettings = Config['llm'];

/** Everything one model call needs. */
export interface LlmSettings {
  provider: LlmProvider;
  baseUrl: string;
  model: string;
  apiKey?: string;
  timeoutMs: number;
  maxRetries: number;
  /**
   * Set when the endpoint is the campaign's own choice (its llm.base_url, not the server's): every
   * request is then judged and pinned by the SSRF guard (egress.ts). Null for the server's endpoint.
   */
  egress: LlmServerSettings['egress'] | null;
}

/** Where each provider is when nobody says: the public APIs. */
export const DEFAULT_BASE_URL: Record<LlmProvider, string> = {
  'openai-compatible': 'https://api.openai.com/v1',
  anthropic: 'https://api.anthropic.com/v1',
};

export const SERVER_DEFAULTS: LlmServerSettings = { timeoutMs: 30_000, maxRetries: 2, keys: {}, egress: { allow: '', dnsServers: [] } };

const trimUrl = (u: string) => u.replace(/\/+$/, '');

/**
 * The campaign's settings over the server's. A campaign that names another endpoint (another
 * provider or base_url) than the server's gets nothing of the server's endpoint: not its model
 * (meant for another server) and above all not its API key — MAILROOM_LLM_API_KEY goes only to
 * MAILROOM_LLM_BASE_URL, so whoever may create campaigns cannot send it elsewhere. Timeout and
 * retries are the server's either way.
 *
 * `roles` names the roles asking for a model, for the message. Throws invalid_request naming what
 * is missing.
 */
export function resolveLlmSettings(spec: LlmSpec | undefined, server: LlmServerSettings = SERVER_DEFAULTS, roles: string[] = []): LlmSettings {
  const s = spec ?? {};
  const who = roles.length ? `agents.${roles.join(', agents.')} ${roles.length > 1 ? 'are' : 'is'} "llm"` : 'a model-backed agent';
  const serverProvider = server.provider ?? (server.model || server.baseUrl ? 'openai-compatible' : undefined);
  const provider = s.provider ?? serverProvider ?? 'openai-compatible';
  const sameEndpoint = provider === serverProvider && (s.base_url === undefined || trimUrl(s.base_url) === trimUrl(server.baseUrl ?? DEFAULT_BASE_URL[provider]));
  const baseUrl = trimUrl(s.base_url ?? (sameEndpoint ? server.baseUrl : undefined) ?? DEFAULT_BASE_URL[provider]);

  const model = s.model ?? (sameEndpoint ? server.model : undefined);
  if (!model) {
    const why = server.model && !sameEndpoint
      ? `the campaign's llm block names another endpoint (${provider} at ${baseUrl}) than the server's, so it must name its model too: set llm.model`
      : 'set llm.model in the campaign, or MAILROOM_LLM_MODEL on the server';
    throw new MailroomError('invalid_request', `${who} but no model is configured: ${why}`);
  }

  let apiKey: string | undefined;
  if (s.api_key_env) {
    apiKey = server.keys[s.api_key_env];
    if (!apiKey) throw new MailroomError('invalid_request', `llm.api_key_env: ${s.api_key_env} is not set in the server's environment`);
  } else if (sameEndpoint) {
    apiKey = server.apiKey;
  }
  if (provider === 'anthropic' && !apiKey) {
    throw new MailroomError('invalid_request', `${who} with the anthropic provider, which needs an API key: name its variable with llm.api_key_env${sameEndpoint ? ', or set MAILROOM_LLM_API_KEY on the server' : ''}`);
  }
  // Whoever may create campaigns must not reach the server's own network through the model client
  // (a metadata service, an internal API whose answer would come back as the "model's" text).
  const campaignsOwn = s.base_url !== undefined && !(server.baseUrl && trimUrl(s.base_url) === trimUrl(server.baseUrl));
  return { provider, baseUrl, model, apiKey, timeoutMs: server.timeoutMs, maxRetries: server.maxRetries, egress: campaignsOwn ? server.egress : null };
}
