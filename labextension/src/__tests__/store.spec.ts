import { capacityFor, Channel, GpuStore, Ring } from '../store';
import { GIB, makeGpu, makeGpus, makeHistory } from './fixtures';

describe('Ring', () => {
  it('keeps the newest samples in order when it wraps', () => {
    const ring = new Ring(3);
    for (let t = 1; t <= 5; t++) {
      ring.push(t, [t, 0, 0, 0, 0, 0]);
    }
    expect(ring.length).toBe(3);
    const times = [0, 1, 2].map(i => ring.time[ring.index(i)]);
    expect(times).toEqual([3, 4, 5]);
    expect(ring.last(Channel.Utilization)).toBe(5);
    expect(ring.lastTime).toBe(5);
  });

  it('keeps the newest samples when resized', () => {
    const ring = new Ring(5);
    for (let t = 1; t <= 5; t++) {
      ring.push(t, [t, 0, 0, 0, 0, 0]);
    }
    const small = ring.resized(2);
    expect(small.length).toBe(2);
    expect(small.time[small.index(0)]).toBe(4);
    const big = small.resized(10);
    expect(big.length).toBe(2);
    expect(big.last(Channel.Utilization)).toBe(5);
  });
});

describe('GpuStore', () => {
  it('loads the server history at once and continues with stream samples', () => {
    const store = new GpuStore(100);
    store.applyHistory(makeHistory(1000, 10));
    const uuid = makeGpu(0).uuid;
    expect(store.ring(uuid)!.length).toBe(10);
    expect(store.lastTimestamp).toBe(1000);

    const applied = store.applySnapshot(
      makeGpus(1001, [makeGpu(0, { utilization: { gpu: 77, memory: 1 } })])
    );
    expect(applied).toBe(true);
    const ring = store.ring(uuid)!;
    expect(ring.length).toBe(11);
    expect(ring.last(Channel.Utilization)).toBe(77);
    expect(store.latest!.timestamp).toBe(1001);
  });

  it('does not duplicate samples when history overlaps what it holds', () => {
    const store = new GpuStore(100);
    store.applyHistory(makeHistory(1000, 10));
    store.applyHistory(makeHistory(1005, 10)); // 996..1005: only 1001..1005 are new
    expect(store.ring(makeGpu(0).uuid)!.length).toBe(15);
  });

  it('ignores a snapshot older than the latest one', () => {
    const store = new GpuStore(100);
    store.applySnapshot(makeGpus(2000, [makeGpu(0)]));
    expect(store.applySnapshot(makeGpus(1999, [makeGpu(0)]))).toBe(false);
    expect(store.latest!.timestamp).toBe(2000);
  });

  it('stores values the GPU does not report as NaN, not as zero', () => {
    const store = new GpuStore(10);
    store.applySnapshot(
      makeGpus(1, [makeGpu(0, { power: { usage: null, limit: null } })])
    );
    const ring = store.ring(makeGpu(0).uuid)!;
    expect(Number.isNaN(ring.last(Channel.Power))).toBe(true);
    expect(ring.last(Channel.MemoryUsed)).toBe(0);
  });

  it('resizes its rings to what the server keeps', () => {
    expect(capacityFor(600, 1)).toBe(602);
    expect(capacityFor(600, 0.5)).toBe(1202);
    expect(capacityFor(1, 1)).toBe(16);
    const store = new GpuStore(602);
    store.applyHistory(makeHistory(1000, 50));
    store.setCapacity(20);
    expect(store.ring(makeGpu(0).uuid)!.length).toBe(20);
    expect(store.ring(makeGpu(0).uuid)!.last(Channel.MemoryUsed)).toBe(
      49 * GIB
    );
  });
});
