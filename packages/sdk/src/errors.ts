import type { Problem } from './types.ts';

/** The base of every error the SDK throws. */
export class MailroomError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MailroomError';
  }
}

/**
 * A non-2xx answer from the API. `code` is the problem document's stable code (`not_found`,
 * `insufficient_scope`, `idempotency_key_reused`, …) — switch on it, not on `detail`, whose wording
 * may change. A response without a problem document (a proxy's HTML error page) has code
 * `http_error`.
 */
export class MailroomApiError extends MailroomError {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly title: string | undefined;
  readonly type: string | undefined;
  /** Per-field validation failures of an `invalid_request`. */
  readonly errors: unknown;
  /** The request id the server or a proxy in front of it reported, if any. */
  readonly requestId: string | undefined;
  readonly headers: Headers;

  constructor(status: number, problem: Partial<Problem> | null, headers: Headers, fallbackDetail?: string) {
    const code = typeof problem?.code === 'string' ? problem.code : 'http_error';
    const detail = typeof problem?.detail === 'string' ? problem.detail : fallbackDetail ?? `HTTP ${status}`;
    super(`${status} ${code}: ${detail}`);
    this.name = 'MailroomApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.title = problem?.title;
    this.type = problem?.type;
    this.errors = problem?.errors;
    this.headers = headers;
    this.requestId = headers.get('request-id') ?? headers.get('x-request-id') ?? undefined;
  }
}

/** No answer: the connection failed or was lost (after the retries the request allowed). */
export class MailroomConnectionError extends MailroomError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MailroomConnectionError';
  }
}

/** No answer within `timeoutMs` (after the retries the request allowed). */
export class MailroomTimeoutError extends MailroomConnectionError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MailroomTimeoutError';
  }
}

/**
 * `a2a.request` / `a2a.waitForResponse`: no authenticated response with the request's correlation id
 * arrived in time. The request was sent (`messageId`); a response that arrives later is still
 * delivered to the inbox and can be found with `a2a_correlation_id`.
 */
export class A2aTimeoutError extends MailroomError {
  readonly correlationId: string;
  readonly messageId: string;
  readonly timeoutMs: number;

  constructor(correlationId: string, messageId: string, timeoutMs: number) {
    super(`no a2a response to ${messageId} (correlation id ${correlationId}) within ${timeoutMs} ms`);
    this.name = 'A2aTimeoutError';
    this.correlationId = correlationId;
    this.messageId = messageId;
    this.timeoutMs = timeoutMs;
  }
}

/** A webhook delivery whose headers, signature or timestamp do not check out. */
export class WebhookVerificationError extends MailroomError {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}
