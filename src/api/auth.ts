import type { Context, MiddlewareHandler } from 'hono';
import type { Kysely } from 'kysely';
import { hasScope, type Principal, type Scope } from '../auth/scopes.ts';
import { isWellFormedToken, TOKEN_PREFIX } from '../auth/token-format.ts';
import { authenticate, type TokenCache } from '../auth/tokens.ts';
import { MailroomError } from '../errors.ts';
import type { Database } from '../store/schema.ts';

export type Env = { Variables: { principal: Principal } };

/** Resolves the bearer token into a principal; every /v1 route needs one. */
export function requireToken(db: Kysely<Database>, cache: TokenCache | null = null): MiddlewareHandler<Env> {
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new MailroomError('unauthorized', 'missing bearer token: send "Authorization: Bearer mr_…"');
    const secret = match[1];
    // A token with our prefix but a bad checksum is a typo or a guess: refuse it without a lookup.
    if (secret.startsWith(TOKEN_PREFIX) && !isWellFormedToken(secret)) throw new MailroomError('unauthorized', 'invalid token');
    const principal = await authenticate(db, secret, cache);
    if (!principal) throw new MailroomError('unauthorized', 'invalid or revoked token');
    c.set('principal', principal);
    await next();
  };
}

/** The request's principal, after checking it holds `scope` (admin holds every scope). */
export function principalWith(c: Context<Env>, scope: Scope): Principal {
  const p = c.get('principal');
  if (!hasScope(p, scope)) throw new MailroomError('insufficient_scope', `this token lacks the "${scope}" scope`);
  return p;
}
