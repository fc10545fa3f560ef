// The container image leaves the embedded PostgreSQL out: started without DATABASE_URL it must
// stop with a configuration error (exit 78) that names DATABASE_URL, before touching DATA_DIR
// (which the image's user cannot write: it used to die of EACCES).
import { describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/open.js';
import { createLogger } from '../../src/log.js';

vi.mock('../../src/db/embedded.js', async (original) => ({
  ...(await original<typeof import('../../src/db/embedded.js')>()),
  embeddedPostgresInstalled: async () => false,
}));

describe('openDatabase without the embedded PostgreSQL installed', () => {
  it('is a configuration error naming DATABASE_URL, and leaves DATA_DIR alone', async () => {
    const config = loadConfig({ DATA_DIR: '/proc/ticket-mx-cannot-write-here' });
    const opened = openDatabase(config, createLogger('silent'));
    await expect(opened).rejects.toBeInstanceOf(ConfigError);
    await expect(opened).rejects.toThrow(/DATABASE_URL: must be set: this installation has no embedded PostgreSQL/);
  });
});
