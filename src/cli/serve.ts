import path from 'node:path';
import { loadConfig } from '../config/config.ts';
import { startMailroom } from '../server.ts';

/** `mailroom serve`: runs SMTP + HTTP until SIGINT/SIGTERM, then drains and stops cleanly. */
export async function serveCommand(): Promise<number> {
  const config = loadConfig();
  const mailroom = await startMailroom(config);
  const base = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${mailroom.httpPort}`;
  const lines = [
    `Mailroom is running (${mailroom.store.engine === 'pglite' ? `embedded database in ${config.dataDir}` : 'PostgreSQL'})`,
    `  HTTP API   ${base}   (OpenAPI: ${base}/v1/openapi.json)`,
    `  SMTP       ${config.smtpHost}:${mailroom.smtpPort}   domains: ${config.domains.join(', ')}`,
  ];
  if (mailroom.createdAdminToken) {
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
