import { Agent, fetch as undiciFetch } from 'undici';
import { createResolver } from '../../dns/resolver.ts';
import { dnsLookup, parseAllowList, resolveTarget, type TargetKind, type WebhookTarget } from '../../webhooks/ssrf.ts';
import type { LlmServerSettings } from './settings.ts';

/**
 * The SSRF guard on a campaign's own model endpoint. `llm.base_url` is chosen by whoever may create
 * campaigns, and the model client POSTs to it from inside the server's network and feeds the answer
 * back into drafts and replies: without a guard it reaches the cloud metadata service or an internal
 * API and mails out what it answers. So the URL is judged like a webhook URL (webhooks/ssrf.ts:
 * every address its name resolves to must be public, or allowed by MAILROOM_LLM_ALLOW) when the
 * campaign is created and before every request, and each request connects only to the address just
 * judged (no second lookup a rebinding DNS server could answer differently). Redirects are not
 * followed: a 3xx comes back to the SDK as the failed call it is.
 *
 * undici (Node's own fetch implementation, as a package) because the global fetch has no way to
 * choose the address it connects to.
 */
export const LLM_TARGET: TargetKind = { label: 'llm.base_url', allowVar: 'MAILROOM_LLM_ALLOW', allowFor: 'models on your own network', forbiddenCode: 'llm_url_forbidden' };

type Egress = LlmServerSettings['egress'];

function judge(egress: Egress): (url: string) => Promise<WebhookTarget> {
  const lookup = dnsLookup(createResolver(egress.dnsServers));
  const allow = parseAllowList(egress.allow);
  return (url) => resolveTarget(url, { lookup, allow, kind: LLM_TARGET });
}

/** Refuses (llm_url_forbidden, invalid_request) an endpoint the guard would refuse at call time. */
export async function checkLlmEndpoint(baseUrl: string, egress: Egress): Promise<void> {
  await judge(egress)(baseUrl);
}

/** A fetch that judges each request's URL and connects only to the address it judged. */
export function guardedFetch(egress: Egress): typeof fetch {
  const target = judge(egress);
  return (async (input: string | URL | Request, init?: RequestInit) => {
    if (typeof input !== 'string' && !(input instanceof URL)) throw new TypeError('guardedFetch takes a URL, not a Request');
    const url = String(input);
    const { address, family } = await target(url);
    // net.connect asks for every address when it may try several (autoSelectFamily): give it one.
    const lookup = (_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) =>
      opts?.all ? cb(null, [{ address, family }]) : cb(null, address, family);
    // One agent per request: its connection is to this address only; idle, it closes by itself.
    const dispatcher = new Agent({ connect: { lookup: lookup as never }, keepAliveTimeout: 1_000 });
    return undiciFetch(url, { ...(init as object), redirect: 'manual', dispatcher }) as unknown as Promise<Response>;
  }) as typeof fetch;
}
