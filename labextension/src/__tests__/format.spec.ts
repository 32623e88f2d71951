import {
  aggregate,
  formatAge,
  formatBytes,
  formatDuration,
  formatMeasure,
  formatMemoryPair,
  formatPercent,
  formatPower,
  formatRate,
  formatTemperature,
  MISSING,
  statusBarText
} from '../format';
import { GIB, H100_TOTAL, makeGpu } from './fixtures';

describe('formatting', () => {
  it('shows bytes in binary units with one decimal below 100', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(480 * 1024 * 1024)).toBe('480 MiB');
    expect(formatBytes(12.34 * GIB)).toBe('12.3 GiB');
    expect(formatBytes(H100_TOTAL)).toBe('79.6 GiB');
  });

  it('shows a dash for values the GPU does not report', () => {
    expect(formatBytes(null)).toBe(MISSING);
    expect(formatPercent(null)).toBe(MISSING);
    expect(formatTemperature(undefined)).toBe(MISSING);
    expect(formatPower(null, 700)).toBe(MISSING);
    expect(formatRate(NaN)).toBe(MISSING);
    expect(formatMeasure(null, 'TFLOP/s')).toBe(MISSING);
  });

  it('rounds a memory total as a datasheet would', () => {
    expect(formatMemoryPair(12.3 * GIB, H100_TOTAL)).toBe('12.3/80 GiB');
    expect(formatMemoryPair(0.5 * GIB, 4 * GIB)).toBe('0.5/4 GiB');
    expect(formatMemoryPair(null, H100_TOTAL)).toBe(`${MISSING} / 79.6 GiB`);
  });

  it('formats the other units', () => {
    expect(formatPercent(45.4)).toBe('45%');
    expect(formatTemperature(54.6)).toBe('55 °C');
    expect(formatPower(312.4, 700)).toBe('312 / 700 W');
    expect(formatPower(312.4)).toBe('312 W');
    expect(formatRate(1.25 * GIB)).toBe('1.3 GiB/s');
    expect(formatMeasure(812.345, 'TFLOP/s')).toBe('812 TFLOP/s');
    expect(formatMeasure(3.14159, 'µs')).toBe('3.14 µs');
  });

  it('says how old data is', () => {
    expect(formatAge(3.7)).toBe('3 s');
    expect(formatAge(125)).toBe('2 min');
    expect(formatAge(7300)).toBe('2 h');
    expect(formatAge(-1)).toBe(MISSING);
    expect(formatDuration(0.4213)).toBe('0.42 s');
    expect(formatDuration(42.4)).toBe('42 s');
    expect(formatDuration(185)).toBe('3 min 5 s');
  });
});

describe('aggregate', () => {
  it('averages utilization and sums memory over the visible GPUs', () => {
    const agg = aggregate([
      makeGpu(0, {
        utilization: { gpu: 30, memory: 5 },
        memory: { total: 80 * GIB, used: 10 * GIB, reserved: 0, free: 70 * GIB }
      }),
      makeGpu(1, {
        utilization: { gpu: 60, memory: 5 },
        memory: { total: 80 * GIB, used: 30 * GIB, reserved: 0, free: 50 * GIB }
      })
    ]);
    expect(agg.utilization).toBe(45);
    expect(agg.used).toBe(40 * GIB);
    expect(agg.total).toBe(160 * GIB);
    expect(agg.memoryFraction).toBe(0.25);
    expect(statusBarText(agg)).toBe('GPU 45% · 40.0/160 GiB');
  });

  it('ignores GPUs that do not report a value instead of counting them as zero', () => {
    const agg = aggregate([
      makeGpu(0, { utilization: { gpu: null, memory: null } }),
      makeGpu(1, { utilization: { gpu: 80, memory: 1 } })
    ]);
    expect(agg.utilization).toBe(80);
  });

  it('counts only the listed MIG instances of a GPU in MIG mode', () => {
    const gpu = makeGpu(0, {
      utilization: { gpu: null, memory: null },
      memory: { total: 80 * GIB, used: 50 * GIB, reserved: 0, free: 30 * GIB },
      mig: {
        capable: true,
        enabled: true,
        pending: false,
        instances: [
          {
            uuid: 'MIG-1',
            name: 'NVIDIA H100 80GB HBM3 MIG 1g.10gb',
            profile: '1g.10gb',
            gpu_instance_id: 9,
            compute_instance_id: 0,
            memory: { total: 10 * GIB, used: 9.5 * GIB }
          }
        ]
      }
    });
    const agg = aggregate([gpu]);
    expect(agg.total).toBe(10 * GIB);
    expect(agg.used).toBe(9.5 * GIB);
    expect(agg.utilization).toBeNull();
    expect(statusBarText(agg)).toBe(`GPU ${MISSING} · 9.5/10 GiB`);
  });

  it('says nothing about memory when no GPU reports it', () => {
    const agg = aggregate([
      makeGpu(0, {
        memory: { total: null, used: null, reserved: null, free: null }
      })
    ]);
    expect(agg.memoryFraction).toBeNull();
    expect(statusBarText(agg)).toBe('GPU 0%');
  });
});
