import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import { heldRecipientDomains, MAX_BUCKETS, sendingStats } from '../../outbound/stats.ts';
import type { Database } from '../../store/schema.ts';
import { principalWith, type Env } from '../auth.ts';
import { errorResponses, json } from '../schemas.ts';

const SendingBucket = z.object({
  start: z.string().openapi({ description: 'The first instant of the bucket, UTC.' }),
  sent: z.number().int().openapi({ description: 'Recipients accepted by the remote server.' }),
  bounced: z.number().int().openapi({ description: 'Recipients bounced (hard and soft, at send time or later by a DSN).' }),
  hard_bounced: z.number().int().openapi({ description: 'Of those, hard bounces: what the bounce-rate auto-pause counts.' }),
  complained: z.number().int().openapi({ description: 'Complaints (ARF reports) received.' }),
  duplicate_risk: z.number().int().openapi({ description: 'Attempts whose outcome is unknown: the message was transmitted and the reply never came; the retry may have delivered a second copy.' }),
  bounce_rate: z.number().nullable().openapi({ description: 'bounced / (sent + bounced); null when no recipient finished in the bucket.' }),
}).openapi('SendingBucket');

const SendingStats = z.object({
  bucket: z.enum(['hour', 'day']),
  since: z.string().openapi({ description: 'Start of the first bucket (UTC).' }),
  until: z.string().openapi({ description: 'End of the last bucket (UTC); the last bucket is the current one, still filling.' }),
  domain: z.string().nullable(),
  data: z.array(SendingBucket).openapi({ description: 'Every bucket in the range, oldest first, empty ones included.' }),
}).openapi('SendingStats');

const HeldDomain = z.object({
  domain: z.string().openapi({ description: 'A recipient domain.' }),
  held: z.number().int().openapi({ description: 'Recipients at it waiting for a later attempt.' }),
  rate_limited: z.number().int().openapi({ description: 'Of those, held back by a shared rate limit (never attempted yet).' }),
  deferred: z.number().int().openapi({ description: "Of those, deferred by the remote server (4xx or no connection): it throttles us, or is down." }),
  next_attempt_at: z.string().nullable(),
  last_response: z.string().nullable().openapi({ description: "The remote server's latest deferral reply." }),
}).openapi('ThrottledDomain');

const StatsQuery = z.object({
  bucket: z.enum(['hour', 'day']).default('hour'),
  since: z.iso.datetime({ offset: true }).optional().openapi({ description: `Start (ISO 8601), rounded down to its bucket. Default: 48 hours or 30 days back. At most ${MAX_BUCKETS} buckets.` }),
  domain: z.string().max(253).optional().openapi({ description: 'Only mail sent from this sending domain.' }),
});

/**
 * Read-only sending statistics for the console's health view. Admin only, like GET /v1/limits and
 * GET /v1/suppressions beside which they are shown: they span every inbox.
 */
export function statsRoutes(app: OpenAPIHono<Env>, db: Kysely<Database>): void {
  app.openapi(
    createRoute({
      method: 'get', path: '/v1/stats/sending', operationId: 'getSendingStats', tags: ['stats'],
      summary: 'Recipient outcomes (sent, bounced, complained) and the bounce rate per hour or day',
      request: { query: StatsQuery },
      responses: { 200: json(SendingStats, 'The buckets'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      const q = c.req.valid('query');
      return c.json(await sendingStats(db, { bucket: q.bucket, since: q.since ? new Date(q.since) : undefined, domain: q.domain }), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'get', path: '/v1/stats/throttles', operationId: 'listThrottledDomains', tags: ['stats'],
      summary: 'Recipient domains that mail is waiting for now: held by a rate limit or deferred by the remote server',
      responses: { 200: json(z.object({ data: z.array(HeldDomain) }), 'The recipient domains, most held first (at most 100)'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      return c.json({ data: await heldRecipientDomains(db) }, 200);
    },
  );
}
