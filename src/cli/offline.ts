import { createToken, type CreateTokenInput } from '../auth/tokens.ts';
import { loadConfig } from '../config/config.ts';
import { lockDataDir } from '../store/data-dir-lock.ts';
import { openStore } from '../store/database.ts';

/**
 * `mailroom token create` for a stopped server: opens the store directly. For an embedded data
 * directory this takes the same lock as `serve`, so it fails with a clear message if a server
 * holds it (and the command should then go through the API instead).
 */
export async function createTokenOffline(input: CreateTokenInput) {
  const config = loadConfig();
  const unlock = config.databaseUrl ? async () => {} : await lockDataDir(config.dataDir);
  try {
    const store = await openStore({ databaseUrl: config.databaseUrl, schema: config.databaseSchema, dataDir: config.dataDir });
    try {
      const { token, view } = await createToken(store.db, input);
      return { ...view, token };
    } finally {
      await store.close();
    }
  } finally {
    await unlock();
  }
}
