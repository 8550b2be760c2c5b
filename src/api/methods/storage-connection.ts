// StorageConnection.*: connect to allowed storage servers, disconnect, getInfo.
import { z } from 'zod';
import { EntityId, EntityKinds } from '../../domain/subjects.ts';
import { boundedKwargs } from '../limits.ts';
import { defineMethod } from '../method.ts';
import { contextOf, entityInfo } from './entity-info.ts';

const connection = (connectionId: string) => ({ kind: EntityKinds.StorageConnection, id: connectionId });
const ConnectionRef = z.strictObject({ connectionId: EntityId });

export const storageConnectionMethods = [
  defineMethod({
    name: 'StorageConnection.connect',
    access: 'write',
    // Beside the server, anything the storage type needs (path, user, password, ...) — secrets
    // among it are redacted before it is stored, so a restarted agent reconnects without them.
    params: z
      .looseObject({
        connectionId: EntityId,
        hostId: EntityId.optional(),
        type: z.enum(['nfs', 'iscsi', 'glusterfs', 'posixfs']).default('nfs'),
        server: z.string().min(1).max(255),
        port: z.number().int().min(1).max(65_535).optional(),
      })
      .superRefine(boundedKwargs),
    handler: async (params, { runtime, storageAllow, job }) => {
      storageAllow.check(params.server, params.port ?? 2049);
      const { taskId } = await runtime.call(connection(params.connectionId), 'StorageConnection.connect', params, (task) => {
        const { connectionId: _id, ...redacted } = task.kwargs;
        return { type: 'CONNECT', task, params: redacted };
      }, job);
      return { taskId };
    },
  }),
  defineMethod({
    name: 'StorageConnection.disconnect',
    access: 'write',
    params: ConnectionRef,
    handler: async ({ connectionId }, { runtime, job }) => {
      const { taskId } = await runtime.call(connection(connectionId), 'StorageConnection.disconnect', { connectionId }, (task) => ({
        type: 'DISCONNECT',
        task,
      }), job);
      return { taskId };
    },
  }),
  defineMethod({
    name: 'StorageConnection.getInfo',
    access: 'read',
    params: ConnectionRef,
    handler: async ({ connectionId }, { runtime }) => {
      const actor = await runtime.existing(connection(connectionId));
      return { connectionId, ...entityInfo(actor), params: contextOf<Record<string, unknown>>(actor, 'params') };
    },
  }),
];
