/**
 * Benchmark runs (`POST/GET/DELETE benchmarks`, `benchmark` stream events): the run being
 * shown, the history, and the formatting of measured figures against the datasheet.
 *
 * Progress arrives on the push stream; while a run is in progress and no event came for a
 * while (stream down, events lost), the model polls `GET benchmarks/{id}` instead.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError } from './api';
import { MISSING } from './format';
import {
  IBenchmarkDevice,
  IBenchmarkEvent,
  IBenchmarkList,
  IBenchmarkMeasurement,
  IBenchmarkProgress,
  IBenchmarkRun
} from './tokens';

/** Where a run is: `running`, then `succeeded`, `failed` or `cancelled`. */
export type RunState = IBenchmarkRun['state'];

/** The REST calls the model makes. */
export interface IBenchApi {
  startBenchmark(suite: string, devices: number[]): Promise<IBenchmarkRun>;
  getBenchmark(id: string): Promise<IBenchmarkRun>;
  cancelBenchmark(id: string): Promise<IBenchmarkRun>;
  listBenchmarks(): Promise<IBenchmarkList>;
}

const SCALES: Record<string, Array<[number, string]>> = {
  'FLOP/s': [
    [1e15, 'PFLOP/s'],
    [1e12, 'TFLOP/s'],
    [1e9, 'GFLOP/s'],
    [1e6, 'MFLOP/s'],
    [1, 'FLOP/s']
  ],
  'B/s': [
    [1e12, 'TB/s'],
    [1e9, 'GB/s'],
    [1e6, 'MB/s'],
    [1e3, 'kB/s'],
    [1, 'B/s']
  ],
  s: [
    [1, 's'],
    [1e-3, 'ms'],
    [1e-6, 'µs'],
    [1e-9, 'ns']
  ]
};

/**
 * A measured figure in the unit a datasheet uses: `812 TFLOP/s`, `3.02 TB/s` (decimal, as
 * datasheets quote bandwidth), `4.10 µs`.
 */
export function formatBenchValue(
  value: number | null | undefined,
  unit: string
): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return MISSING;
  }
  const scales = SCALES[unit];
  if (!scales) {
    return `${value.toPrecision(3)} ${unit}`;
  }
  const abs = Math.abs(value);
  const [factor, name] =
    scales.find(([f]) => abs >= f) ?? scales[scales.length - 1];
  const scaled = value / factor;
  const digits = Math.abs(scaled) >= 100 ? 0 : Math.abs(scaled) >= 10 ? 1 : 2;
  return `${scaled.toFixed(digits)} ${name}`;
}

/** `Step 3 of 12 · Matmul bf16 · GPU 0`. */
export function progressText(progress: IBenchmarkProgress): string {
  const parts: string[] = [];
  if (progress.total) {
    parts.push(
      `Step ${Math.min(progress.done + 1, progress.total)} of ${progress.total}`
    );
  } else {
    parts.push('Starting the worker…');
  }
  if (progress.step?.label) {
    parts.push(progress.step.label);
  }
  if (
    progress.step &&
    progress.step.device !== null &&
    progress.step.device !== undefined
  ) {
    parts.push(`GPU ${progress.step.device}`);
  }
  return parts.join(' · ');
}

/** What to send as `devices` for a choice of the device picker: 'cpu', 'all' or an index. */
export function devicesFor(choice: string, visible: number[]): number[] {
  if (choice === 'cpu') {
    return [];
  }
  if (choice === 'all') {
    return [...visible];
  }
  const index = Number(choice);
  return Number.isInteger(index) ? [index] : [];
}

/** The benchmark state the panel shows. */
export class BenchModel {
  constructor(
    private _api: IBenchApi,
    private _pollMs = 2000
  ) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The run on screen: the one in progress, the last one started here, or one picked from the history. */
  get current(): IBenchmarkRun | null {
    return this._current;
  }

  get list(): IBenchmarkList | null {
    return this._list;
  }

  /** Why the last request failed ('' when it worked). */
  get error(): string {
    return this._error;
  }

  /** The routes do not exist on this server (an older gpu-devbox). */
  get unavailable(): boolean {
    return this._unavailable;
  }

  get running(): boolean {
    return this._current?.state === 'running';
  }

  /** Load the history (and adopt a run in progress, e.g. started in another tab). */
  async refresh(): Promise<void> {
    try {
      const list = await this._api.listBenchmarks();
      this._list = list;
      this._unavailable = false;
      if (list.running) {
        this._setCurrent(list.running);
      } else if (!this._current && list.runs.length > 0) {
        this._current = list.runs[0];
      }
      this._error = '';
    } catch (error) {
      this._unavailable = error instanceof ApiError && error.isMissing;
      this._error = this._unavailable
        ? 'The server has no benchmark routes (404): gpu-devbox is missing or too old there.'
        : message(error);
    }
    this._changed.emit();
  }

  /** Start a run; a run already in progress (409) is adopted and shown instead. */
  async start(suite: string, devices: number[]): Promise<void> {
    if (this._starting || this.running) {
      return;
    }
    this._starting = true;
    this._error = '';
    this._changed.emit();
    try {
      this._setCurrent(await this._api.startBenchmark(suite, devices));
    } catch (error) {
      const busy =
        error instanceof ApiError && error.status === 409
          ? (error.body as { running_id?: string } | null)?.running_id
          : undefined;
      if (busy) {
        this._error =
          'A benchmark is already running on this server; showing it.';
        await this._fetch(busy);
      } else {
        this._error = message(error);
      }
    } finally {
      this._starting = false;
      this._changed.emit();
    }
  }

  /** Cancel the run in progress. */
  async cancel(): Promise<void> {
    const run = this._current;
    if (!run || run.state !== 'running') {
      return;
    }
    try {
      this._setCurrent(await this._api.cancelBenchmark(run.id));
    } catch (error) {
      // 409: it finished meanwhile; show how it ended
      this._error =
        error instanceof ApiError && error.status === 409 ? '' : message(error);
      await this._fetch(run.id);
    }
    void this.refresh();
  }

  /** Show a run from the history. */
  show(run: IBenchmarkRun): void {
    if (!this.running) {
      this._current = run;
      this._changed.emit();
    }
  }

  /** Apply a `benchmark` stream event. */
  handleEvent(event: IBenchmarkEvent): void {
    if (!event || typeof event.id !== 'string') {
      return;
    }
    this._lastEvent = Date.now();
    if (event.run) {
      this._setCurrent(event.run);
    } else if (this._current && this._current.id === event.id) {
      const run = {
        ...this._current,
        state: event.state,
        progress: event.progress
      };
      if (event.event === 'measurement' && event.measurement) {
        run.devices = withMeasurement(
          run.devices,
          event.device ?? null,
          event.measurement
        );
      }
      this._setCurrent(run);
    } else if (event.state === 'running') {
      void this._fetch(event.id); // a run started elsewhere (another tab, the CLI of this server)
    }
    if (event.event === 'finished') {
      void this.refresh();
    }
    this._changed.emit();
  }

  dispose(): void {
    this._stopPolling();
  }

  private async _fetch(id: string): Promise<void> {
    try {
      this._setCurrent(await this._api.getBenchmark(id));
    } catch (error) {
      this._error = message(error);
    }
    this._changed.emit();
  }

  private _setCurrent(run: IBenchmarkRun): void {
    const wasRunning = this.running;
    this._current = run;
    if (run.state === 'running') {
      this._startPolling();
    } else {
      this._stopPolling();
      if (wasRunning) {
        void this.refresh();
      }
    }
  }

  private _startPolling(): void {
    if (this._poll !== null) {
      return;
    }
    this._lastEvent = Date.now();
    this._poll = setInterval(() => {
      const run = this._current;
      if (!run || run.state !== 'running') {
        this._stopPolling();
      } else if (Date.now() - this._lastEvent >= this._pollMs) {
        void this._fetch(run.id);
      }
    }, this._pollMs);
  }

  private _stopPolling(): void {
    if (this._poll !== null) {
      clearInterval(this._poll);
      this._poll = null;
    }
  }

  private _current: IBenchmarkRun | null = null;
  private _list: IBenchmarkList | null = null;
  private _error = '';
  private _unavailable = false;
  private _starting = false;
  private _lastEvent = 0;
  private _poll: ReturnType<typeof setInterval> | null = null;
  private _changed = new Signal<this, void>(this);
}

function withMeasurement(
  devices: IBenchmarkDevice[],
  index: number | null,
  measurement: IBenchmarkMeasurement
): IBenchmarkDevice[] {
  const found = devices.findIndex(d => d.index === index);
  if (found < 0) {
    return [
      ...devices,
      {
        index,
        uuid: null,
        name: index === null ? 'CPU' : `GPU ${index}`,
        datasheet: { model: null, reason: null },
        measurements: [measurement]
      }
    ];
  }
  return devices.map((device, i) =>
    i === found
      ? {
          ...device,
          measurements: [
            ...device.measurements.filter(m => m.id !== measurement.id),
            measurement
          ]
        }
      : device
  );
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
