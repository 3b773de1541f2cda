import { seg, type Core, type RequestOptions } from './core.ts';
import { PagePromise, type PageBody } from './pagination.ts';
import type {
  CreatedToken, CreateLimitParams, CreateSuppressionParams, CreateTokenParams, Domain, Limit, Suppression, SuppressionListParams, Token,
} from './types.ts';

/** Operator resources (scope `admin`): sending domains, suppressions, rate limits, tokens. */

/** A list route that returns everything at once: a single page (next_cursor null). */
function single<T>(core: Core, path: string, options?: RequestOptions): PagePromise<T> {
  return new PagePromise(async () => {
    const body = (await core.request<PageBody<T>>({ method: 'GET', path, options })).data;
    return { data: body.data, next_cursor: null };
  });
}

export class Domains {
  readonly #core: Core;
  constructor(core: Core) { this.#core = core; }

  /** Adds a sending domain (its DKIM key is generated); returns the DNS records to publish. Idempotent by name. */
  async create(params: { name: string }, options?: RequestOptions): Promise<Domain> {
    return (await this.#core.request<Domain>({ method: 'POST', path: '/v1/domains', body: params, retry: 'idempotent', options })).data;
  }

  list(options?: RequestOptions): PagePromise<Domain> {
    return single(this.#core, '/v1/domains', options);
  }

  async get(name: string, options?: RequestOptions): Promise<Domain> {
    return (await this.#core.request<Domain>({ method: 'GET', path: `/v1/domains/${seg(name)}`, options })).data;
  }

  /** Looks the DNS records up and records which are published. */
  async verify(name: string, options?: RequestOptions): Promise<Domain> {
    return (await this.#core.request<Domain>({ method: 'POST', path: `/v1/domains/${seg(name)}/verify`, retry: 'idempotent', options })).data;
  }

  /** Resumes sending from a domain paused for its bounce rate. */
  async resume(name: string, options?: RequestOptions): Promise<Domain> {
    return (await this.#core.request<Domain>({ method: 'POST', path: `/v1/domains/${seg(name)}/resume`, retry: 'idempotent', options })).data;
  }
}

export class Suppressions {
  readonly #core: Core;
  constructor(core: Core) { this.#core = core; }

  /** Suppressed addresses, newest first. */
  list(params: SuppressionListParams = {}, options?: RequestOptions): PagePromise<Suppression> {
    return new PagePromise(async (cursor) => (await this.#core.request<PageBody<Suppression>>({
      method: 'GET', path: '/v1/suppressions', query: { address: params.address, limit: params.limit, cursor: cursor ?? params.cursor }, options,
    })).data);
  }

  /** Suppresses an address; queued mail to it is cancelled. */
  async create(params: CreateSuppressionParams, options?: RequestOptions): Promise<Suppression> {
    return (await this.#core.request<Suppression>({ method: 'POST', path: '/v1/suppressions', body: params, options })).data;
  }

  async delete(suppressionId: string, options?: RequestOptions): Promise<void> {
    await this.#core.request<void>({ method: 'DELETE', path: `/v1/suppressions/${seg(suppressionId)}`, options });
  }
}

export class Limits {
  readonly #core: Core;
  constructor(core: Core) { this.#core = core; }

  /** Rate-limit policies with their live usage. */
  list(options?: RequestOptions): PagePromise<Limit> {
    return single(this.#core, '/v1/limits', options);
  }

  async create(params: CreateLimitParams, options?: RequestOptions): Promise<Limit> {
    return (await this.#core.request<Limit>({ method: 'POST', path: '/v1/limits', body: params, options })).data;
  }

  async delete(limitId: string, options?: RequestOptions): Promise<void> {
    await this.#core.request<void>({ method: 'DELETE', path: `/v1/limits/${seg(limitId)}`, options });
  }
}

export class Tokens {
  readonly #core: Core;
  constructor(core: Core) { this.#core = core; }

  /** Creates a scoped token; its secret (`token`) is in this response only. */
  async create(params: CreateTokenParams, options?: RequestOptions): Promise<CreatedToken> {
    return (await this.#core.request<CreatedToken>({ method: 'POST', path: '/v1/tokens', body: params, options })).data;
  }

  list(options?: RequestOptions): PagePromise<Token> {
    return single(this.#core, '/v1/tokens', options);
  }

  /** Revokes the token; returns it with `revoked_at` set. */
  async delete(tokenId: string, options?: RequestOptions): Promise<Token> {
    return (await this.#core.request<Token>({ method: 'DELETE', path: `/v1/tokens/${seg(tokenId)}`, options })).data;
  }
}
