// Where the CLI finds nats.conf and keeps data/: the package root, from the sources or from dist/.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root: the nearest directory above this module that holds a package.json. */
export const PROJECT_ROOT = packageRoot(dirname(fileURLToPath(import.meta.url)));

/** Where the embedded default keeps its credentials (see src/security/credentials.ts). */
export const CREDENTIALS_DIR = resolve(PROJECT_ROOT, 'data', 'credentials');

function packageRoot(from: string): string {
  let dir = from;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}
