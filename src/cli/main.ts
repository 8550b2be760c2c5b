// `opstream <command>`: the project's command line.
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_STREAM } from '../nats/alert-stream.ts';
import { replay } from './replay.ts';
import { publishedSchemas } from './schema.ts';
import { start } from './start.ts';

const port = (value: string): number => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65_535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return parsed;
};

const count = (value: string): number => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new InvalidArgumentError('must be a whole number');
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
  .option('--snapshot-every <n>', 'snapshot an entity every n alerts; 0 disables snapshots', count, 50)
  .option('--sim-step-ms <ms>', 'tick length of every simulated work (default: demo timings)', count)
  .action(start);

program
  .command('replay')
  .description("an entity's history step by step: sequence, time, cause event, from → to, OperationInfo")
  .argument('[alertName]', 'the entity, e.g. vdsm.VM.best_vm')
  .option('--to <seq>', 'stop at this stream sequence (time travel)', count)
  .option('--verify', "re-run today's machines over the history and report the first divergence", false)
  .option('--json', 'machine-readable output', false)
  .option('--export <file>', 'write the history to a file, to replay elsewhere without the cluster')
  .option('--import <file>', 'replay a history file instead of reading the stream')
  .option('--nats-url <url>', 'NATS server (env NATS_URL); default: the embedded one', process.env['NATS_URL'])
  .option('--stream <name>', 'the alert stream', DEFAULT_STREAM)
  .action(async (alertName: string | undefined, options) => {
    process.exitCode = await replay(alertName, options);
  });

program
  .command('schema')
  .description('print the JSON Schema of OperationInfo (with the operationDescription enum), alerts and TaskInfo')
  .action(() => console.log(JSON.stringify(publishedSchemas(), null, 2)));

try {
  await program.parseAsync();
} catch (error) {
  // Errors users cause (bad file, unknown entity) get one line, not a stack trace.
  console.error(`opstream: ${(error as Error).message}`);
  process.exitCode = 2;
}
