/**
 * The browser's copy of the server-side history: one fixed-size ring of samples per GPU, filled
 * at once from `GET gpus/history` when the panel opens and then from the push stream. Values are
 * kept in typed arrays (NaN for "not reported"), so an update allocates nothing.
 */
import { IGpu, IGpus, IHistory, IHistoryGpu } from './tokens';

/** The charted channels of one GPU, in ring-column order. */
export enum Channel {
  Utilization = 0,
  MemoryUsed = 1,
  Temperature = 2,
  Power = 3,
  PcieTx = 4,
  PcieRx = 5
}

const CHANNELS = 6;

/** A ring buffer of timestamped samples with {@link CHANNELS} numeric channels. */
export class Ring {
  readonly time: Float64Array;
  readonly columns: Float64Array[];
  /** Physical index of the oldest sample. */
  start = 0;
  /** How many samples are held. */
  length = 0;

  constructor(readonly capacity: number) {
    this.time = new Float64Array(capacity);
    this.columns = [];
    for (let c = 0; c < CHANNELS; c++) {
      this.columns.push(new Float64Array(capacity));
    }
  }

  /** Physical index of the i-th oldest sample. */
  index(i: number): number {
    return (this.start + i) % this.capacity;
  }

  /** Time of the newest sample, or -Infinity when empty. */
  get lastTime(): number {
    return this.length === 0
      ? -Infinity
      : this.time[this.index(this.length - 1)];
  }

  /** Append a sample; the oldest one falls out when the ring is full. */
  push(time: number, values: ArrayLike<number>): void {
    let slot: number;
    if (this.length < this.capacity) {
      slot = this.index(this.length);
      this.length++;
    } else {
      slot = this.start;
      this.start = (this.start + 1) % this.capacity;
    }
    this.time[slot] = time;
    for (let c = 0; c < CHANNELS; c++) {
      this.columns[c][slot] = values[c];
    }
  }

  /** The newest value of a channel (NaN when empty). */
  last(channel: Channel): number {
    return this.length === 0
      ? NaN
      : this.columns[channel][this.index(this.length - 1)];
  }

  /** A copy with another capacity that keeps the newest samples. */
  resized(capacity: number): Ring {
    const ring = new Ring(capacity);
    const values = new Float64Array(CHANNELS);
    for (let i = Math.max(0, this.length - capacity); i < this.length; i++) {
      const p = this.index(i);
      for (let c = 0; c < CHANNELS; c++) {
        values[c] = this.columns[c][p];
      }
      ring.push(this.time[p], values);
    }
    return ring;
  }
}

const scratch = new Float64Array(CHANNELS);

function num(value: number | null | undefined): number {
  return typeof value === 'number' ? value : NaN;
}

function fill(gpu: IGpu | IHistoryGpu): Float64Array {
  scratch[Channel.Utilization] = num(gpu.utilization.gpu);
  scratch[Channel.MemoryUsed] = num(gpu.memory.used);
  scratch[Channel.Temperature] = num(gpu.temperature.gpu);
  scratch[Channel.Power] = num(gpu.power.usage);
  scratch[Channel.PcieTx] = num(gpu.pcie.tx);
  scratch[Channel.PcieRx] = num(gpu.pcie.rx);
  return scratch;
}

/** How many samples a ring keeps when the server keeps `seconds` at one per `interval`. */
export function capacityFor(seconds: number, interval: number): number {
  const n = Math.ceil(seconds / Math.max(interval, 0.001)) + 2;
  return Math.min(Math.max(n, 16), 100_000);
}

/** The latest snapshot and the per-GPU history rings. */
export class GpuStore {
  private _rings = new Map<string, Ring>();
  private _latest: IGpus | null = null;
  private _capacity: number;

  constructor(capacity = 602) {
    this._capacity = capacity;
  }

  /** The newest `GET gpus` document, or null before the first one. */
  get latest(): IGpus | null {
    return this._latest;
  }

  get capacity(): number {
    return this._capacity;
  }

  /** Unix time of the newest sample held, or null when nothing is held. */
  get lastTimestamp(): number | null {
    if (this._latest) {
      return this._latest.timestamp;
    }
    let last = -Infinity;
    this._rings.forEach(ring => {
      last = Math.max(last, ring.lastTime);
    });
    return Number.isFinite(last) ? last : null;
  }

  /** The history ring of a GPU (by uuid), if any sample of it was seen. */
  ring(uuid: string): Ring | undefined {
    return this._rings.get(uuid);
  }

  /** Change how many samples each ring keeps (keeps the newest). */
  setCapacity(capacity: number): void {
    if (capacity === this._capacity) {
      return;
    }
    this._capacity = capacity;
    this._rings.forEach((ring, uuid) => {
      this._rings.set(uuid, ring.resized(capacity));
    });
  }

  /** Merge a `GET gpus/history` answer; samples older than what is held are ignored. */
  applyHistory(history: IHistory): void {
    for (const sample of history.samples) {
      for (const gpu of sample.gpus) {
        this._append(gpu.uuid, sample.timestamp, gpu);
      }
    }
  }

  /**
   * Take a new snapshot as the latest and append it to the history.
   * Returns false (and changes nothing) when it is older than the latest one.
   */
  applySnapshot(snapshot: IGpus): boolean {
    if (this._latest && snapshot.timestamp < this._latest.timestamp) {
      return false;
    }
    this._latest = snapshot;
    for (const gpu of snapshot.gpus) {
      this._append(gpu.uuid, snapshot.timestamp, gpu);
    }
    return true;
  }

  /** Forget everything (e.g. the server restarted with other GPUs). */
  clear(): void {
    this._rings.clear();
    this._latest = null;
  }

  private _append(uuid: string, time: number, gpu: IGpu | IHistoryGpu): void {
    let ring = this._rings.get(uuid);
    if (!ring) {
      ring = new Ring(this._capacity);
      this._rings.set(uuid, ring);
    }
    if (time > ring.lastTime) {
      ring.push(time, fill(gpu));
    }
  }
}
