import path from 'node:path';
import { loadConfig } from '../config/config.ts';
import { startMailroom } from '../server.ts';
import { createSigninLink } from '../auth/signin-links.ts';

/** `mailroom serve`: runs SMTP + HTTP until SIGINT/SIGTERM, then drains and stops cleanly. */
export async function serveCommand(): Promise<number> {
  const config = loadConfig();
  const mailroom = await startMailroom(config);
  const base = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${mailroom.httpPort}`;
  const lines = [
    `Mailroom is running (${mailroom.store.engine === 'pglite' ? `embedded database in ${config.dataDir}` : 'PostgreSQL'})`,
    `  HTTP API   ${base}   (OpenAPI: ${base}/v1/openapi.json)`,
    `  SMTP       ${config.smtpHost}:${mailroom.smtpPort}   domains: ${config.domains.join(', ')}`,
    `  Console    ${base}/`,
  ];
  if (mailroom.createdAdminToken) {
    // First start: a one-time link signs the operator's browser in without copying the token.
    const link = await createSigninLink(mailroom.store.db, base);
    lines.push(
      '',
      `  Sign in to the console (one-time link, valid 24 h; later: \`mailroom console\` for a new one):`,
      `    ${link.url}`,
    );
    lines.push(
      '',
      `  Admin token (shown once; also saved to ${path.join(config.dataDir, 'admin-token')}):`,
      `    ${mailroom.createdAdminToken}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      mailroom.log.info({ signal }, 'stopping: no new connections, finishing what was accepted');
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await mailroom.stop();
  return 0;
}
