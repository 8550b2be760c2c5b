// A whole agent for a test file: its own nats-server, the agent on a free port, and a client.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type Agent, type AgentOptions } from '../../src/agent.ts';
import { connect, type OpstreamClient } from '../../src/index.ts';
import { NatsTestServer } from './nats-server.ts';

export type TestStack = { server: NatsTestServer; agent: Agent; host: OpstreamClient; stop(): Promise<void> };

export async function startStack(options: Partial<AgentOptions> = {}): Promise<TestStack> {
  const server = await NatsTestServer.start();
  const credentialsDir = mkdtempSync(join(tmpdir(), 'opstream-credentials-'));
  const agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 5 }, credentialsDir, ...options });
  const host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
  return {
    server,
    agent,
    host,
    async stop() {
      await host.close();
      await agent.stop();
      await server.stop();
    },
  };
}
