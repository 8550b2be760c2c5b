// Where an entity runs: the host that owns it, and whether the fleet has seen that host fall
// silent. Placement is part of the entity's history — every alert names its owner (`hostId`), and
// the fleet's own records change it — so replay rebuilds it like any other state, and the
// subject's sequence (the write path's expected-last-subject-seq) is the fencing token: whoever
// records a change of placement moves the sequence, and a writer that missed it is refused.
import type { RecordedEvent } from '../src/domain/alert.ts';

export type Placement = {
  /** The host whose agent writes this entity's history and runs its work. */
  hostId: string;
  /** The fleet saw the owner fall silent: the entity shows `Unknown` until the owner returns. */
  lost?: boolean;
  /** The lease epoch of the owner that was declared lost (see FleetMembership). */
  lostEpoch?: number;
  /** The lease epoch the owner returned with: declarations of an older lease fence nothing. */
  epoch?: number;
};

/** The status an entity shows while its owner is lost: VDSM's word for a VM nobody can vouch for. */
export const UNKNOWN_STATUS = 'Unknown';

/**
 * The fleet's records. They change no machine state (the machine never sees them):
 * - HOST_LOST, written by any live agent once the owner's lease lapsed, fences the owner out;
 * - HOST_RETURNED, written by the owner when it is back with a new lease;
 * - HOST_CHANGED, written by the owner to give the entity to another host (a migration's end).
 */
export type PlacementEvent =
  | { type: 'HOST_LOST'; hostId: string; epoch: number; by: string }
  | { type: 'HOST_RETURNED'; hostId: string; epoch: number }
  | { type: 'HOST_CHANGED'; from: string; to: string };

/** What the runtime needs of the fleet (FleetMembership provides it). */
export type FleetLink = {
  /** The lease epoch this agent holds, undefined while it is fenced. */
  epoch(): number | undefined;
  /** Whether `hostId` is an agent of the fleet that answers now. */
  isLive(hostId: string): boolean;
};

const PLACEMENT_EVENTS = new Set(['HOST_LOST', 'HOST_RETURNED', 'HOST_CHANGED']);

export function isPlacementEvent(event: RecordedEvent): event is RecordedEvent & PlacementEvent {
  return PLACEMENT_EVENTS.has(event.type);
}

/**
 * Placement after a recorded alert, or a reason the record cannot be history. `hostId` is the
 * owner the alert names; before the fleet existed alerts named none, and such a history stays
 * unplaced (whichever agent holds it owns it) until an agent that names itself writes to it.
 */
export function placementAfter(
  before: Placement | undefined,
  event: RecordedEvent,
  hostId: string | undefined,
  subObject = false,
): Placement | undefined | string {
  // A sub-object (a VM's disk) is owned by its parent and names no host; the fleet records only
  // HOST_LOST on it — to move its subject's sequence, fencing a zombie's reports on the disk too.
  if (subObject) return event.type === 'HOST_LOST' && isPlacementEvent(event) ? subObjectFence(event) : before;
  if (!isPlacementEvent(event)) {
    if (hostId === undefined) return before;
    if (!before) return { hostId };
    if (before.hostId !== hostId) return `written by host ${hostId} while host ${before.hostId} owned it`;
    if (before.lost) return `written by host ${hostId} after the fleet declared it lost, before it returned`;
    return before;
  }
  switch (event.type) {
    case 'HOST_LOST':
      if (before?.hostId !== event.hostId || before.lost) return `HOST_LOST of host ${event.hostId}, which did not hold it (owner ${describe(before)})`;
      return { hostId: event.hostId, lost: true, lostEpoch: event.epoch };
    case 'HOST_RETURNED':
      if (before?.hostId !== event.hostId || !before.lost) return `HOST_RETURNED of host ${event.hostId}, which had not lost it (owner ${describe(before)})`;
      return { hostId: event.hostId, epoch: event.epoch };
    case 'HOST_CHANGED':
      if (before && (before.hostId !== event.from || before.lost)) return `HOST_CHANGED from host ${event.from}, which did not hold it (owner ${describe(before)})`;
      return { hostId: event.to };
  }
}

function subObjectFence(event: PlacementEvent): Placement {
  const { hostId, epoch } = event as Extract<PlacementEvent, { type: 'HOST_LOST' }>;
  return { hostId, lost: true, lostEpoch: epoch };
}

function describe(placement: Placement | undefined): string {
  if (!placement) return 'none recorded';
  return placement.lost ? `${placement.hostId}, lost` : placement.hostId;
}
