import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root: where nats.conf and data/ live. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
