import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root: where nats.conf and data/ live. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the embedded default keeps its credentials (see src/security/credentials.ts). */
export const CREDENTIALS_DIR = resolve(PROJECT_ROOT, 'data', 'credentials');
