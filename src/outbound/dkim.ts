import { generateKeyPairSync } from 'node:crypto';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';

/**
 * DKIM for outbound mail (RFC 6376), with mailauth: key generation, the TXT record to publish, and
 * signing. Keys are RSA-2048 — what every receiver verifies; Ed25519 (RFC 8463) is still not
 * checked by some large providers, so a message signed only with it would count as unsigned there.
 */
export interface DkimKey {
  selector: string;
  privateKey: string;
  publicKey: string;
}

export function generateDkimKey(now = new Date()): DkimKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  // A dated selector lets a key be rotated later by publishing a new selector beside the old one.
  const selector = `mr${now.toISOString().slice(0, 7).replace('-', '')}`;
  return { selector, privateKey, publicKey };
}

/** The value of the `<selector>._domainkey.<domain>` TXT record: the public key, base64 DER. */
export function dkimTxtValue(publicKeyPem: string): string {
  const der = publicKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return `v=DKIM1; k=rsa; p=${der}`;
}

/** Header fields signed: the ones a replay or tampering would change, From first (it is mandatory). */
const SIGNED_HEADERS = ['from', 'to', 'cc', 'subject', 'date', 'message-id', 'in-reply-to', 'references', 'reply-to', 'mime-version', 'content-type', 'content-transfer-encoding', 'list-unsubscribe', 'list-unsubscribe-post'];

/** Returns the `DKIM-Signature:` header line(s) to prepend to `raw`. */
export async function dkimSignature(raw: Buffer, domain: string, key: Pick<DkimKey, 'selector' | 'privateKey'>): Promise<Buffer> {
  // The options object as mailauth's README documents it; its bundled .d.ts names another shape.
  const result = await dkimSign(raw, {
    canonicalization: 'relaxed/relaxed',
    headerList: SIGNED_HEADERS,
    signatureData: [{ signingDomain: domain, selector: key.selector, privateKey: key.privateKey }],
  } as never);
  if (result.errors?.length || !result.signatures) {
    const err = (result.errors?.[0] as { err?: Error } | undefined)?.err;
    throw new Error(`DKIM signing for ${domain} failed: ${err?.message ?? 'no signature produced'}`);
  }
  return Buffer.from(result.signatures.replace(/\r?\n/g, '\r\n'));
}
