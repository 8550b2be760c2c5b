// `opstream <command>`: the project's command line.
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_STREAM } from '../nats/alert-stream.ts';
import { DEFAULT_API_URL } from './agent-access.ts';
import { call } from './call.ts';
import { cancel, jobs } from './jobs.ts';
import { replay } from './replay.ts';
import { publishedSchemas } from './schema.ts';
import { start } from './start.ts';
import { tasks } from './tasks.ts';
import { watch } from './watch.ts';

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
  .option('--job-retention <seconds>', 'how long ended jobs stay visible and retries with their jobId stay idempotent', count, 3600)
  .option('--stall-timeout <seconds>', 'fail an operation whose driver reports nothing for this long', count, 600)
  .addOption(
    new Option('--image-driver <driver>', 'images as qcow2 files through qemu-img, or simulated')
      .choices(['sim', 'qemu'])
      .default(process.env['OPSTREAM_IMAGE_DRIVER'] ?? 'sim'),
  )
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

/** Options every client command takes: where the agent is. */
const reachAgent = (command: Command) =>
  command
    .option('--url <url>', `the agent's WebSocket endpoint (env OPSTREAM_URL)`, process.env['OPSTREAM_URL'] ?? DEFAULT_API_URL)
    .option('--nats-url <url>', 'go over the NATS bus instead of WebSocket');

reachAgent(
  program
    .command('watch')
    .description('live progress of the operations on matching entities; exits when they end (1 if any failed)')
    .argument('<filter>', 'glob (vdsm.VM.*) or, with --regexp, a regexp (vdsm.VM.(a|b))')
    .option('--regexp', 'the filter is a regexp', false)
    .option('--follow', 'keep watching after the operations end', false),
).action(async (filter: string, options) => {
  process.exitCode = await watch(filter, options);
});

reachAgent(
  program
    .command('tasks')
    .description('list running tasks')
    .argument('[filter]', 'glob or regexp over task ids (or method names with --on methodName)', '*')
    .option('--regexp', 'the filter is a regexp', false)
    .option('--on <field>', 'match the filter against "id" or "methodName"', 'id')
    .option('--json', 'machine-readable output', false),
).action(tasks);

reachAgent(
  program
    .command('call')
    .description('call an API method by hand: opstream call VM.pause vmId=best_vm')
    .argument('<method>', 'e.g. VM.create, VM.getInfo, Host.getRunningTasks')
    .argument('[params...]', 'key=value pairs; values that parse as JSON are taken as JSON'),
).action(call);

reachAgent(
  program
    .command('jobs')
    .description('jobs with their step tree and progress (all of them, or one)')
    .argument('[jobId]', 'one job')
    .option('--status <status>', 'only jobs in this status (pending, running, done, aborting, aborted, failed)')
    .option('--type <method>', 'only jobs of this method (jobType), e.g. Host.prepareForMaintenance')
    .option('--flow <flowId>', 'only jobs of this correlation id')
    .option('--wait', 'with a jobId: wait until it ends', false)
    .option('--json', 'machine-readable output', false),
).action(jobs);

reachAgent(
  program
    .command('cancel')
    .description("cancel a job as its running operation's state declares (revert, roll forward, or refuse with a reason)")
    .argument('<jobId>', 'the job (a one-entity job has its task id)'),
).action(cancel);

program
  .command('schema')
  .description('print the JSON Schema of OperationInfo (with the operationDescription enum), alerts and TaskInfo')
  .action(() => console.log(JSON.stringify(publishedSchemas(), null, 2)));

try {
  await program.parseAsync();
} catch (error) {
  // Errors users cause (bad file, unknown entity, refused call) get one line, not a stack trace.
  const code = (error as { code?: unknown }).code;
  console.error(`opstream: ${typeof code === 'number' ? `error ${code}: ` : ''}${(error as Error).message}`);
  process.exitCode = 2;
}
