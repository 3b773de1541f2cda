import { allParts, asTopLevel, type MimePart } from './mime.ts';

/**
 * Some filters forward a bounce as an attachment of their own wrapper, which says "returned mail"
 * but names no recipient. The attached report is the one to read.
 */

/** The first attached message that is itself an RFC 3464 report, re-rooted. */
export function embeddedReport(root: MimePart): MimePart | null {
  for (const p of allParts(root)) {
    if (p.inMessage || p.contentType !== 'message/rfc822' || !p.children[0]) continue;
    const inner = asTopLevel(p.children[0]);
    if (allParts(inner).some((q) => !q.inMessage && /^message\/(?:global-)?delivery-status$/.test(q.contentType))) return inner;
  }
  return null;
}
