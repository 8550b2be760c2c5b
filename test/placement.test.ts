// Placement in replay, on its own: every alert names its owner, the fleet's records move it, and a
// record that does not fit who owned the entity then is a divergence — so a writer fenced out of an
// entity cannot slip a record into its history even if it got past the stream's guard.
import { describe, expect, it } from 'vitest';
import type { AnyMachineSnapshot } from 'xstate';
import { buildAlert } from '../actors/alert-builder.ts';
import { placementAfter, UNKNOWN_STATUS, type PlacementEvent } from '../actors/placement.ts';
import { nextSnapshot } from '../actors/pure-transition.ts';
import { initialReplayState, replayOne, type ReplayState } from '../actors/replay.ts';
import { MACHINES } from '../machines/index.ts';
import type { Alert, RecordedEvent } from '../src/domain/alert.ts';

const definition = MACHINES.VM;
const subject = 'vdsm.VM.web';
const task = { id: 'task-1', methodName: 'VM.create', kwargs: {} };

/** An entity's history, written record by record as an agent would, and replayed as it grows. */
class History {
  state: ReplayState = initialReplayState(definition, 'web');
  #seq = 0;

  /** A machine transition written by `hostId`. */
  transition(event: RecordedEvent, hostId: string | undefined): ReplayState {
    const before = this.state.snapshot;
    const next = nextSnapshot(definition.machine, before as never, event as never) as AnyMachineSnapshot;
    return this.#replay(buildAlert({ definition, subject, before, next, event, revision: this.state.revision + 1, time: new Date(0) }), hostId);
  }

  /** A fleet record; `lost` says what status it shows. */
  placement(event: PlacementEvent, hostId: string, lost: boolean): ReplayState {
    const { snapshot } = this.state;
    const alert = buildAlert({ definition, subject, before: snapshot, next: snapshot, event, revision: this.state.revision + 1, time: new Date(0) });
    if (lost) alert.status = UNKNOWN_STATUS;
    return this.#replay(alert, hostId);
  }

  #replay(alert: Alert, hostId: string | undefined): ReplayState {
    if (hostId !== undefined) alert.hostId = hostId;
    this.#seq += 1;
    this.state = replayOne(definition, this.state, { seq: this.#seq, alert });
    return this.state;
  }
}

const created = (): History => {
  const history = new History();
  history.transition({ type: 'CREATE', task, params: {} }, 'h1');
  return history;
};

describe('placement in replay', () => {
  it('places an entity on the host that created it and keeps it there', () => {
    const history = created();
    expect(history.transition({ type: 'WORK_DONE' }, 'h1')).toMatchObject({ placement: { hostId: 'h1' } });
    expect(history.state.divergence).toBeUndefined();
  });

  it('leaves histories from before the fleet unplaced, and places them at the first record that names a host', () => {
    const history = new History();
    history.transition({ type: 'CREATE', task, params: {} }, undefined);
    expect(history.state.placement).toBeUndefined();
    expect(history.transition({ type: 'WORK_DONE' }, 'h2').placement).toEqual({ hostId: 'h2' });
  });

  it('diverges at a record written by a host that does not own the entity', () => {
    const history = created();
    const state = history.transition({ type: 'WORK_DONE' }, 'h2');
    expect(state.divergence?.reason).toMatch(/written by host h2 while host h1 owned it/);
    expect(state.divergence?.seq).toBe(2);
  });

  it('fences the owner with HOST_LOST until HOST_RETURNED: its record in between diverges', () => {
    const fenced = created();
    expect(fenced.placement({ type: 'HOST_LOST', hostId: 'h1', epoch: 1, by: 'h2' }, 'h1', true).placement).toEqual({ hostId: 'h1', lost: true, lostEpoch: 1 });
    expect(fenced.transition({ type: 'WORK_DONE' }, 'h1').divergence?.reason).toMatch(/after the fleet declared it lost/);

    const returned = created();
    returned.placement({ type: 'HOST_LOST', hostId: 'h1', epoch: 1, by: 'h2' }, 'h1', true);
    expect(returned.placement({ type: 'HOST_RETURNED', hostId: 'h1', epoch: 2 }, 'h1', false).placement).toEqual({ hostId: 'h1', epoch: 2 });
    expect(returned.transition({ type: 'WORK_DONE' }, 'h1').divergence).toBeUndefined();
  });

  it('hands an entity over with HOST_CHANGED from its owner only', () => {
    const moved = created();
    expect(moved.placement({ type: 'HOST_CHANGED', from: 'h1', to: 'h2' }, 'h2', false).placement).toEqual({ hostId: 'h2' });
    expect(moved.transition({ type: 'WORK_DONE' }, 'h2').divergence).toBeUndefined();

    const stolen = created();
    expect(stolen.placement({ type: 'HOST_CHANGED', from: 'h3', to: 'h3' }, 'h3', false).divergence?.reason).toMatch(/HOST_CHANGED from host h3, which did not hold it/);
  });

  it('diverges at a fleet record whose status does not say whether the host is lost', () => {
    const history = created();
    expect(history.placement({ type: 'HOST_LOST', hostId: 'h1', epoch: 1, by: 'h2' }, 'h1', false).divergence?.reason).toMatch(/does not match whether its host is lost/);
  });

  it('diverges at a HOST_LOST of a host that did not own the entity', () => {
    const history = created();
    expect(history.placement({ type: 'HOST_LOST', hostId: 'h2', epoch: 1, by: 'h3' }, 'h2', true).divergence?.reason).toMatch(/HOST_LOST of host h2, which did not hold it/);
  });
});

describe('placement of a sub-object (a VM\'s disk)', () => {
  it('takes no owner of its own, but records a fence of its parent\'s lost host', () => {
    expect(placementAfter(undefined, { type: 'DISK_PROGRESS' }, undefined, true)).toBeUndefined();
    const fenced = placementAfter(undefined, { type: 'HOST_LOST', hostId: 'h1', epoch: 3, by: 'h2' }, undefined, true);
    expect(fenced).toEqual({ hostId: 'h1', lost: true, lostEpoch: 3 });
    // Its reports go on after its parent returns: they name no host and are not refused.
    expect(placementAfter(fenced as never, { type: 'DISK_PROGRESS' }, undefined, true)).toEqual(fenced);
  });
});
