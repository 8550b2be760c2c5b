// Adversarial: the shipped authorization rules on a real nats-server with the generated
// identities, and the WebSocket upgrade's token and Origin checks. Denials are checked where it
// matters: nothing a denied identity tried lands in the stream or the KV.
import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { connect as connectRaw, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INBOX_PREFIXES } from '../src/domain/api-subjects.ts';
import { startAgent, type Agent } from '../src/agent.ts';
import { connect, connectBus, startManager, type ManagedAlert, type OpstreamClient } from '../src/index.ts';
import { DEFAULT_STREAM } from '../src/nats/alert-stream.ts';
import { readNkeySeed } from '../src/security/credentials.ts';
import { startAuthNatsServer, type AuthNatsServer } from './helpers/auth-nats-server.ts';
import { callError, untilVmStatus } from './helpers/trust.ts';

const suffix = randomBytes(3).toString('hex');
const VICTIM = `victim-${suffix}`;

let server: AuthNatsServer;
let agent: Agent;
let operator: OpstreamClient;
/** The agent's own identity: for looking at what landed. */
let admin: NatsConnection;
let adminJsm: JetStreamManager;

/** A raw connection as one identity, receiving replies under that identity's own inbox prefix. */
const identity = (name: 'agent' | 'manager' | 'viewer') =>
  connectRaw({
    servers: server.url,
    reconnect: false,
    authenticator: nkeyAuthenticator(readNkeySeed(server.credentials.nkeyFiles[name])),
    inboxPrefix: INBOX_PREFIXES[name],
  });

const lastSeq = async () => (await adminJsm.streams.info(DEFAULT_STREAM)).state.last_seq;
const lastOn = async (subject: string) => (await adminJsm.streams.getMessage(DEFAULT_STREAM, { last_by_subj: subject }).catch(() => null))?.seq ?? 0;

beforeAll(async () => {
  server = await startAuthNatsServer();
  agent = await startAgent({
    natsUrl: server.url,
    root: process.cwd(),
    port: 0,
    sim: { stepMs: 5 },
    credentialsDir: server.credentials.dir,
    natsAccess: { nkeyFile: server.credentials.nkeyFiles.agent },
  });
  operator = await connect(agent.api.url, { token: agent.credentials.operatorToken });
  await operator.vm.create(VICTIM);
  await untilVmStatus(operator, VICTIM, 'Up');
  admin = await identity('agent');
  adminJsm = await jetstreamManager(admin);
}, 60_000);

afterAll(async () => {
  await operator?.close();
  await admin?.close();
  await agent?.stop();
  await server?.stop();
});

describe('the server refuses what a manager or viewer must not do', () => {
  it('refuses an anonymous connection', async () => {
    await expect(connectRaw({ servers: server.url, reconnect: false })).rejects.toThrow(/Authorization/i);
  });

  it.each(['manager', 'viewer'] as const)('%s: a publish into vdsm.> lands nowhere', async (name) => {
    const nc = await identity(name);
    try {
      const before = await lastSeq();
      const js = jetstream(nc);
      await expect(js.publish(`vdsm.VM.${VICTIM}`, '{"forged":true}', { timeout: 1_000 })).rejects.toThrow();
      nc.publish(`vdsm.VM.forged-${name}-${suffix}`, '{"forged":true}');
      await nc.flush();
      expect(await lastSeq()).toBe(before);
    } finally {
      await nc.close();
    }
  });

  it.each(['manager', 'viewer'] as const)('%s: deleting a stream message is refused and the message stays', async (name) => {
    const nc = await identity(name);
    try {
      const seq = await lastOn(`vdsm.VM.${VICTIM}`);
      expect(seq).toBeGreaterThan(0);
      const jsm = await jetstreamManager(nc, { timeout: 1_000 });
      await expect(jsm.streams.deleteMessage(DEFAULT_STREAM, seq)).rejects.toThrow();
      await expect(jsm.streams.purge(DEFAULT_STREAM)).rejects.toThrow();
      expect(await lastOn(`vdsm.VM.${VICTIM}`)).toBe(seq);
    } finally {
      await nc.close();
    }
  });

  it.each(['manager', 'viewer'] as const)('%s: writing the snapshot bucket is refused', async (name) => {
    const nc = await identity(name);
    try {
      const key = `forged-${name}`;
      await expect(nc.request(`$KV.OPSTREAM_SNAPSHOTS.${key}`, '{"seq":1}', { timeout: 1_000 })).rejects.toThrow();
      const kv = await new Kvm(admin).open('OPSTREAM_SNAPSHOTS');
      expect(await kv.get(key)).toBeNull();
    } finally {
      await nc.close();
    }
  });

  it.each(['manager', 'viewer'] as const)('%s: writing the image bucket is refused', async (name) => {
    const nc = await identity(name);
    try {
      const object = `forged-${name}`;
      const meta = `$O.OPSTREAM_SNAPSHOTS_IMAGES.M.${Buffer.from(object).toString('base64url')}`;
      await expect(nc.request(meta, JSON.stringify({ name: object, bucket: 'OPSTREAM_SNAPSHOTS_IMAGES', nuid: 'x', size: 1, chunks: 1, digest: 'SHA-256=' }), { timeout: 1_000 })).rejects.toThrow();
      await expect(nc.request('$O.OPSTREAM_SNAPSHOTS_IMAGES.C.x', '[]', { timeout: 1_000 })).rejects.toThrow();
      expect(await (await new Objm(admin).open('OPSTREAM_SNAPSHOTS_IMAGES')).info(object)).toBeNull();
    } finally {
      await nc.close();
    }
  });

  it('viewer: a request on opstream.api is refused and does nothing', async () => {
    const nc = await identity('viewer');
    try {
      const vmId = `viewer-made-${suffix}`;
      const request = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'VM.create', params: { vmId } });
      await expect(nc.request('opstream.api', request, { timeout: 1_000 })).rejects.toThrow();
      expect((await callError(operator.vm.getInfo(vmId))).code).toBe(100);
    } finally {
      await nc.close();
    }
  });

  it('viewer: opstream.read answers read methods and refuses write methods with 109', async () => {
    const viewer = await connectBus(server.url, { nkeyFile: server.credentials.nkeyFiles.viewer, role: 'viewer' });
    try {
      expect((await viewer.vm.getInfo(VICTIM)).status).toBe('Up');
      const refused = await callError(viewer.vm.pause(VICTIM));
      expect(refused.code).toBe(109);
      expect(refused.message).toMatch(/operator/);
      expect((await viewer.vm.getInfo(VICTIM)).status).toBe('Up');
    } finally {
      await viewer.close();
    }
  });

  it.each(['manager', 'viewer'] as const)(
    '%s: a request whose reply subject is under vdsm.> does not make the agent write the stream',
    async (name) => {
      // The agent may publish anywhere under vdsm.>; the reply subject is the caller's choice.
      const nc = await identity(name);
      try {
        const before = await lastOn(`vdsm.VM.${VICTIM}`);
        const all = await lastSeq();
        const subject = name === 'viewer' ? 'opstream.read' : 'opstream.api';
        nc.publish(subject, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'VM.getInfo', params: { vmId: VICTIM } }), { reply: `vdsm.VM.${VICTIM}` });
        await nc.flush();
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect({ victim: await lastOn(`vdsm.VM.${VICTIM}`), stream: await lastSeq() }).toEqual({ victim: before, stream: all });
      } finally {
        await nc.close();
      }
    },
  );

  it.each(['manager', 'viewer'] as const)('%s: a request whose reply subject is a KV key does not make the agent write the KV', async (name) => {
    const nc = await identity(name);
    try {
      const kv = await new Kvm(admin).open('OPSTREAM_SNAPSHOTS');
      const key = `deputy-${name}`;
      const subject = name === 'viewer' ? 'opstream.read' : 'opstream.api';
      const request = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'VM.getInfo', params: { vmId: VICTIM } });
      nc.publish(subject, request, { reply: `$KV.OPSTREAM_SNAPSHOTS.${key}` });
      await nc.flush();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await kv.get(key))?.string() ?? null).toBeNull();
    } finally {
      await nc.close();
    }
  });

  it.each(['viewer', 'manager'] as const)('%s: a request whose reply subject is the stream purge API does not purge the stream', async (name) => {
    // Something to lose, even if an earlier case already lost it.
    await operator.vm.create(`purge-${name}-${suffix}`);
    const nc = await identity(name);
    try {
      const before = (await adminJsm.streams.info(DEFAULT_STREAM)).state;
      expect(before.messages).toBeGreaterThan(0);
      const subject = name === 'viewer' ? 'opstream.read' : 'opstream.api';
      const request = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'VM.getInfo', params: { vmId: VICTIM } });
      nc.publish(subject, request, { reply: `$JS.API.STREAM.PURGE.${DEFAULT_STREAM}` });
      await nc.flush();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const after = (await adminJsm.streams.info(DEFAULT_STREAM)).state;
      // Nothing was purged: the first message is still there and nothing was lost (others may add).
      expect(after.first_seq).toBe(before.first_seq);
      expect(after.messages).toBeGreaterThanOrEqual(before.messages);
    } finally {
      await nc.close();
    }
  });
});

describe('what a viewer can see or undo of others', () => {
  it('viewer: cannot delete a manager group\'s durable consumer', async () => {
    const durable = `group-${suffix}`;
    const manager = await startManager({
      nats: server.url,
      access: { nkeyFile: server.credentials.nkeyFiles.manager },
      durableName: durable,
      filter: 'vdsm.VM.*',
      startAt: 'new',
      onAlert: () => undefined,
    });
    const nc = await identity('viewer');
    try {
      const jsm = await jetstreamManager(nc, { timeout: 1_000 });
      const deleted = await jsm.consumers.delete(DEFAULT_STREAM, durable).catch(() => false);
      const still = await adminJsm.consumers.info(DEFAULT_STREAM, durable).then(() => true, () => false);
      expect({ deleted, still }).toEqual({ deleted: false, still: true });
    } finally {
      await nc.close();
      await manager.stop().catch(() => undefined);
    }
  });

  it('viewer: cannot read the replies a manager gets from the API', async () => {
    const nc = await identity('viewer');
    const seen: string[] = [];
    // Where the manager's replies go: the server refuses the viewer's subscription outright.
    const refused: string[] = [];
    const snoop = nc.subscribe(`${INBOX_PREFIXES.manager}.>`, {
      callback: (error, message) => {
        if (error) refused.push(String(error));
        else seen.push(message.string());
      },
    });
    await nc.flush();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const bus = await connectBus(server.url, { nkeyFile: server.credentials.nkeyFiles.manager });
    try {
      const secretish = `snooped-${suffix}`;
      await bus.vm.create(secretish);
      await bus.vm.getInfo(secretish);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(seen.filter((text) => text.includes(secretish))).toEqual([]);
      expect(refused.join()).toMatch(/Permissions Violation for Subscription/);
    } finally {
      snoop.unsubscribe();
      await bus.close();
      await nc.close();
    }
  });
});

describe('what a manager may do', () => {
  it('follows alerts through a durable consumer and calls opstream.api', async () => {
    const seen: ManagedAlert[] = [];
    const vmId = `managed-${suffix}`;
    const manager = await startManager({
      nats: server.url,
      access: { nkeyFile: server.credentials.nkeyFiles.manager },
      durableName: `trust-${suffix}`,
      filter: `vdsm.VM.${vmId}`,
      startAt: 'new',
      onAlert: (alert) => void seen.push(alert),
    });
    const bus = await connectBus(server.url, { nkeyFile: server.credentials.nkeyFiles.manager });
    try {
      await bus.vm.create(vmId);
      await untilVmStatus(bus, vmId, 'Up');
      const deadline = Date.now() + 10_000;
      while (!seen.some((alert) => alert.status === 'Up') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(seen.map((alert) => alert.alertName)).toContain(`vdsm.VM.${vmId}`);
      expect(seen.some((alert) => alert.status === 'Up')).toBe(true);
    } finally {
      await bus.close();
      await manager.stop();
    }
  });
});

/** The HTTP status an upgrade to `url` gets (101 when admitted). */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    socket.once('open', () => {
      socket.close();
      resolve(101);
    });
    socket.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      response.resume();
    });
    socket.once('error', (error) => {
      if (!/Unexpected server response/.test(String(error))) reject(error);
    });
  });
}

describe('the WebSocket upgrade', () => {
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('refuses no token and a wrong token with 401', async () => {
    expect(await upgradeStatus(agent.api.url, {})).toBe(401);
    expect(await upgradeStatus(agent.api.url, bearer('not-the-token'))).toBe(401);
    expect(await upgradeStatus(`${agent.api.url}?token=not-the-token`, {})).toBe(401);
    // Near misses: the operator token with a character changed, or with whitespace around.
    const token = agent.credentials.operatorToken;
    expect(await upgradeStatus(agent.api.url, bearer(`${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`))).toBe(401);
    expect(await upgradeStatus(agent.api.url, { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` })).toBe(401);
  });

  it('admits the operator token by header or query', async () => {
    expect(await upgradeStatus(agent.api.url, bearer(agent.credentials.operatorToken))).toBe(101);
    expect(await upgradeStatus(`${agent.api.url}?token=${encodeURIComponent(agent.credentials.viewerToken)}`, {})).toBe(101);
  });

  it('refuses a foreign Origin with 403 and admits the same origin', async () => {
    const token = bearer(agent.credentials.operatorToken);
    expect(await upgradeStatus(agent.api.url, { ...token, origin: 'https://evil.example' })).toBe(403);
    expect(await upgradeStatus(agent.api.url, { ...token, origin: 'null' })).toBe(403);
    expect(await upgradeStatus(agent.api.url, { ...token, origin: `http://127.0.0.1:${agent.api.port}.evil.example` })).toBe(403);
    expect(await upgradeStatus(agent.api.url, { ...token, origin: `http://127.0.0.1:${agent.api.port}` })).toBe(101);
  });

  it('gives a viewer token read methods only: VM.create answers 109 naming the role', async () => {
    const viewer = await connect(agent.api.url, { token: agent.credentials.viewerToken });
    try {
      const vmId = `ws-viewer-${suffix}`;
      const refused = await callError(viewer.vm.create(vmId));
      expect(refused.code).toBe(109);
      expect(refused.message).toMatch(/operator/);
      expect((await callError(viewer.call('Sim.injectFault', { vmId: VICTIM }))).code).toBe(109);
      expect((await callError(operator.vm.getInfo(vmId))).code).toBe(100);
      const readable = `ws-readable-${suffix}`;
      await operator.vm.create(readable);
      expect((await viewer.vm.getInfo(readable)).vmId).toBe(readable);
    } finally {
      await viewer.close();
    }
  });

  it('answers /healthz without detail to an anonymous caller', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const url = new URL(agent.api.url.replace(/^ws/, 'http'));
      httpRequest({ host: url.hostname, port: url.port, path: '/healthz' }, (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => resolve(text));
      })
        .on('error', reject)
        .end();
    });
    expect(JSON.parse(body)).toEqual({ status: 'ok', quarantined: { count: expect.any(Number) as number } });
  });
});
