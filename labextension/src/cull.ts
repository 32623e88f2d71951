/**
 * The idle-stop warning: when the server's idle policy (`cull` in `GET status`) says this server
 * is about to be stopped because its GPU is unused, the user is told when, and may press "Keep
 * running" a limited number of times.
 *
 * Everything comes from the server's own idle clock: `cull.warning` and `cull.stops_at` are the
 * server's; the idle time grows on the client from the `gpu_idle_seconds` the server sent and the
 * time it arrived (the server does not resend the status every tick), so a browser whose clock is
 * off still shows the right duration. The stop time is shown in the browser's local time.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError } from './api';
import { DevboxConnection } from './connection';
import { ICull, IStatus } from './tokens';

/** What the warning says, for the panel, the status bar item and the notification. */
export interface ICullWarning {
  /** Seconds the GPU has been idle. */
  idleSeconds: number;
  /** When the server stops unless the GPU is used (Unix seconds). */
  stopsAt: number;
  /** `GPU idle for 1 h 45 min — this server stops at 16:30 unless the GPU is used`. */
  text: string;
  /** The status bar's form: `GPU idle · stops 16:30`. */
  shortText: string;
  /** "Keep running" presses left (0: the button is gone). */
  keepRunningLeft: number;
  /** What "Keep running" does, or that none are left. */
  note: string;
}

/** An idle time: `40 s`, `12 min`, `2 h`, `1 h 45 min`. */
export function formatIdle(seconds: number): string {
  const s = Math.max(0, Math.floor(Number.isFinite(seconds) ? seconds : 0));
  if (s < 60) {
    return `${s} s`;
  }
  const minutes = Math.floor(s / 60);
  if (minutes < 60) {
    return `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest === 0 ? `${hours} h` : `${hours} h ${rest} min`;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * A Unix time as the browser's local wall-clock time, `16:30`, with the day in front when it is
 * not today (`Tue 16:30`); seconds too when it is less than two minutes away (`16:30:05`).
 */
export function formatStopTime(unixSeconds: number, nowMs: number): string {
  const at = new Date(unixSeconds * 1000);
  const now = new Date(nowMs);
  let time = `${pad(at.getHours())}:${pad(at.getMinutes())}`;
  if (unixSeconds * 1000 - nowMs < 120_000) {
    time += `:${pad(at.getSeconds())}`;
  }
  if (at.toDateString() !== now.toDateString()) {
    const day = at.toLocaleDateString(undefined, { weekday: 'short' });
    return `${day} ${time}`;
  }
  return time;
}

/** How long a Keep running holds the stop off: `2 h`, `90 s`. */
function formatPeriod(seconds: number): string {
  return formatIdle(seconds);
}

/**
 * The warning for a status, or null when there is none (no policy, no GPU, not yet time).
 * `idleSeconds` is the idle time now (see {@link CullModel.idleSeconds}).
 */
export function cullWarning(
  status: IStatus | null,
  idleSeconds: number | null,
  nowMs: number
): ICullWarning | null {
  const cull: ICull | null | undefined = status?.cull;
  if (!cull || !cull.warning || idleSeconds === null) {
    return null;
  }
  const stop = formatStopTime(cull.stops_at, nowMs);
  const keep = cull.keep_running;
  const left = Math.max(0, keep.max - keep.used);
  let note: string;
  if (left > 0) {
    note =
      `"Keep running" holds the stop off for ${formatPeriod(cull.gpu_idle_after)} ` +
      `(${left} of ${keep.max} left).`;
  } else if (keep.max > 0) {
    note = `"Keep running" was used ${keep.used} of ${keep.max} times: use the GPU to keep this server running.`;
  } else {
    note = 'Use the GPU to keep this server running.';
  }
  return {
    idleSeconds,
    stopsAt: cull.stops_at,
    text: `GPU idle for ${formatIdle(idleSeconds)} — this server stops at ${stop} unless the GPU is used`,
    shortText: `GPU idle · stops ${stop}`,
    keepRunningLeft: left,
    note
  };
}

/** The REST calls the model makes. */
export interface ICullApi {
  getStatus(): Promise<IStatus>;
  keepRunning(): Promise<ICull>;
}

export interface ICullModelOptions {
  connection: DevboxConnection;
  api: ICullApi;
  /** Milliseconds between `GET status` polls while the live stream is off (0: never). */
  pollInterval?: number;
  /** The clock, in milliseconds (tests pass a fake one). */
  now?: () => number;
}

/**
 * The warning's state: the newest status (from the live stream, or polled once a minute while
 * nothing streams and the server has an idle policy, so the warning reaches a user whose panel
 * and status bar item are off), and the "Keep running" action.
 */
export class CullModel implements IDisposable {
  constructor(options: ICullModelOptions) {
    this._connection = options.connection;
    this._api = options.api;
    this._now = options.now ?? Date.now;
    this._connection.changed.connect(this._fromConnection, this);
    this._fromConnection();
    const poll = options.pollInterval ?? 60_000;
    if (poll > 0) {
      this._poll = setInterval(() => void this._pollStatus(), poll);
    }
  }

  /** Emitted when the status, the warning or the action's state changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted with true when the warning starts, false when it ends. */
  get warningChanged(): ISignal<this, boolean> {
    return this._warningChanged;
  }

  get status(): IStatus | null {
    return this._status;
  }

  /** The GPU idle time now, from the server's clock; null without GPU. */
  get idleSeconds(): number | null {
    const idle = this._status?.gpu_idle_seconds;
    if (typeof idle !== 'number') {
      return null;
    }
    return idle + Math.max(0, this._now() - this._receivedAt) / 1000;
  }

  /** The warning now, or null. */
  get warning(): ICullWarning | null {
    return cullWarning(this._status, this.idleSeconds, this._now());
  }

  /** Whether the server says the user is warned now. */
  get warned(): boolean {
    return !!this._status?.cull?.warning;
  }

  /** A "Keep running" request is in flight. */
  get pending(): boolean {
    return this._pending;
  }

  /** Why the last "Keep running" failed ('' when it did not). */
  get error(): string {
    return this._error;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Take a status document (from the stream, a poll, or a test). */
  update(status: IStatus): void {
    if (status === this._status) {
      return;
    }
    const before = this.warned;
    this._status = status;
    this._receivedAt = this._now();
    this._changed.emit();
    this._emitWarning(before);
  }

  /**
   * Press "Keep running": `POST keep-running`. Resolves when done; a refusal (none left, no
   * policy) or a failure is kept in {@link error}, and the status is read again.
   */
  async keepRunning(): Promise<void> {
    if (this._pending) {
      return;
    }
    this._pending = true;
    this._error = '';
    this._changed.emit();
    try {
      const cull = await this._api.keepRunning();
      if (this._status) {
        const before = this.warned;
        // the idle time is the same; only the policy's state moved on
        this._status = { ...this._status, cull };
        this._emitWarning(before);
      }
    } catch (error) {
      this._error =
        error instanceof ApiError
          ? error.message
          : `"Keep running" failed: ${String(error)}`;
      await this._pollStatus(true);
    } finally {
      this._pending = false;
      this._changed.emit();
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    if (this._poll !== null) {
      clearInterval(this._poll);
      this._poll = null;
    }
    Signal.clearData(this);
  }

  private _fromConnection(): void {
    const status = this._connection.status;
    if (status) {
      this.update(status);
    }
  }

  private async _pollStatus(always = false): Promise<void> {
    if (!always && !this._pollWanted) {
      return;
    }
    try {
      const status = await this._api.getStatus();
      if (!this._disposed) {
        this.update(status);
      }
    } catch {
      // the connection's banner says what is wrong with the server
    }
  }

  /**
   * Poll only while nothing streams, and only for a server that has an idle policy or whose
   * status is not known yet: the policy comes with the server's start, so a server known to have
   * none never gets one.
   */
  private get _pollWanted(): boolean {
    return (
      !this._connection.running &&
      (this._status === null || this._status.cull !== null)
    );
  }

  private _emitWarning(before: boolean): void {
    const after = this.warned;
    if (after !== before) {
      this._warningChanged.emit(after);
    }
  }

  private _connection: DevboxConnection;
  private _api: ICullApi;
  private _now: () => number;
  private _status: IStatus | null = null;
  private _receivedAt = 0;
  private _pending = false;
  private _error = '';
  private _disposed = false;
  private _poll: ReturnType<typeof setInterval> | null = null;
  private _changed = new Signal<this, void>(this);
  private _warningChanged = new Signal<this, boolean>(this);
}
