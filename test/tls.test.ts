// TLS is one option away on both listeners: the agent's API (wss://) and the NATS server the
// agent connects to (tls://, checked against a CA). Tested with a certificate generated here.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent } from '../src/agent.ts';
import { DisconnectedError } from '../src/client/errors.ts';
import { connect } from '../src/index.ts';
import { startServerProcess, type ServerProcess } from '../src/nats/server-process.ts';
import { uniqueId } from './helpers/agent.ts';

let dir: string;
let nats: ServerProcess;
let natsUrl: string;
let certFile: string;
let keyFile: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'opstream-tls-'));
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
  });
  certFile = join(dir, 'cert.pem');
  keyFile = join(dir, 'key.pem');
  writeFileSync(certFile, pems.cert);
  writeFileSync(keyFile, pems.private);
  // The server's `tls` block, as nats.conf documents it; it then accepts only TLS clients.
  writeFileSync(
    join(dir, 'server.conf'),
    [
      'listen: 127.0.0.1:-1',
      `ports_file_dir: "${dir}"`,
      `jetstream { store_dir: "${join(dir, 'store')}" }`,
      `tls { cert_file: "${certFile}", key_file: "${keyFile}" }`,
    ].join('\n'),
  );
  nats = await startServerProcess(['-c', join(dir, 'server.conf')], { logFile: join(dir, 'server.log') });
  natsUrl = await portsFileUrl(dir);
});
afterAll(async () => {
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('serves the API over wss:// and reaches NATS over TLS, checked against the CA', async () => {
  const agent = await startAgent({
    natsUrl,
    root: process.cwd(),
    port: 0,
    sim: { stepMs: 5 },
    credentialsDir: join(dir, 'credentials'),
    natsAccess: { caFile: certFile },
    tls: { certFile, keyFile },
  });
  try {
    expect(agent.api.url).toMatch(/^wss:\/\//);
    // A client that does not trust the certificate cannot connect at all.
    await expect(connect(agent.api.url, { token: agent.credentials.operatorToken, reconnect: false })).rejects.toBeInstanceOf(DisconnectedError);
    const host = await connect(agent.api.url, { token: agent.credentials.operatorToken, ca: readFileSync(certFile, 'utf8') });
    const vmId = uniqueId('tls');
    await host.subscribe(`vdsm.VM.${vmId}`);
    await host.vm.create(vmId);
    expect((await host.waitForEvent(`vdsm.VM.${vmId}`, 10_000)).alertName).toBe(`vdsm.VM.${vmId}`);
    await host.close();
  } finally {
    await agent.stop();
  }
});

it('refuses to connect to a TLS server it cannot verify', async () => {
  await expect(
    startAgent({ natsUrl, root: process.cwd(), port: 0, credentialsDir: join(dir, 'credentials-untrusting') }),
  ).rejects.toThrow(/certificate/i);
});

async function portsFileUrl(where: string): Promise<string> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const file = (await import('node:fs')).readdirSync(where).find((name) => name.endsWith('.ports'));
    if (file) {
      try {
        const ports = JSON.parse(readFileSync(join(where, file), 'utf8')) as { nats: string[] };
        const url = ports.nats[0];
        if (url) return url.replace(/^nats:/, 'tls:');
      } catch {
        // written non-atomically: try again
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('nats-server wrote no ports file');
}
