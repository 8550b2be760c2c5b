// Transport-independent API: finds a method, validates its named params, runs it, and turns any
// failure into an OpstreamError with a code and a message that names what was wrong.
import type { z } from 'zod';
import { ErrorCodes, OpstreamError, OwnedElsewhereError } from '../domain/errors.ts';
import { mayCall, roleFor } from './roles.ts';
import { createLogger } from '../log.ts';
import { isUnreachable } from '../nats/errors.ts';
import type { ApiContext, MethodSpec } from './method.ts';
import { glusterVolumeMethods } from './methods/gluster-volume.ts';
import { historyMethods } from './methods/history.ts';
import { hostMethods } from './methods/host.ts';
import { imageMethods } from './methods/image.ts';
import { asJob } from './job-call.ts';
import { jobMethods } from './methods/job.ts';
import { simMethods } from './methods/sim.ts';
import { storageConnectionMethods } from './methods/storage-connection.ts';
import { vmMethods } from './methods/vm.ts';

const logger = createLogger('api');

/** The methods as they are, before the job layer (the jobs benchmark compares both). */
export const PLAIN_METHODS: readonly MethodSpec[] = [
  ...vmMethods,
  ...imageMethods,
  ...storageConnectionMethods,
  ...glusterVolumeMethods,
  ...hostMethods,
  ...historyMethods,
] as MethodSpec[];

/** Every mutating call (but fault injection and the job methods themselves) runs as a job. */
const NOT_JOBS = /^(Sim|Job|Task)\./;
export const API_METHODS: readonly MethodSpec[] = [
  ...PLAIN_METHODS.map((method) => (NOT_JOBS.test(method.name) ? method : asJob(method))),
  ...(jobMethods.map((method) => (method.name === 'Host.prepareForMaintenance' ? asJob(method as MethodSpec) : method)) as MethodSpec[]),
];

/** The methods an agent serves: `Sim.*` only where a simulated driver can act on them. */
export function apiMethods(services: { sim?: unknown }): readonly MethodSpec[] {
  return services.sim ? [...API_METHODS, ...(simMethods as MethodSpec[])] : API_METHODS;
}

export class Dispatcher {
  readonly #methods: Map<string, MethodSpec>;

  constructor(methods: readonly MethodSpec[] = API_METHODS) {
    this.#methods = new Map(methods.map((method) => [method.name, method]));
  }

  get methodNames(): string[] {
    return [...this.#methods.keys()];
  }

  /** The error for a method nobody serves, pointing at its namespace's methods when there are any. */
  methodNotFound(name: string): OpstreamError {
    const namespace = name.split('.')[0];
    const near = this.methodNames.filter((candidate) => candidate.split('.')[0] === namespace);
    const hint = near.length ? `; ${namespace} has ${near.join(', ')}` : '';
    return new OpstreamError(ErrorCodes.MethodNotFound, `unknown method ${JSON.stringify(name)}${hint}`);
  }

  async invoke(name: string, params: unknown, context: ApiContext): Promise<unknown> {
    const method = this.#methods.get(name);
    if (!method) throw this.methodNotFound(name);
    if (!mayCall(context.role, method.access)) {
      throw new OpstreamError(ErrorCodes.Forbidden, `${name} needs the ${roleFor(method.access)} role; this caller is a ${context.role}`);
    }
    if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
      throw new OpstreamError(ErrorCodes.InvalidParams, `${name} takes named params (a JSON object), not ${describe(params)}`);
    }
    if (!context.runtime.recovered) {
      throw new OpstreamError(
        ErrorCodes.Unavailable,
        'the agent is still rebuilding its entities from the stream; retry when GET /healthz answers 200',
      );
    }
    const parsed = method.params.safeParse(params ?? {});
    if (!parsed.success) throw new OpstreamError(ErrorCodes.InvalidParams, `${name}: ${formatIssues(parsed.error)}`);
    const elsewhere = targetHost(params, context);
    if (elsewhere && context.fleet) return context.fleet.forward(elsewhere, name, params);
    try {
      return await method.handler(parsed.data, context);
    } catch (error) {
      // Nothing was done here: the entity is another host's, whose agent answers instead.
      if (error instanceof OwnedElsewhereError && context.fleet && !context.forwarded) return context.fleet.forward(error.hostId, name, params);
      if (error instanceof OpstreamError) throw error;
      if (isUnreachable(error)) {
        throw new OpstreamError(ErrorCodes.Unavailable, `${name}: the alert stream is unreachable (${(error as Error).message}); the outcome is unknown, check with getInfo`, undefined, { cause: error });
      }
      logger.error('method failed unexpectedly', { method: name, error: String(error) });
      throw new OpstreamError(ErrorCodes.InternalError, `${name} failed: ${(error as Error).message}`, undefined, { cause: error });
    }
  }
}


/**
 * The host a creating call names (`hostId`) when it is not this agent's. The call goes there
 * before anything runs here; a name no live agent of the fleet answers for is refused.
 */
function targetHost(params: unknown, context: ApiContext): string | undefined {
  const hostId = (params as { hostId?: unknown } | undefined)?.hostId;
  const { fleet } = context;
  if (typeof hostId !== 'string' || !fleet || hostId === fleet.hostId) return undefined;
  if (context.forwarded) {
    throw new OpstreamError(ErrorCodes.InvalidParams, `hostId: this agent is host ${fleet.hostId}, not ${hostId}`);
  }
  if (!fleet.isLive(hostId)) {
    const hosts = fleet.hosts();
    const live = hosts.filter((host) => host.responsive).map((host) => host.hostId);
    // A host the fleet knows may come back (retry); one it never saw is a wrong name (do not).
    const known = hosts.some((host) => host.hostId === hostId);
    throw new OpstreamError(
      known ? ErrorCodes.Unavailable : ErrorCodes.InvalidParams,
      `hostId: ${known ? `host ${hostId} is not responding` : `no agent of the fleet is host ${hostId}`} (live: ${live.join(', ') || 'none'})`,
      { hostId },
    );
  }
  return hostId;
}

function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.length ? issue.path.join('.') : 'params';
      const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
      return `${field}: ${issue.message}${keys}`;
    })
    .join('; ');
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  return value === null ? 'null' : `a ${typeof value}`;
}
