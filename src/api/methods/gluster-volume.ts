// GlusterVolume.*: create, start, stop, rebalance (gluster runs it; the driver polls), heal info.
import { z } from 'zod';
import { ErrorCodes, OpstreamError } from '../../domain/errors.ts';
import { EntityId, EntityKinds } from '../../domain/subjects.ts';
import { defineMethod } from '../method.ts';
import { entityCall } from './entity-call.ts';
import { contextOf, entityInfo } from './entity-info.ts';

const volume = (volumeName: string) => ({ kind: EntityKinds.GlusterVolume, id: volumeName });
const VolumeRef = z.strictObject({ volumeName: EntityId });
const Brick = z.string().regex(/^[^\s:]+:\/\S*$/, { error: 'a brick is host:/path' });

const volumeCall = (name: string, type: 'START' | 'STOP' | 'REBALANCE_START' | 'REBALANCE_STOP') =>
  entityCall(name, EntityKinds.GlusterVolume, 'volumeName', type);

export const glusterVolumeMethods = [
  defineMethod({
    name: 'GlusterVolume.create',
    access: 'write',
    params: z.strictObject({ volumeName: EntityId, bricks: z.array(Brick).min(1).max(64), hostId: EntityId.optional() }),
    handler: async ({ volumeName, bricks }, { runtime, job }) => {
      if (new Set(bricks).size !== bricks.length) throw new OpstreamError(ErrorCodes.InvalidParams, 'GlusterVolume.create: bricks must be distinct');
      const { taskId } = await runtime.call(volume(volumeName), 'GlusterVolume.create', { volumeName, bricks }, (task) => ({
        type: 'CREATE',
        task,
        bricks,
      }), job);
      return { taskId };
    },
  }),
  volumeCall('GlusterVolume.start', 'START'),
  volumeCall('GlusterVolume.stop', 'STOP'),
  volumeCall('GlusterVolume.rebalanceStart', 'REBALANCE_START'),
  volumeCall('GlusterVolume.rebalanceStop', 'REBALANCE_STOP'),
  defineMethod({
    name: 'GlusterVolume.healInfo',
    access: 'read',
    params: VolumeRef,
    // A question to gluster, not an operation: answered now, nothing is stored.
    handler: async ({ volumeName }, { runtime, gluster }) => {
      const actor = await runtime.existing(volume(volumeName));
      if (!gluster) throw new OpstreamError(ErrorCodes.Unavailable, 'no gluster is managed by this agent');
      const { status } = actor.view();
      if (status !== 'Started') throw new OpstreamError(ErrorCodes.InvalidTransition, `volume ${volumeName} is ${status}; heal info needs it Started`);
      return { volumeName, bricks: gluster.healInfo(volumeName) };
    },
  }),
  defineMethod({
    name: 'GlusterVolume.getInfo',
    access: 'read',
    params: VolumeRef,
    handler: async ({ volumeName }, { runtime }) => {
      const actor = await runtime.existing(volume(volumeName));
      return { volumeName, ...entityInfo(actor), bricks: contextOf<string[]>(actor, 'bricks') };
    },
  }),
];
