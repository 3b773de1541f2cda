import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../src/config/config.ts';
import { createLogger } from '../src/log.ts';
import { startMailroom, type Mailroom } from '../src/server.ts';
import { apiClient, ENGINES, testEnv, waitFor } from './helpers/mailroom.ts';
import { SmtpClient, message, splitTrace, expectedStored } from './helpers/smtp.ts';

/**
 * D4: the embedded data directory (spool and blobs) sits on a 2 MiB tmpfs that a filler file has
 * almost exhausted. SMTP must answer 452 4.3.1 (never 250) while the disk is full, the process must
 * stay up, and once space is freed it must accept again without a restart; every message that got
 * 250 must be stored intact. Needs root to mount the tmpfs; skipped otherwise.
 */
function tryMount(dir: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const base = await mkdtemp(path.join(tmpdir(), 'mailroom-d4-'));
const mountPoint = path.join(base, 'small');
execFileSync('mkdir', ['-p', mountPoint]);
const mounted = ENGINES.includes('pglite') && tryMount(mountPoint);

describe('pglite: D4 disk full', { skip: !ENGINES.includes('pglite') ? 'pglite not selected' : !mounted ? 'cannot mount a tmpfs here (needs root)' : false }, () => {
  let m: Mailroom;
  before(async () => {
    // The database stays in memory; only what embedded mode writes to the data directory is squeezed.
    m = await startMailroom(loadConfig(testEnv('pglite', mountPoint, 'unused', { MAILROOM_ADMIN_TOKEN: 'd4-admin-token-0123456789' })), {
      log: createLogger('silent'),
      pgliteDir: null,
    });
  });
  after(async () => {
    await m?.stop();
    try { execFileSync('umount', [mountPoint]); } catch {}
    await rm(base, { recursive: true, force: true });
  });

  test('D4: 452 while the disk is full, accepted again once space is freed, nothing acknowledged is lost', async () => {
    const api = apiClient(`http://127.0.0.1:${m.httpPort}`, 'd4-admin-token-0123456789');
    const inbox = (await api('POST', '/v1/inboxes', { username: 'full' })).body;
    const filler = path.join(mountPoint, 'filler');
    await writeFile(filler, Buffer.alloc(1900 * 1024));
    const c = await SmtpClient.connect(m.smtpPort);
    await c.cmd('EHLO t');
    const acked: Buffer[] = [];
    const codes: number[] = [];
    for (let i = 0; i < 12; i++) {
      const data = message({ to: inbox.address, subject: `fill-${i}`, body: `${i}:`.padEnd(40 * 1024, 'x') });
      const r = await c.send('s@example.com', [inbox.address], data);
      codes.push(r.data!.code);
      if (r.data!.code === 250) acked.push(data);
      else assert.match(r.data!.text, /^452 4\.3\.1 /, 'a full disk is a temporary failure, never a 5xx');
    }
    assert.ok(codes.includes(452), `the disk filled up: ${codes.join(',')}`);
    const health = await fetch(`http://127.0.0.1:${m.httpPort}/healthz`);
    assert.equal(health.status, 200, 'the process stays up');

    await rm(filler);
    const after = message({ to: inbox.address, subject: 'after-space-freed' });
    const r = await c.send('s@example.com', [inbox.address], after);
    assert.equal(r.data?.code, 250, 'accepts again without a restart');
    acked.push(after);
    await c.quit();

    const stored = await waitFor(async () => {
      const list = (await api('GET', `/v1/inboxes/${inbox.id}/messages?limit=200`)).body.data;
      return list.length >= acked.length ? list : null;
    }, 30_000, 'all acknowledged messages');
    assert.equal(stored.length, acked.length, 'exactly the acknowledged messages are stored');
    for (const s of stored) {
      const raw = (await api('GET', `/v1/messages/${s.id}/raw`)).bytes;
      const body = splitTrace(raw).body;
      assert.ok(acked.some((a) => expectedStored(a).equals(body)), `stored message ${s.subject} is byte-identical to one that was acknowledged`);
    }
  });
});
