import type { Context } from 'hono';
import { MailroomError, type ErrorCode } from '../errors.ts';

/**
 * Errors as RFC 9457 problem documents. `code` is the stable identifier clients switch on;
 * `detail` is for humans and may change wording between releases.
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  errors?: unknown;
}

const TITLES: Record<ErrorCode, string> = {
  invalid_request: 'Invalid request',
  unauthorized: 'Unauthorized',
  insufficient_scope: 'Insufficient scope',
  not_found: 'Not found',
  conflict: 'Conflict',
  payload_too_large: 'Payload too large',
  unknown_domain: 'Unknown domain',
  username_taken: 'Username taken',
  webhook_url_forbidden: 'Webhook URL forbidden',
  llm_url_forbidden: 'Model endpoint forbidden',
  header_injection: 'Line break in a header field',
  invalid_address: 'Invalid address',
  invalid_header: 'Header not allowed',
  invalid_attachment: 'Invalid attachment',
  message_too_large: 'Message too large',
  idempotency_key_reused: 'Idempotency key reused with a different request',
  recipient_suppressed: 'Recipient suppressed',
  draft_not_pending: 'Draft no longer pending',
  draft_stale: 'Draft written for an older state of its thread',
  a2a_payload_too_large: 'a2a payload too large',
  a2a_not_a_request: 'Not an a2a request',
  a2a_unauthenticated: 'a2a request not authenticated',
  storage_unavailable: 'Storage unavailable',
  internal: 'Internal error',
};

export function problemResponse(c: Context, err: MailroomError): Response {
  const body: Problem = {
    type: `https://mailroom.dev/errors/${err.code}`,
    title: TITLES[err.code],
    status: err.status,
    code: err.code,
    detail: err.message,
    ...(err.details !== undefined ? { errors: err.details } : {}),
  };
  const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
  if (err.code === 'unauthorized') headers['www-authenticate'] = 'Bearer realm="mailroom"';
  // The rest of an oversized body is never read: the connection cannot be reused for another request.
  if (err.code === 'payload_too_large') headers.connection = 'close';
  return c.body(JSON.stringify(body), err.status as 400, headers);
}
