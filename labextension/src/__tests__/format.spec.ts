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
import cases from '../../../tests/fixtures/memory_format_cases.json';
import { GIB, H100_TOTAL, makeGpu } from './fixtures';

/** The cases the CLI's tests read too (tests/test_cli_format.py): one rule on both sides. */
const CASES = cases as unknown as {
  bytes: Array<[number | null, string]>;
  rates: Array<[number | null, string]>;
  memory_pairs: Array<[number | null, number | null, string]>;
};

/** A case's expected text with the panel's mark for a missing value. */
function expected(text: string): string {
  return text.split('{missing}').join(MISSING);
}

describe('memory amounts: the rule shared with the CLI', () => {
  it.each(CASES.bytes)('%p bytes are %p', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(expected(text));
  });

  it.each(CASES.rates)('%p bytes per second are %p', (rate, text) => {
    expect(formatRate(rate)).toBe(expected(text));
  });

  it.each(CASES.memory_pairs)('%p used of %p is %p', (used, total, text) => {
    expect(formatMemoryPair(used, total)).toBe(expected(text));
  });
});

describe('formatting', () => {
  it('writes an H100 as nvidia-smi users know it: 81559 MiB is 79.6 GiB', () => {
    expect(formatBytes(H100_TOTAL)).toBe('79.6 GiB');
    expect(formatMemoryPair(12.34 * GIB, H100_TOTAL)).toBe('12.3/79.6 GiB');
  });

  it('shows a dash for values the GPU does not report', () => {
    expect(formatBytes(null)).toBe(MISSING);
    expect(formatPercent(null)).toBe(MISSING);
    expect(formatTemperature(undefined)).toBe(MISSING);
    expect(formatPower(null, 700)).toBe(MISSING);
    expect(formatRate(NaN)).toBe(MISSING);
    expect(formatMeasure(null, 'TFLOP/s')).toBe(MISSING);
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
    // two H100s: the sum is rounded by the same rule as each card's total
    expect(statusBarText(aggregate([makeGpu(0), makeGpu(1)]))).toBe(
      'GPU 0% · 0.0/159 GiB'
    );
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
    expect(statusBarText(agg)).toBe(`GPU ${MISSING} · 9.5/10.0 GiB`);
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
