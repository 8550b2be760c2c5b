// `opstream <command>`: the project's command line.
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_STREAM } from '../nats/alert-stream.ts';
import { DEFAULT_API_URL } from './agent-access.ts';
import { PROJECT_ROOT } from './paths.ts';
import { call } from './call.ts';
import { fleet } from './fleet.ts';
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

/**
 * JetStream keeps at most 5 copies, and an even count survives no more lost servers than the odd
 * count below it (a quorum of 2 of 2 survives no loss, like 1; 3 of 4 survives one, like 2 of 3):
 * it only costs a copy. So 1, 3 or 5.
 */
const replicas = (value: string): number => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 5) throw new InvalidArgumentError('must be 1, 3 or 5 (JetStream keeps at most 5 copies)');
  if (parsed % 2 === 0) {
    throw new InvalidArgumentError(`must be odd: ${parsed} replicas survive no more lost servers than ${parsed - 1} (a quorum needs a majority), so use 1, 3 or 5`);
  }
  return parsed;
};

/** A comma-separated default from the environment, as commander's variadic options hold it. */
const list = (value: string | undefined): string[] => (value ? value.split(',').map((item) => item.trim()).filter(Boolean) : []);
const positive = (value: string): number => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new InvalidArgumentError('must be a whole number above 0');
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
  .option('--replicas <n>', 'alert stream and snapshot replicas: 1, 3 (a 3-node cluster) or 5', replicas, 1)
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
  .option('--credentials-dir <dir>', 'where tokens, nkeys and the history key are generated and read (default data/credentials)')
  .option('--storage-allow <host[:port]...>', 'storage servers StorageConnection.connect may reach (env OPSTREAM_STORAGE_ALLOW, comma-separated)', list(process.env['OPSTREAM_STORAGE_ALLOW']))
  .option('--allowed-origin <origin...>', 'browser origins allowed to use the API besides its own', [])
  .option('--tls-cert <file>', 'serve the API over TLS (wss://) with this PEM certificate')
  .option('--tls-key <file>', 'the PEM private key for --tls-cert')
  .option('--nats-nkey <file>', 'the agent identity for --nats-url (env OPSTREAM_NATS_NKEY)', process.env['OPSTREAM_NATS_NKEY'])
  .option('--nats-ca <file>', 'CA of a TLS NATS server (env OPSTREAM_NATS_CA)', process.env['OPSTREAM_NATS_CA'])
  .addOption(
    new Option('--vm-driver <driver>', 'VMs as qemu-system-x86_64 processes over QMP, or simulated')
      .choices(['sim', 'qemu'])
      .default(process.env['OPSTREAM_VM_DRIVER'] ?? 'sim'),
  )
  .option('--vm-dir <dir>', "where the qemu driver keeps each VM's QMP socket and files (default ./data/vms)")
  .option('--host-id <id>', "this host's id in the fleet (env OPSTREAM_HOST_ID; default the host name)", process.env['OPSTREAM_HOST_ID'])
  .option('--lease <ms>', 'a host silent this long is declared lost by the fleet; it renews every fifth of it (default 5000)', positive)
  .option('--migration-max-bandwidth <MiB/s>', 'live migration bandwidth cap (default: QEMU\'s)', positive)
  .action(start);

program
  .command('fleet')
  .description('try a fleet on one machine: a 3-node nats-server cluster (cluster/*.conf) and agents h1, h2, h3 at replicas 3')
  .option('--dir <dir>', 'the directory holding cluster/nats-{1,2,3}.conf and data/ (stores, credentials, logs)', PROJECT_ROOT)
  .option('--base-port <port>', 'put the 12 ports (3 client, 3 route, 3 monitoring, 3 API) at port…port+11 instead of the defaults', port)
  .option('--sim-step-ms <ms>', "tick length of the agents' simulated work (default: demo timings)", count)
  .action(fleet);

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
    .option('--nats-url <url>', 'go over the NATS bus instead of WebSocket')
    .option('--token <token>', 'bearer token (env OPSTREAM_TOKEN; default: the local agent\'s operator token)');

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
    .option('--host <hostId>', 'another host\'s tasks, as its agent answers (default: the tasks of the agent\'s own host)')
    .option('--fleet', 'the tasks of every host of the fleet', false)
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
  .command('viz')
  .description("draw an entity kind's state machine from its definition: SVG (ELK layout), Mermaid, or XState/Stately JSON")
  .argument('<kind>', 'VM, Storage.Image, Storage.Connection, Gluster.Volume (or the machine id: vm, image, ...)')
  .addOption(new Option('--format <format>', 'output format').choices(['svg', 'mermaid', 'json']).default('svg'))
  // Loaded on use: the layout engine is large, and other commands should not pay for it.
  .action(async (kind: string, options: { format: 'svg' | 'mermaid' | 'json' }) => (await import('./viz.ts')).viz(kind, options));

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
  // Exit now: an agent that failed to start may still hold a NATS connection that reconnects for ever.
  process.exit(2);
}
