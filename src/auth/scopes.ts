/**
 * `drafts:write` without `messages:send` is the draft-only token: its holder (an agent on probation,
 * a model in a new campaign) writes drafts that a person with `messages:send` approves.
 */
export const SCOPES = ['inboxes:read', 'inboxes:write', 'messages:read', 'messages:send', 'drafts:write', 'webhooks:write', 'campaigns:read', 'campaigns:write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/**
 * What a request is allowed to do, resolved once from its bearer token. `inboxIds` null means
 * every inbox; otherwise the token sees only those inboxes and everything in them.
 */
export interface Principal {
  tokenId: string;
  scopes: ReadonlySet<Scope>;
  inboxIds: ReadonlySet<string> | null;
}

export const hasScope = (p: Principal, scope: Scope): boolean => p.scopes.has('admin') || p.scopes.has(scope);

/** Whether the principal may see this inbox at all. Callers answer 404, never 403, when it may not. */
export const canSeeInbox = (p: Principal, inboxId: string): boolean => p.inboxIds === null || p.inboxIds.has(inboxId);
