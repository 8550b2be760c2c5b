// @ts-check
// Finds nats-server >= 2.10, and fetches one when none is on the PATH: Debian's package from a
// newer suite, unpacked with a private apt configuration into .tools/ (the system is not changed).
// Plain JavaScript with no dependencies, because `scripts/setup.mjs` runs it before node_modules
// exists; the agent and the CLI use the same code, so one place knows where the server is.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (the nearest directory with a package.json): sources and dist/ alike. */
function packageRoot() {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

const TOOLS = join(packageRoot(), '.tools');
const UNPACKED = join(TOOLS, 'nats-server', 'usr', 'sbin', 'nats-server');
const MIN_VERSION = [2, 10];
/** Newer Debian suites that ship nats-server >= 2.10, tried in order. */
const SUITES = ['trixie', 'sid'];
const INSTALL_HINT =
  'opstream needs nats-server 2.10 or newer: put one on the PATH or set NATS_SERVER_BIN (Debian: apt-get install -t trixie nats-server).';

/** @param {string} message */
function say(message) {
  process.stderr.write(`[setup] ${message}\n`);
}

/**
 * The version a nats-server binary reports, or undefined when it does not run.
 * @param {string} binary
 * @returns {number[] | undefined}
 */
function serverVersion(binary) {
  const run = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  if (run.status !== 0) return undefined;
  const match = /v?(\d+)\.(\d+)\.(\d+)/.exec(run.stdout + run.stderr);
  return match ? match.slice(1, 4).map(Number) : undefined;
}

/** @param {number[] | undefined} version */
function newEnough(version) {
  if (!version) return false;
  const [major = 0, minor = 0] = version;
  const [wantMajor = 0, wantMinor = 0] = MIN_VERSION;
  return major > wantMajor || (major === wantMajor && minor >= wantMinor);
}

/**
 * A usable nats-server without fetching anything: NATS_SERVER_BIN, then the one unpacked into
 * .tools/, then the PATH.
 * @returns {string | undefined}
 */
export function findNatsServer() {
  const candidates = [process.env['NATS_SERVER_BIN'], UNPACKED, 'nats-server'];
  for (const candidate of candidates) {
    if (candidate && newEnough(serverVersion(candidate))) return candidate;
  }
  return undefined;
}

/**
 * The Debian mirror this machine's apt already uses, so the fetch goes where apt is allowed to go.
 * @returns {{ uri: string, keyring: string } | undefined}
 */
function debianMirror() {
  const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg';
  const files = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) {
    for (const name of readdirSync(dir)) {
      if (name.endsWith('.list') || name.endsWith('.sources')) files.push(join(dir, name));
    }
  }
  for (const file of files) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    // deb822 stanzas ("URIs: ..." + "Suites: ...") and one-line "deb [opts] uri suite comps".
    for (const stanza of text.split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1] ?? '';
      if (uri && /\/debian\/?$/.test(uri) && !/security/.test(suites)) return { uri, keyring };
    }
    for (const line of text.split('\n')) {
      const match = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
      if (match?.[1] && /\/debian\/?$/.test(match[1]) && !/security/.test(match[2] ?? '')) {
        return { uri: match[1], keyring };
      }
    }
  }
  return undefined;
}

/**
 * Downloads Debian's nats-server package from a newer suite and unpacks it under .tools/.
 * @returns {string | undefined} the binary, or undefined when this machine cannot do it
 */
function fetchNatsServer() {
  const hasTool = (/** @type {string} */ tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
  const mirror = debianMirror();
  if (!hasTool('apt-get') || !hasTool('dpkg') || !mirror) return undefined;
  for (const suite of SUITES) {
    const aptDir = join(TOOLS, 'apt', suite);
    rmSync(aptDir, { recursive: true, force: true });
    for (const sub of ['lists/partial', 'archives/partial', 'etc']) mkdirSync(join(aptDir, sub), { recursive: true });
    const sourceList = join(aptDir, 'etc', 'sources.list');
    writeFileSync(sourceList, `deb [signed-by=${mirror.keyring}] ${mirror.uri} ${suite} main\n`);
    const options = [
      `Dir::Etc::SourceList=${sourceList}`,
      'Dir::Etc::SourceParts=/dev/null',
      `Dir::State::Lists=${join(aptDir, 'lists')}`,
      `Dir::Cache::Archives=${join(aptDir, 'archives')}`,
      'Dir::State::Status=/dev/null',
      'APT::Sandbox::User=root',
      'Debug::NoLocking=1',
      'Acquire::Languages=none',
    ].flatMap((option) => ['-o', option]);
    say(`fetching nats-server from Debian ${suite} into .tools/ (the system is not changed)`);
    /** @type {import('node:child_process').ExecFileSyncOptions} */
    const quiet = { cwd: aptDir, stdio: ['ignore', 'ignore', 'pipe'] };
    try {
      execFileSync('apt-get', [...options, '-q', 'update'], quiet);
      execFileSync('apt-get', [...options, '-q', 'download', 'nats-server'], quiet);
      const deb = readdirSync(aptDir).find((name) => name.startsWith('nats-server_') && name.endsWith('.deb'));
      if (!deb) continue;
      rmSync(join(TOOLS, 'nats-server'), { recursive: true, force: true });
      execFileSync('dpkg', ['-x', join(aptDir, deb), join(TOOLS, 'nats-server')], quiet);
      const version = serverVersion(UNPACKED);
      if (newEnough(version)) {
        say(`nats-server ${version?.join('.')} ready at ${UNPACKED}`);
        return UNPACKED;
      }
    } catch (error) {
      const detail = error instanceof Error && 'stderr' in error ? String(error.stderr).trim().split('\n').pop() : String(error);
      say(`Debian ${suite} did not work: ${detail}`);
    }
  }
  return undefined;
}

/**
 * A nats-server >= 2.10, fetched when needed; exits with one line of advice when impossible.
 * @returns {string}
 */
export function ensureNatsServer() {
  const found = findNatsServer() ?? fetchNatsServer();
  if (found) return found;
  say(INSTALL_HINT);
  process.exit(1);
}

