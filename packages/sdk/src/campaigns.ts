import { seg, type Core, type RequestOptions } from './core.ts';
import { PagePromise, type PageBody } from './pagination.ts';
import type {
  Campaign, CampaignDefinition, CampaignLead, CampaignRun, LeadsAdded, PageParams, RunListParams, RunTrace,
} from './types.ts';

/**
 * Campaigns (scopes `campaigns:read`, `campaigns:write`): one run per lead — research, personalize,
 * sequence, send, and the replies handled — on the server. A token sees a campaign when it can see
 * every inbox the campaign sends from.
 */

/**
 * Types a campaign definition in TypeScript and returns it unchanged: the server validates it (and
 * names every problem in `MailroomApiError.errors`).
 *
 *   const outreach = defineCampaign({ name: 'Q3', senders: [{ inbox: 'ada@acme.test' }], steps: [...], escalate_to: 'ada@acme.test' });
 *   await mr.campaigns.create(outreach, { clientId: 'q3-outreach' });
 */
export function defineCampaign(def: CampaignDefinition): CampaignDefinition {
  return def;
}

export interface CreateCampaignOptions extends RequestOptions {
  /**
   * Idempotent creation: the same client_id returns the campaign created first (whatever the
   * definition sent this time). Only with it is a create retried after a lost response.
   */
  clientId?: string;
}

export interface ImportCsvParams {
  /**
   * Which column holds each lead field: `{ email: 'E-mail', first_name: 'Given', 'fields.plan': 'Plan' }`,
   * or the same written as the API takes it (`email:E-mail,first_name:Given,fields.plan:Plan`).
   * Without it, common header spellings are recognised; unmapped columns become `fields.<name>`.
   */
  map?: Record<string, string> | string;
}

const YAML = 'application/yaml; charset=utf-8';
const CSV = 'text/csv; charset=utf-8';

/** `{ email: 'E-mail' }` → `email:E-mail`: the API splits pairs on "," and each at its first ":". */
function mapping(map: ImportCsvParams['map']): string | undefined {
  if (map === undefined || typeof map === 'string') return map || undefined;
  const pairs = Object.entries(map).map(([field, column]) => {
    if (!field || /[,:]/.test(field)) throw new TypeError(`importCsv: "${field}" is not a lead field (no "," or ":")`);
    if (typeof column !== 'string' || !column || column.includes(',')) throw new TypeError(`importCsv: the column for ${field} must be a header without ","`);
    return `${field}:${column}`;
  });
  return pairs.length ? pairs.join(',') : undefined;
}

export class Campaigns {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
  }

  /**
   * Creates a campaign and starts it: each lead's run is queued at once (201). With `clientId` it is
   * idempotent — the same client_id returns the existing campaign — and only then is it retried
   * after a lost response. An invalid definition throws `MailroomApiError` (`invalid_request`) with
   * every problem in `errors` (`{ path, message }`).
   */
  async create(definition: CampaignDefinition, options: CreateCampaignOptions = {}): Promise<Campaign> {
    const { clientId, ...request } = options;
    const body = clientId === undefined ? definition : { ...definition, client_id: clientId };
    return (await this.#core.request<Campaign>({
      method: 'POST', path: '/v1/campaigns', body, retry: clientId ? 'idempotent' : 'unsafe', options: request,
    })).data;
  }

  /**
   * Creates a campaign from a campaign file (YAML, or JSON written as YAML) sent as it is. A mistake
   * throws `MailroomApiError` (`invalid_request`) whose `errors` name each problem with its `line`
   * and `column`. Idempotent, and then retried after a lost response, with `clientId`.
   */
  async createFromYaml(yaml: string, options: CreateCampaignOptions = {}): Promise<Campaign> {
    const { clientId, ...request } = options;
    return (await this.#core.request<Campaign>({
      method: 'POST', path: '/v1/campaigns', query: { client_id: clientId }, body: yaml, contentType: YAML,
      retry: clientId ? 'idempotent' : 'unsafe', options: request,
    })).data;
  }

  /** Campaigns with their funnels, newest first. Await it for one page, or `for await` it for all. */
  list(params: PageParams = {}, options?: RequestOptions): PagePromise<Campaign> {
    return new PagePromise(async (cursor) => (await this.#core.request<PageBody<Campaign>>({
      method: 'GET', path: '/v1/campaigns', query: { limit: params.limit, cursor: cursor ?? params.cursor }, options,
    })).data);
  }

  /** The campaign with its funnel: queued, sent per step, replied by class, bounced, stopped, failed. */
  async get(campaignId: string, options?: RequestOptions): Promise<Campaign> {
    return (await this.#core.request<Campaign>({ method: 'GET', path: `/v1/campaigns/${seg(campaignId)}`, options })).data;
  }

  /** No run takes another step until `resume`. Pausing a paused campaign changes nothing (so it is retried). */
  async pause(campaignId: string, options?: RequestOptions): Promise<Campaign> {
    return (await this.#core.request<Campaign>({ method: 'POST', path: `/v1/campaigns/${seg(campaignId)}/pause`, retry: 'idempotent', options })).data;
  }

  /** Every run looks at where it stands and goes on. Resuming a running campaign changes nothing (so it is retried). */
  async resume(campaignId: string, options?: RequestOptions): Promise<Campaign> {
    return (await this.#core.request<Campaign>({ method: 'POST', path: `/v1/campaigns/${seg(campaignId)}/resume`, retry: 'idempotent', options })).data;
  }

  /**
   * Adds leads (each becomes a run); addresses already in the campaign, or listed twice, are skipped
   * and reported. Not retried after a lost response (the repeat would report them all as skipped):
   * calling it again yourself adds nothing twice.
   */
  async addLeads(campaignId: string, leads: CampaignLead[], options?: RequestOptions): Promise<LeadsAdded> {
    return (await this.#core.request<LeadsAdded>({ method: 'POST', path: `/v1/campaigns/${seg(campaignId)}/leads`, body: { leads }, options })).data;
  }

  /**
   * Imports leads from CSV (a header row; comma, semicolon or tab separated). Rows that cannot become leads are
   * left out and reported in `problems` by row number (the header is row 1). Not retried after a
   * lost response, like `addLeads`.
   */
  async importCsv(campaignId: string, csv: string, params: ImportCsvParams = {}, options?: RequestOptions): Promise<LeadsAdded> {
    return (await this.#core.request<LeadsAdded>({
      method: 'POST', path: `/v1/campaigns/${seg(campaignId)}/leads`, query: { map: mapping(params.map) }, body: csv, contentType: CSV, options,
    })).data;
  }

  /** The campaign's runs (one per lead), newest first, optionally of one status. */
  runs(campaignId: string, params: RunListParams = {}, options?: RequestOptions): PagePromise<CampaignRun> {
    const path = `/v1/campaigns/${seg(campaignId)}/runs`;
    return new PagePromise(async (cursor) => (await this.#core.request<PageBody<CampaignRun>>({
      method: 'GET', path, query: { status: params.status, limit: params.limit, cursor: cursor ?? params.cursor }, options,
    })).data);
  }
}

/** Runs of every campaign the token can see; `list({ status: 'dead' })` is the dead-letter queue. */
export class Runs {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
  }

  /** Runs, newest first; `status: 'dead'` lists the runs whose agent kept failing. */
  list(params: RunListParams = {}, options?: RequestOptions): PagePromise<CampaignRun> {
    return new PagePromise(async (cursor) => (await this.#core.request<PageBody<CampaignRun>>({
      method: 'GET', path: '/v1/runs', query: { status: params.status, limit: params.limit, cursor: cursor ?? params.cursor }, options,
    })).data);
  }

  /** The run: its lead, stage, next send and outcome. */
  async get(runId: string, options?: RequestOptions): Promise<CampaignRun> {
    return (await this.#core.request<CampaignRun>({ method: 'GET', path: `/v1/runs/${seg(runId)}`, options })).data;
  }

  /** The run's timeline, oldest first: agent calls with inputs, outputs and durations, handoffs, decisions, and the events of its trace id. */
  async trace(runId: string, options?: RequestOptions): Promise<RunTrace> {
    return (await this.#core.request<RunTrace>({ method: 'GET', path: `/v1/runs/${seg(runId)}/trace`, options })).data;
  }

  /**
   * Retries a dead-lettered run from the stage it failed in. A run already going again answers the
   * same (so a retry after a lost response is harmless); a run that ended throws
   * `MailroomApiError` (`conflict`).
   */
  async retry(runId: string, options?: RequestOptions): Promise<CampaignRun> {
    return (await this.#core.request<CampaignRun>({ method: 'POST', path: `/v1/runs/${seg(runId)}/retry`, retry: 'idempotent', options })).data;
  }
}
