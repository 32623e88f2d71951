import { ApiError } from '../api';
import {
  BenchModel,
  devicesFor,
  formatBenchValue,
  IBenchApi,
  progressText
} from '../bench';
import {
  IBenchmarkList,
  IBenchmarkMeasurement,
  IBenchmarkRun
} from '../tokens';
import { BenchSection } from '../widgets/benchSection';
import { connectedWith } from './fakes';
import { makeGpu, makeGpus, makeStatus } from './fixtures';

function measurement(
  overrides: Partial<IBenchmarkMeasurement> = {}
): IBenchmarkMeasurement {
  return {
    id: 'matmul_bf16',
    kind: 'matmul',
    label: 'matmul bf16',
    unit: 'FLOP/s',
    status: 'ok',
    reason: null,
    value: 7.9e14,
    spread: { min: 7.8e14, q1: 7.85e14, q3: 7.95e14, max: 8e14 },
    peak: 9.89e14,
    percent_of_peak: 79.88,
    expected: 7.5e14,
    flag: null,
    ...overrides
  };
}

function run(overrides: Partial<IBenchmarkRun> = {}): IBenchmarkRun {
  return {
    id: 'r1',
    suite: 'quick',
    state: 'running',
    created: 1_790_000_000,
    started: 1_790_000_000,
    finished: null,
    duration: 1.5,
    request: { suite: 'quick', devices: [0], sizes: {}, backend: 'torch' },
    timeout: 60,
    progress: { done: 0, total: 4, fraction: 0, step: null },
    error: null,
    environment: {
      backend: 'torch',
      kind: 'gpu',
      versions: { torch: '2.9.0' },
      driver_version: '580'
    },
    devices: [
      {
        index: 0,
        uuid: 'GPU-0',
        name: 'NVIDIA H100 80GB HBM3',
        datasheet: { model: 'H100 SXM5 80GB', reason: null },
        measurements: []
      }
    ],
    flagged: 0,
    ...overrides
  };
}

/** A benchmark API whose answers the test sets. */
class FakeBenchApi implements IBenchApi {
  started: Array<[string, number[]]> = [];
  start: () => Promise<IBenchmarkRun> = async () => run();
  get: (id: string) => Promise<IBenchmarkRun> = async id => run({ id });
  cancel: () => Promise<IBenchmarkRun> = async () =>
    run({ state: 'cancelled' });
  list: () => Promise<IBenchmarkList> = async () => ({
    enabled: true,
    suites: {
      quick: { description: 'q', timeout: 60 },
      full: { description: 'f', timeout: 600 }
    },
    running: null,
    runs: [],
    skipped_lines: 0
  });

  startBenchmark(suite: string, devices: number[]): Promise<IBenchmarkRun> {
    this.started.push([suite, devices]);
    return this.start();
  }
  getBenchmark(id: string): Promise<IBenchmarkRun> {
    return this.get(id);
  }
  cancelBenchmark(): Promise<IBenchmarkRun> {
    return this.cancel();
  }
  listBenchmarks(): Promise<IBenchmarkList> {
    return this.list();
  }
}

describe('benchmark formatting', () => {
  it('uses datasheet units', () => {
    expect(formatBenchValue(7.9e14, 'FLOP/s')).toBe('790 TFLOP/s');
    expect(formatBenchValue(2.578e10, 'FLOP/s')).toBe('25.8 GFLOP/s');
    expect(formatBenchValue(3.02e12, 'B/s')).toBe('3.02 TB/s');
    expect(formatBenchValue(9.4e9, 'B/s')).toBe('9.40 GB/s');
    expect(formatBenchValue(4.1e-6, 's')).toBe('4.10 µs');
    expect(formatBenchValue(null, 's')).toBe('–');
  });

  it('describes progress', () => {
    expect(
      progressText({ done: 0, total: null, fraction: 0, step: null })
    ).toBe('Starting the worker…');
    expect(
      progressText({
        done: 2,
        total: 12,
        fraction: 2 / 12,
        step: { id: 'matmul_bf16', label: 'matmul bf16', device: 0 }
      })
    ).toBe('Step 3 of 12 · matmul bf16 · GPU 0');
  });

  it('turns the device choice into the request', () => {
    expect(devicesFor('cpu', [0, 1])).toEqual([]);
    expect(devicesFor('all', [0, 1])).toEqual([0, 1]);
    expect(devicesFor('1', [0, 1])).toEqual([1]);
  });
});

describe('BenchModel', () => {
  let api: FakeBenchApi;
  let model: BenchModel;

  beforeEach(() => {
    jest.useFakeTimers();
    api = new FakeBenchApi();
    model = new BenchModel(api, 2000);
  });

  afterEach(() => {
    model.dispose();
    jest.useRealTimers();
  });

  it('follows a run through its stream events to the end', async () => {
    await model.start('quick', [0]);
    expect(api.started).toEqual([['quick', [0]]]);
    expect(model.running).toBe(true);

    model.handleEvent({
      id: 'r1',
      event: 'step',
      state: 'running',
      progress: {
        done: 0,
        total: 4,
        fraction: 0,
        step: { id: 'matmul_bf16', label: 'matmul bf16', device: 0 }
      }
    });
    expect(model.current!.progress.step!.label).toBe('matmul bf16');

    model.handleEvent({
      id: 'r1',
      event: 'measurement',
      state: 'running',
      progress: { done: 1, total: 4, fraction: 0.25, step: null },
      device: 0,
      measurement: measurement()
    });
    expect(model.current!.devices[0].measurements.map(m => m.id)).toEqual([
      'matmul_bf16'
    ]);

    const done = run({
      state: 'succeeded',
      finished: 1_790_000_003,
      duration: 3
    });
    model.handleEvent({
      id: 'r1',
      event: 'finished',
      state: 'succeeded',
      progress: done.progress,
      run: done
    });
    expect(model.running).toBe(false);
    expect(model.current!.state).toBe('succeeded');
  });

  it('polls the run when no event arrives (stream down)', async () => {
    const fetched: string[] = [];
    api.get = async id => {
      fetched.push(id);
      return run({
        id,
        progress: { done: 2, total: 4, fraction: 0.5, step: null }
      });
    };
    await model.start('quick', [0]);
    jest.advanceTimersByTime(2000);
    await Promise.resolve();
    expect(fetched).toEqual(['r1']);
    expect(model.current!.progress.done).toBe(2);
  });

  it('adopts the run already in progress when the server says busy (409)', async () => {
    api.start = async () => {
      throw new ApiError(409, 'a benchmark is running', {
        message: 'a benchmark is running',
        reason: 'busy',
        running_id: 'other'
      });
    };
    await model.start('full', []);
    expect(model.current!.id).toBe('other');
    expect(model.error).toContain('already running');
  });

  it('shows why the server refused a run', async () => {
    api.start = async () => {
      throw new ApiError(400, 'GPU 7 is not visible to this server');
    };
    await model.start('quick', [7]);
    expect(model.current).toBeNull();
    expect(model.error).toBe('GPU 7 is not visible to this server');
  });

  it('cancels the run in progress', async () => {
    await model.start('quick', [0]);
    await model.cancel();
    expect(model.current!.state).toBe('cancelled');
    expect(model.running).toBe(false);
  });

  it('knows a server without the benchmark routes', async () => {
    api.list = async () => {
      throw new ApiError(404, 'Not Found');
    };
    await model.refresh();
    expect(model.unavailable).toBe(true);
  });
});

describe('BenchSection', () => {
  it('shows measured against peak with a percent bar, and flags a slow figure', async () => {
    jest.useRealTimers();
    const { connection } = await connectedWith(
      makeStatus(),
      makeGpus(1, [makeGpu(0), makeGpu(1)])
    );
    const api = new FakeBenchApi();
    const finished = run({
      state: 'succeeded',
      devices: [
        {
          index: 0,
          uuid: 'GPU-0',
          name: 'NVIDIA H100 80GB HBM3',
          datasheet: { model: 'H100 SXM5 80GB', reason: null },
          measurements: [
            measurement(),
            measurement({
              id: 'memory_copy',
              kind: 'memory_bandwidth',
              label: 'memory copy',
              unit: 'B/s',
              value: 1.2e12,
              peak: 3.35e12,
              percent_of_peak: 35.8,
              expected: 2.9e12,
              flag: 'below_expected'
            }),
            measurement({
              id: 'matmul_fp8',
              label: 'matmul fp8',
              status: 'unsupported',
              reason: 'torch has no fp8 matmul here',
              value: null
            })
          ]
        }
      ]
    });
    api.start = async () => finished;
    const model = new BenchModel(api);
    const section = new BenchSection(model, connection);
    const device = section.node.querySelector(
      'select[name="device"]'
    ) as HTMLSelectElement;
    // its visible label names it
    expect(device.labels).toHaveLength(1);
    expect(device.labels[0].firstChild!.textContent).toBe('Device');
    expect(Array.from(device.options).map(o => o.value)).toEqual([
      '0',
      '1',
      'all',
      'cpu'
    ]);
    // labels short enough for a side bar; the full name in the tooltip
    expect(Array.from(device.options).map(o => o.text)).toEqual([
      'GPU 0 · H100 80GB HBM3',
      'GPU 1 · H100 80GB HBM3',
      'All GPUs (one by one)',
      'CPU (NumPy)'
    ]);
    expect(device.title).toMatch(/^GPU 0 · NVIDIA H100 80GB HBM3 · GPU-/);
    device.value = '1';
    device.dispatchEvent(new Event('change'));
    expect(device.title).toMatch(/^GPU 1 · NVIDIA H100 80GB HBM3 · GPU-/);
    await section.run('quick');
    expect(api.started).toEqual([['quick', [1]]]);

    const bf16 = section.node.querySelector(
      '[data-measurement="matmul_bf16"]'
    )!;
    expect(bf16.querySelector('.jp-GpuDevbox-measure-value')!.textContent).toBe(
      '790 TFLOP/s'
    );
    expect(bf16.querySelector('.jp-GpuDevbox-measure-peak')!.textContent).toBe(
      '80% of 989 TFLOP/s'
    );
    expect(
      (bf16.querySelector('.jp-GpuDevbox-bar-fill') as HTMLElement).style.width
    ).toBe('79.9%');
    const copy = section.node.querySelector(
      '[data-measurement="memory_copy"]'
    )!;
    expect(copy.getAttribute('data-flag')).toBe('below_expected');
    expect(
      section.node.querySelector('[data-measurement="matmul_fp8"]')!.textContent
    ).toContain('not measured: torch has no fp8 matmul here');
    const state = section.node.querySelector('[role="status"]')!;
    expect(state.textContent).toBe('Finished');
    section.dispose();
    model.dispose();
    connection.dispose();
  });

  it('offers only the CPU when the GPUs are simulated', async () => {
    const { connection } = await connectedWith(
      makeStatus({ simulated: true }),
      makeGpus(1, [makeGpu(0)], true)
    );
    const model = new BenchModel(new FakeBenchApi());
    const section = new BenchSection(model, connection);
    const device = section.node.querySelector(
      'select[name="device"]'
    ) as HTMLSelectElement;
    expect(Array.from(device.options).map(o => o.value)).toEqual(['cpu']);
    expect(section.node.textContent).toContain('The GPUs are simulated');
    // a new user: no runs yet, and the history says so
    await model.refresh();
    expect(
      section.node.querySelector('.jp-GpuDevbox-history > summary')!.textContent
    ).toBe('History (0 runs)');
    expect(
      section.node.querySelector('.jp-GpuDevbox-history')!.textContent
    ).toContain('No runs recorded yet.');
    section.dispose();
    model.dispose();
    connection.dispose();
  });
});
