import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { MailroomError } from '../../errors.ts';
import { CampaignFileError, parseCampaignFile, parseLeadsCsv } from '../../orchestrator/campaign-file.ts';
import type { Campaigns } from '../../orchestrator/campaigns.ts';
import { CampaignFields, checkCampaign, Lead } from '../../orchestrator/spec.ts';
import { principalWith, type Env } from '../auth.ts';
import { errorResponses, json, page, PageQuery } from '../schemas.ts';

const Funnel = z.object({
  leads: z.number().int(),
  status: z.record(z.string(), z.number().int()).openapi({ description: 'Runs by status: pending, active, waiting, done, needs_human, dead, paused.' }),
  queued: z.number().int().openapi({ description: 'Live runs that have not sent their first message yet.' }),
  sent_per_step: z.array(z.number().int()).openapi({ description: 'Messages handed to the outbox per step (index 0: the first message), less those it cancelled.' }),
  cancelled: z.number().int().openapi({ description: 'Handed to the outbox, then cancelled there before they went (the address was suppressed meanwhile).' }),
  replied: z.record(z.string(), z.number().int()).openapi({ description: 'Replies handled, by classification.' }),
  bounced: z.number().int(),
  complained: z.number().int(),
  unsubscribed: z.number().int(),
  suppressed: z.number().int(),
  stopped: z.number().int().openapi({ description: 'Ended without a reply or a bounce: no reply after the last step, a stop rule, the company replied elsewhere.' }),
  failed: z.number().int().openapi({ description: 'Dead-lettered runs (an agent kept failing): see GET /v1/runs?status=dead.' }),
  needs_human: z.number().int(),
  outcomes: z.record(z.string(), z.number().int()),
}).openapi('CampaignFunnel');

const Sender = z.object({ inbox_id: z.string(), address: z.string(), daily_cap: z.number().int() });

const Campaign = z.object({
  id: z.string(),
  name: z.string(),
  status: z.enum(['running', 'paused', 'completed', 'cancelled']),
  senders: z.array(Sender),
  steps: z.number().int(),
  clock: z.object({ scale: z.number(), now: z.string().openapi({ description: 'Campaign-clock time now (differs from real time only when clock.scale > 1).' }) }),
  client_id: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  completed_at: z.string().nullable(),
  funnel: Funnel,
  spec: z.record(z.string(), z.unknown()).openapi({ description: 'The campaign definition as validated (leads left out).' }),
}).openapi('Campaign');

const CreateCampaign = CampaignFields.extend({
  client_id: z.string().min(1).max(200).optional().openapi({ description: 'Idempotent creation: the same client_id returns the same campaign.' }),
}).superRefine((c, ctx) => checkCampaign(c, ctx)).openapi('CreateCampaign', {
  description: 'A campaign definition (the same schema as a campaign YAML file; send the file itself with Content-Type: application/yaml).',
});

const Run = z.object({
  id: z.string(),
  campaign_id: z.string(),
  lead: z.object({ id: z.string(), email: z.string(), timezone: z.string(), timezone_source: z.string(), data: z.record(z.string(), z.unknown()) }),
  trace_id: z.string(),
  status: z.enum(['pending', 'active', 'waiting', 'done', 'needs_human', 'dead', 'paused']),
  stage: z.enum(['research', 'personalize', 'sequence', 'send', 'await_reply', 'finished']),
  steps_sent: z.number().int(),
  inbox_id: z.string().nullable(),
  thread_id: z.string().nullable(),
  send_at: z.string().nullable().openapi({ description: 'Campaign-clock time of the next send (or of the end of the reply wait).' }),
  out_of_office_until: z.string().nullable(),
  outcome: z.string().nullable(),
  reply_class: z.string().nullable(),
  detail: z.string().nullable(),
  attempts: z.number().int(),
  last_error: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  finished_at: z.string().nullable(),
}).openapi('CampaignRun');

const TraceEntry = z.object({
  at: z.string(),
  sim_at: z.string().nullable(),
  kind: z.string().openapi({ description: 'agent, handoff, decision, send, or event (a send, bounce, reply… of the trace).' }),
  name: z.string(),
  status: z.string(),
  duration_ms: z.number(),
  input: z.unknown().optional(),
  output: z.unknown().optional(),
  error: z.string().nullable().optional(),
  message_id: z.string().nullable().optional(),
}).openapi('TraceEntry');

const CampaignParams = z.object({ campaign_id: z.string().max(64) });
const RunParams = z.object({ run_id: z.string().max(64) });
const RunStatus = z.enum(['pending', 'active', 'waiting', 'done', 'needs_human', 'dead', 'paused']);
const RunQuery = PageQuery.extend({ status: RunStatus.optional() });
const LeadsQuery = z.object({
  map: z.string().max(4000).optional().openapi({ description: 'CSV only: column mapping as field:Header pairs, e.g. email:E-mail,first_name:First,crm.stage:Stage. Unmapped columns become fields.<name>.' }),
});
const AddLeads = z.object({ leads: z.array(Lead).min(1).max(100_000) }).strict().openapi('AddLeads');
const LeadsAdded = z.object({
  added: z.number().int(),
  skipped: z.array(z.object({ email: z.string(), reason: z.string() })),
  problems: z.array(z.object({ row: z.number().int(), message: z.string() })).openapi({ description: 'CSV rows that were not imported, with why.' }),
}).openapi('LeadsAdded');

const isYaml = (type: string | undefined) => /^(application|text)\/(x-)?yaml\b/i.test(type ?? '');

/** A campaign file's problems as one invalid_request, each with its line. */
function fileProblem(err: CampaignFileError): MailroomError {
  return new MailroomError('invalid_request', err.message, { details: err.problems });
}

export function campaignRoutes(app: OpenAPIHono<Env>, campaigns: Campaigns): void {
  // A campaign file as it is (YAML, or JSON sent as YAML): handled before the JSON route below,
  // whose validator reads only JSON bodies. The file's problems come back with their lines.
  app.post('/v1/campaigns', async (c, next) => {
    if (!isYaml(c.req.header('content-type'))) return next();
    const p = principalWith(c, 'campaigns:write');
    let spec;
    try {
      spec = parseCampaignFile(await c.req.text(), 'campaign.yaml');
    } catch (err) {
      if (err instanceof CampaignFileError) throw fileProblem(err);
      throw err;
    }
    const clientId = c.req.query('client_id');
    if (clientId !== undefined && (clientId.length < 1 || clientId.length > 200)) throw new MailroomError('invalid_request', 'client_id: 1 to 200 characters');
    const { campaign, created } = await campaigns.create(p, spec, { clientId });
    return c.json(campaign, created ? 201 : 200);
  });

  app.openapi(
    createRoute({
      method: 'post', path: '/v1/campaigns', operationId: 'createCampaign', tags: ['campaigns'],
      summary: 'Create and start a campaign (JSON, or a YAML campaign file with Content-Type: application/yaml)',
      request: {
        query: z.object({ client_id: z.string().min(1).max(200).optional().openapi({ description: 'With a YAML body: idempotent creation (a JSON body carries client_id itself).' }) }),
        body: {
          content: {
            'application/json': { schema: CreateCampaign },
            'application/yaml': { schema: z.string().openapi({ description: 'A campaign file (the same schema); errors name their line.' }) },
          },
          required: true,
        },
      },
      responses: { 201: json(Campaign, 'Created; its runs start at once'), 200: json(Campaign, 'A campaign with this client_id already existed'), ...errorResponses },
    }),
    async (c) => {
      const p = principalWith(c, 'campaigns:write');
      const { client_id, ...spec } = c.req.valid('json') as { client_id?: string };
      const { campaign, created } = await campaigns.create(p, spec, { clientId: client_id });
      return c.json(campaign as never, created ? 201 : 200);
    },
  );

  // A CSV lead list, likewise before the JSON route: rows that cannot become leads are reported by row.
  app.post('/v1/campaigns/:campaign_id/leads', async (c, next) => {
    if (!/^text\/csv\b/i.test(c.req.header('content-type') ?? '')) return next();
    const p = principalWith(c, 'campaigns:write');
    const map = c.req.query('map');
    const parsed = parseLeadsCsv(await c.req.text(), map ? parseMapping(map) : undefined);
    const result = await campaigns.addLeads(p, c.req.param('campaign_id'), parsed.leads);
    return c.json({ ...result, problems: parsed.problems }, 200);
  });

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/campaigns', operationId: 'listCampaigns', tags: ['campaigns'], summary: 'List campaigns with their funnels, newest first',
      request: { query: PageQuery },
      responses: { 200: json(page(Campaign), 'A page of campaigns'), ...errorResponses },
    }),
    async (c) => c.json(await campaigns.list(principalWith(c, 'campaigns:read'), c.req.valid('query')) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/campaigns/{campaign_id}', operationId: 'getCampaign', tags: ['campaigns'],
      summary: 'Get a campaign with its funnel: queued, sent per step, replied by class, bounced, unsubscribed, stopped, failed',
      request: { params: CampaignParams },
      responses: { 200: json(Campaign, 'The campaign'), ...errorResponses },
    }),
    async (c) => c.json(await campaigns.get(principalWith(c, 'campaigns:read'), c.req.valid('param').campaign_id) as never, 200),
  );

  for (const [action, status] of [['pause', 'paused'], ['resume', 'running']] as const) {
    app.openapi(
      createRoute({
        method: 'post', path: `/v1/campaigns/{campaign_id}/${action}`, operationId: action === 'pause' ? 'pauseCampaign' : 'resumeCampaign', tags: ['campaigns'],
        summary: action === 'pause' ? 'Pause a campaign: no run takes another step until it is resumed' : 'Resume a paused campaign: every run looks at where it stands and goes on',
        request: { params: CampaignParams },
        responses: { 200: json(Campaign, 'The campaign'), ...errorResponses },
      }),
      async (c) => c.json(await campaigns.setStatus(principalWith(c, 'campaigns:write'), c.req.valid('param').campaign_id, status) as never, 200),
    );
  }

  app.openapi(
    createRoute({
      method: 'post', path: '/v1/campaigns/{campaign_id}/leads', operationId: 'addCampaignLeads', tags: ['campaigns'],
      summary: 'Add leads: JSON, or a CSV file (Content-Type: text/csv) with an optional column mapping',
      request: {
        params: CampaignParams, query: LeadsQuery,
        body: { content: { 'application/json': { schema: AddLeads }, 'text/csv': { schema: z.string().openapi({ description: 'CSV with a header row.' }) } }, required: true },
      },
      responses: { 200: json(LeadsAdded, 'What was added and what was not'), ...errorResponses },
    }),
    async (c) => {
      const p = principalWith(c, 'campaigns:write');
      const result = await campaigns.addLeads(p, c.req.valid('param').campaign_id, (c.req.valid('json') as { leads: never[] }).leads);
      return c.json({ ...result, problems: [] }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/campaigns/{campaign_id}/runs', operationId: 'listCampaignRuns', tags: ['campaigns'], summary: 'The runs (one per lead) of a campaign, newest first',
      request: { params: CampaignParams, query: RunQuery },
      responses: { 200: json(page(Run), 'A page of runs'), ...errorResponses },
    }),
    async (c) => c.json(await campaigns.listRuns(principalWith(c, 'campaigns:read'), { ...c.req.valid('query'), campaign_id: c.req.valid('param').campaign_id }) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/runs', operationId: 'listRuns', tags: ['campaigns'], summary: 'Runs of every campaign; status=dead lists the dead-letter queue',
      request: { query: RunQuery },
      responses: { 200: json(page(Run), 'A page of runs'), ...errorResponses },
    }),
    async (c) => c.json(await campaigns.listRuns(principalWith(c, 'campaigns:read'), c.req.valid('query')) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/runs/{run_id}', operationId: 'getRun', tags: ['campaigns'], summary: 'Get a run: its lead, stage, next send and outcome',
      request: { params: RunParams },
      responses: { 200: json(Run, 'The run'), ...errorResponses },
    }),
    async (c) => c.json(await campaigns.getRun(principalWith(c, 'campaigns:read'), c.req.valid('param').run_id) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/runs/{run_id}/trace', operationId: 'getRunTrace', tags: ['campaigns'],
      summary: "A run's trace: agent calls with inputs, outputs and durations, handoffs, decisions, and the sends, bounces and replies of its trace id",
      request: { params: RunParams },
      responses: { 200: json(z.object({ run: Run, timeline: z.array(TraceEntry) }).openapi('RunTrace'), 'The timeline, oldest first'), ...errorResponses },
    }),
    async (c) => c.json(await campaigns.trace(principalWith(c, 'campaigns:read'), c.req.valid('param').run_id) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/v1/runs/{run_id}/retry', operationId: 'retryRun', tags: ['campaigns'], summary: 'Retry a dead-lettered run from the stage it failed in',
      request: { params: RunParams },
      responses: { 200: json(Run, 'The run, active again'), ...errorResponses },
    }),
    async (c) => c.json(await campaigns.retry(principalWith(c, 'campaigns:write'), c.req.valid('param').run_id) as never, 200),
  );
}

/** "email:E-mail,first_name:First Name" → { email: 'E-mail', first_name: 'First Name' }. */
export function parseMapping(map: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of map.split(',')) {
    const i = pair.indexOf(':');
    if (i <= 0) throw new MailroomError('invalid_request', `map: "${pair}" is not field:Header`);
    out[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
  }
  return out;
}
