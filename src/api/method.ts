// What an API method is — its name, its access (read or write), its params schema, its handler —
// and what every handler can reach.
import type { z } from 'zod';
import type { FaultInjector, VolumeQueries } from '../../actors/drivers/driver.ts';
import type { JobScope } from '../../actors/job-scope.ts';
import type { Runtime } from '../../actors/runtime.ts';
import type { AlertFanout } from '../subscriptions/fanout.ts';
import type { StorageAllowList } from './storage-allow-list.ts';
import type { CallForwarder } from '../fleet/forward.ts';
import type { HostStatus } from '../fleet/membership.ts';
import type { Role } from './roles.ts';
import type { Session } from './session.ts';

/** The agent's parts the API reaches, the same for every connection and transport. */
export type AgentServices = {
  runtime: Runtime;
  /** Present when a driver that takes injected faults runs (the simulator). */
  sim?: FaultInjector;
  /** The gluster driver, for questions that are not operations (healInfo). */
  gluster?: VolumeQueries;
  /** The storage servers StorageConnection.connect may reach. */
  storageAllow: StorageAllowList;
  /** The agent's one read of the alert stream, which subscriptions share. */
  fanout: AlertFanout;
  /** This agent's place in the fleet: calls for other hosts' entities go on to them. */
  fleet?: FleetServices;
};

export type FleetServices = {
  hostId: string;
  isLive(hostId: string): boolean;
  /** Every host of the fleet as this agent sees it (Host.list). */
  hosts(): HostStatus[];
  /** Sends the call to `hostId`'s agent and answers what it answers. */
  forward: CallForwarder;
};

/** What every method can reach: the agent, and who is calling. */
export type ApiContext = AgentServices & {
  role: Role;
  /** The caller's connection, when the transport has one (WebSocket); request/reply has none. */
  session?: Session;
  /** Another agent forwarded this call here: it is answered here or not at all, never sent on. */
  forwarded?: boolean;
  /** Set by the job layer: the job this call runs as, whose id the task it registers takes. */
  job?: JobScope;
};

/**
 * What a method does to the agent: `read` methods only look (a viewer may call them), `write`
 * methods change entities or the agent (an operator's).
 */
export type MethodAccess = 'read' | 'write';

export type MethodSpec<Schema extends z.ZodType = z.ZodType, Result = unknown> = {
  name: string;
  access: MethodAccess;
  /** Named params; anything they reject is an InvalidParams error naming the field. */
  params: Schema;
  handler(params: z.infer<Schema>, context: ApiContext): Promise<Result>;
};

/** Keeps each method's params and handler types tied together. */
export function defineMethod<Schema extends z.ZodType, Result>(spec: MethodSpec<Schema, Result>): MethodSpec<Schema, Result> {
  return spec;
}
