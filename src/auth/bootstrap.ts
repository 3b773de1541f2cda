import { writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import { createToken } from './tokens.ts';
import { hashToken } from './token-format.ts';

/**
 * Makes sure an admin token exists. With MAILROOM_ADMIN_TOKEN that token is registered (idempotently);
 * otherwise the first start ever creates one, writes it to `<dataDir>/admin-token` (mode 600) and
 * returns it so `serve` can print it once. A settings row claimed in the same transaction makes this
 * happen once even when several processes start together on one PostgreSQL.
 */
export async function ensureAdminToken(db: Kysely<Database>, opts: { adminToken?: string; dataDir: string }): Promise<string | null> {
  if (opts.adminToken) {
    const exists = await db.selectFrom('tokens').select('id').where('hash', '=', hashToken(opts.adminToken)).executeTakeFirst();
    if (!exists) {
      await createToken(db, { name: 'admin (MAILROOM_ADMIN_TOKEN)', scopes: ['admin'], secret: opts.adminToken }).catch((err) => {
        if (!/duplicate key|unique/i.test(String(err?.message))) throw err; // a concurrent start registered it
      });
    }
    return null;
  }
  return db.transaction().execute(async (trx) => {
    const claimed = await trx
      .insertInto('settings')
      .values({ key: 'admin_token_bootstrapped', value: JSON.stringify({ at: new Date().toISOString() }) })
      .onConflict((oc) => oc.column('key').doNothing())
      .returning(sql<string>`key`.as('key'))
      .executeTakeFirst();
    if (!claimed) return null;
    const { token } = await createToken(trx, { name: 'admin', scopes: ['admin'] });
    await mkdir(opts.dataDir, { recursive: true });
    await writeFile(path.join(opts.dataDir, 'admin-token'), `${token}\n`, { mode: 0o600 });
    return token;
  });
}
