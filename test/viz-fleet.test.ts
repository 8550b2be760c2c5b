// The page's fleet model: what the page believes about each entity when a listing and live
// alerts race, and the order rows are drawn in. Pure logic, no browser needed.
import { describe, expect, it } from 'vitest';
import { Fleet, type KindInfo } from '../src/viz/client/fleet.ts';
import type { OperationInfo } from '../src/viz/client/rpc.ts';

const kinds: KindInfo[] = [
  { kind: 'VM', id: 'vm', version: 1, alertPrefix: 'vdsm.VM.', alertPattern: 'vdsm.VM.*' },
  { kind: 'VM.Disk', id: 'vmDisk', version: 1, alertPrefix: 'vdsm.VM.', alertPattern: 'vdsm.VM.*.Disk.*' },
  { kind: 'Storage.Image', id: 'image', version: 1, alertPrefix: 'vdsm.Storage.Image.', alertPattern: 'vdsm.Storage.Image.*' },
];
const info = (operationDescription: string): OperationInfo => ({ operationDescription, stageDescription: '', stage: [1, 1], percentage: -1, lastError: [0, ''], extraData: {} });

function fleet(): Fleet {
  const model = new Fleet();
  model.setKinds(kinds);
  return model;
}

describe('the fleet model', () => {
  it('keeps the newer of a listing row and an alert, whichever arrives first', () => {
    const model = fleet();
    model.alert({ alertName: 'vdsm.VM.a', seq: 10, operationInfo: info('Paused') });
    model.list({ alertName: 'vdsm.VM.a', kind: 'VM', id: 'a', status: 'Up', operationInfo: info('Running'), seq: 7 });
    expect(model.get('vdsm.VM.a')).toMatchObject({ seq: 10, operationInfo: { operationDescription: 'Paused' } });

    model.list({ alertName: 'vdsm.VM.b', kind: 'VM', id: 'b', status: 'Up', operationInfo: info('Running'), seq: 20 });
    model.alert({ alertName: 'vdsm.VM.b', seq: 15, operationInfo: info('Creating') });
    model.alert({ alertName: 'vdsm.VM.b', seq: 21, operationInfo: info('Pausing') });
    expect(model.get('vdsm.VM.b')).toMatchObject({ seq: 21, operationInfo: { operationDescription: 'Pausing' } });
  });

  it('bumps an entity version only when it changes, so rows redraw only then', () => {
    const model = fleet();
    model.alert({ alertName: 'vdsm.VM.a', seq: 3, operationInfo: info('Running') });
    const version = model.get('vdsm.VM.a')?.version;
    model.alert({ alertName: 'vdsm.VM.a', seq: 3, operationInfo: info('Running') });
    expect(model.get('vdsm.VM.a')?.version).toBe(version);
    model.alert({ alertName: 'vdsm.VM.a', seq: 4, operationInfo: info('Pausing') });
    expect(model.get('vdsm.VM.a')?.version).toBe((version ?? 0) + 1);
  });

  it('orders rows by kind (as the agent lists kinds), then id, and filters by kind', () => {
    const model = fleet();
    for (const name of ['vdsm.Storage.Image.x', 'vdsm.VM.c', 'vdsm.VM.a', 'vdsm.Storage.Image.b', 'vdsm.VM.b']) {
      model.alert({ alertName: name, seq: 1, operationInfo: info('Ready') });
    }
    expect(model.view.map((entity) => entity.alertName)).toEqual(['vdsm.VM.a', 'vdsm.VM.b', 'vdsm.VM.c', 'vdsm.Storage.Image.b', 'vdsm.Storage.Image.x']);
    expect(model.get('vdsm.Storage.Image.b')).toMatchObject({ kind: 'Storage.Image', id: 'b' });
    model.setKindFilter('Storage.Image');
    expect(model.view.map((entity) => entity.id)).toEqual(['b', 'x']);
    expect(model.count('VM')).toBe(3);
  });

  it('ignores alerts of kinds it was not told about, until the agent lists the kind', () => {
    const model = fleet();
    model.alert({ alertName: 'vdsm.Job.j1', seq: 5, operationInfo: info('Running') });
    expect(model.size).toBe(0);
    model.setKinds([...kinds, { kind: 'Job', id: 'job', version: 1, alertPrefix: 'vdsm.Job.', alertPattern: 'vdsm.Job.*' }]);
    model.alert({ alertName: 'vdsm.Job.j1', seq: 6, operationInfo: info('Running') });
    expect(model.get('vdsm.Job.j1')).toMatchObject({ kind: 'Job', id: 'j1' });
  });

  it("tells a VM's disks from the VM though both start with vdsm.VM., and ids them vmId.diskId", () => {
    const model = fleet();
    model.alert({ alertName: 'vdsm.VM.web.Disk.d1', seq: 2, operationInfo: info('Migration') });
    model.alert({ alertName: 'vdsm.VM.web', seq: 1, operationInfo: info('Migration') });
    model.alert({ alertName: 'vdsm.VM.web.Other.d1', seq: 3, operationInfo: info('Migration') });
    expect(model.get('vdsm.VM.web.Disk.d1')).toMatchObject({ kind: 'VM.Disk', id: 'web.d1' });
    expect(model.get('vdsm.VM.web')).toMatchObject({ kind: 'VM', id: 'web' });
    expect(model.get('vdsm.VM.web.Other.d1')).toBeUndefined();
    expect(model.view.map((entity) => entity.alertName)).toEqual(['vdsm.VM.web', 'vdsm.VM.web.Disk.d1']);
  });
});
