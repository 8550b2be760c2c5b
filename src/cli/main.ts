// `opstream <command>`: the project's command line.
import { Command, InvalidArgumentError } from 'commander';
import { start } from './start.ts';

const port = (value: string): number => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65_535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return parsed;
};

const program = new Command()
  .name('opstream')
  .description('Long-running operations on virtualization hosts, as event-sourced actors on NATS JetStream');

program
  .command('start')
  .description('run the agent and its API (starts its own nats-server from nats.conf unless NATS_URL is set)')
  .option('--port <port>', 'API port (env OPSTREAM_PORT)', port, Number(process.env['OPSTREAM_PORT'] ?? 4040))
  .option('--nats-url <url>', 'use this NATS server instead of the embedded one (env NATS_URL)', process.env['NATS_URL'])
  .option('--replicas <n>', 'alert stream replicas (3 on a 3-node cluster)', (value) => Number(value), 1)
  .option('--demo', 'play the scripted demo against the agent once it is ready', false)
  .action(start);

await program.parseAsync();
