/**
 * One error type for the whole domain. Each carries a stable `code` that clients can switch on;
 * the HTTP edge maps it to a problem document (RFC 9457) and the SMTP edge to a reply code.
 * Domain code throws these and never knows which edge will render them.
 */
export const ERROR_STATUS = {
  invalid_request: 400,
  unauthorized: 401,
  insufficient_scope: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unknown_domain: 422,
  username_taken: 409,
  // Sending: each refusal of a send request has its own code, so an agent can tell them apart.
  header_injection: 400,
  invalid_address: 400,
  invalid_header: 400,
  invalid_attachment: 400,
  message_too_large: 400,
  idempotency_key_reused: 409,
  recipient_suppressed: 422,
  // Drafts: approving, rejecting or editing one that is no longer pending; a thread that changed
  // since the draft was written (a new reply) until a person looks again or forces it.
  draft_not_pending: 409,
  draft_stale: 409,
  webhook_url_forbidden: 400,
  llm_url_forbidden: 400,
  // Agent-to-agent email (src/a2a/): a payload over the format's limit, and answers refused.
  a2a_payload_too_large: 413,
  a2a_not_a_request: 422,
  a2a_unauthenticated: 422,
  storage_unavailable: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class MailroomError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details?: unknown;

  constructor(code: ErrorCode, message: string, options?: { details?: unknown; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = 'MailroomError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = options?.details;
  }
}

export const notFound = (what: string) => new MailroomError('not_found', `${what} not found`);

/** True for the errors that mean "the disk is full or the database is gone": retry later, never lose. */
export function isTransientStorageError(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return (
    code === 'ENOSPC' || code === 'EDQUOT' || code === 'EIO' || code === 'EMFILE' || code === 'ENFILE' ||
    code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' ||
    // PostgreSQL: connection exceptions (08xxx), insufficient resources (53xxx), operator intervention (57xxx)
    (typeof code === 'string' && /^(08|53|57)/.test(code))
  );
}
