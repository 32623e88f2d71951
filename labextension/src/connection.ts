/**
 * The live link to the server extension: `GET status`, then `GET gpus/history` (everything the
 * server kept, or only what was missed since the last sample held), then the push stream.
 *
 * Any failure (the server unreachable, the route missing, the socket closed, the stream silent
 * for too long) ends in one place that classifies it and retries with exponential backoff and
 * jitter; a success resets the backoff. `stop()` closes the socket and cancels retries, so a
 * hidden panel with the status bar item off costs the server nothing.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError } from './api';
import { capacityFor, GpuStore } from './store';
import { IGpus, IHistory, IStatus, StreamMessage } from './tokens';

/** What the server said the last time it was asked. */
export type ServerState =
  'loading' | 'ok' | 'missing' | 'forbidden' | 'unreachable' | 'error';

/** The state of the push stream. */
export type LinkState = 'stopped' | 'connecting' | 'open' | 'waiting';

/** The part of a WebSocket the connection uses (a fake in tests). */
export interface ISocketLike {
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  close(code?: number, reason?: string): void;
}

/** The part of the REST client the connection uses. */
export interface IConnectionApi {
  getStatus(): Promise<IStatus>;
  getHistory(since?: number): Promise<IHistory>;
  streamUrl(interval: number): string;
}

/** Retry delays in milliseconds: `initial * factor^n`, at most `max`, ± `jitter` (a fraction). */
export interface IBackoffOptions {
  initial: number;
  max: number;
  factor: number;
  jitter: number;
}

export const DEFAULT_BACKOFF: IBackoffOptions = {
  initial: 1000,
  max: 30000,
  factor: 2,
  jitter: 0.2
};

/** Exponential backoff with jitter. */
export class Backoff {
  private _attempt = 0;

  constructor(
    readonly options: IBackoffOptions = DEFAULT_BACKOFF,
    private _random: () => number = Math.random
  ) {}

  /** How many retries were scheduled since the last reset. */
  get attempt(): number {
    return this._attempt;
  }

  /** The delay before the next retry. */
  next(): number {
    const { initial, max, factor, jitter } = this.options;
    const base = Math.min(max, initial * Math.pow(factor, this._attempt));
    this._attempt++;
    const spread = base * jitter * (2 * this._random() - 1);
    return Math.max(0, Math.round(Math.min(max, base + spread)));
  }

  reset(): void {
    this._attempt = 0;
  }
}

export interface IConnectionOptions {
  api: IConnectionApi;
  createSocket: (url: string) => ISocketLike;
  store: GpuStore;
  /** Seconds between `gpus` messages to ask the server for. */
  interval?: number;
  backoff?: IBackoffOptions;
  random?: () => number;
  /** The clock, in milliseconds (tests pass a fake one). */
  now?: () => number;
}

/** The connection to the gpu-devbox server extension. */
export class DevboxConnection implements IDisposable {
  constructor(options: IConnectionOptions) {
    this._api = options.api;
    this._createSocket = options.createSocket;
    this.store = options.store;
    this._interval = options.interval ?? 1;
    this._backoff = new Backoff(options.backoff, options.random);
    this._now = options.now ?? Date.now;
  }

  readonly store: GpuStore;

  /** Emitted whenever the server state, the link state or the status changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted after every `gpus` sample was stored. */
  get sampled(): ISignal<this, IGpus> {
    return this._sampled;
  }

  /** Every other stream message (`benchmark` progress and future feature events). */
  get event(): ISignal<this, StreamMessage> {
    return this._event;
  }

  get status(): IStatus | null {
    return this._status;
  }

  get serverState(): ServerState {
    return this._serverState;
  }

  /** The last error's message, for the panel ('' when all is well). */
  get error(): string {
    return this._error;
  }

  get link(): LinkState {
    return this._link;
  }

  /** When the next retry happens (ms since the epoch), or null. */
  get retryAt(): number | null {
    return this._retryAt;
  }

  /** When the newest sample arrived (ms since the epoch), or null. */
  get lastDataAt(): number | null {
    return this._lastDataAt;
  }

  /** The interval the server granted (it raises requests below its sampling interval). */
  get effectiveInterval(): number {
    return this._effectiveInterval ?? this._interval;
  }

  get running(): boolean {
    return this._running;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Start (or keep) streaming. */
  start(): void {
    if (this._running || this._disposed) {
      return;
    }
    this._running = true;
    void this._connect();
  }

  /** Stop streaming and cancel any retry. */
  stop(): void {
    if (!this._running) {
      return;
    }
    this._running = false;
    this._generation++;
    this._clearTimers();
    this._closeSocket();
    this._retryAt = null;
    this._setLink('stopped');
  }

  /** Retry at once instead of waiting for the backoff. */
  retryNow(): void {
    if (!this._running) {
      this.start();
      return;
    }
    this._backoff.reset();
    this._clearTimers();
    this._closeSocket();
    void this._connect();
  }

  /** Ask for another stream interval (seconds); reconnects when streaming. */
  setInterval(seconds: number): void {
    if (!(seconds > 0) || seconds === this._interval) {
      return;
    }
    this._interval = seconds;
    this._effectiveInterval = null;
    if (this._running) {
      this._clearTimers();
      this._closeSocket();
      void this._connect();
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this.stop();
    this._disposed = true;
    Signal.clearData(this);
  }

  private async _connect(): Promise<void> {
    const generation = ++this._generation;
    this._retryAt = null;
    this._setLink('connecting');
    try {
      const status = await this._api.getStatus();
      if (generation !== this._generation) {
        return;
      }
      this._status = status;
      this._serverState = 'ok';
      this._error = '';
      const since = this.store.lastTimestamp;
      const history = await this._api.getHistory(since ?? undefined);
      if (generation !== this._generation) {
        return;
      }
      this.store.setCapacity(
        capacityFor(history.history_seconds, history.interval)
      );
      this.store.applyHistory(history);
    } catch (error) {
      if (generation === this._generation) {
        this._fail(error);
      }
      return;
    }
    this._open(generation);
    this._changed.emit();
  }

  private _open(generation: number): void {
    let socket: ISocketLike;
    try {
      socket = this._createSocket(this._api.streamUrl(this._interval));
    } catch (error) {
      this._fail(error);
      return;
    }
    this._socket = socket;
    socket.onmessage = event => {
      if (generation === this._generation) {
        this._onMessage(event.data);
      }
    };
    socket.onclose = () => {
      if (generation === this._generation) {
        this._socket = null;
        this._scheduleRetry('the stream closed');
      }
    };
    socket.onerror = () => undefined; // a close event always follows
    this._armWatchdog();
  }

  private _onMessage(raw: unknown): void {
    let message: StreamMessage;
    try {
      message = JSON.parse(String(raw)) as StreamMessage;
    } catch {
      return; // not ours to judge: ignore what we cannot read
    }
    this._armWatchdog();
    switch (message.type) {
      case 'hello': {
        const hello = message.data;
        this._effectiveInterval = hello.interval;
        this._status = hello.status;
        this._backoff.reset();
        this._setLink('open');
        break;
      }
      case 'status':
        this._status = message.data;
        this._changed.emit();
        break;
      case 'gpus': {
        const snapshot = message.data;
        if (this.store.applySnapshot(snapshot)) {
          this._lastDataAt = this._now();
          this._sampled.emit(snapshot);
        }
        break;
      }
      default:
        this._event.emit(message);
    }
  }

  /** A stream that sends nothing for several intervals is treated as lost. */
  private _armWatchdog(): void {
    if (this._watchdog !== null) {
      clearTimeout(this._watchdog);
    }
    const ms = Math.max(10_000, 5000 * this.effectiveInterval);
    this._watchdog = setTimeout(() => {
      this._watchdog = null;
      this._closeSocket();
      this._scheduleRetry('no data from the stream');
    }, ms);
  }

  private _fail(error: unknown): void {
    if (error instanceof ApiError) {
      this._serverState = error.isMissing
        ? 'missing'
        : error.isForbidden
          ? 'forbidden'
          : error.isNetwork
            ? 'unreachable'
            : 'error';
      this._error = error.message;
    } else {
      this._serverState = 'error';
      this._error = String(error);
    }
    this._closeSocket();
    this._scheduleRetry(this._error);
  }

  private _scheduleRetry(why: string): void {
    if (!this._running) {
      return;
    }
    this._generation++;
    this._clearTimers();
    if (!this._error) {
      this._error = why;
    }
    const delay = this._backoff.next();
    this._retryAt = this._now() + delay;
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      void this._connect();
    }, delay);
    this._setLink('waiting', true);
  }

  private _closeSocket(): void {
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.onerror = null;
      try {
        socket.close(1000, 'gpu-devbox panel closed the stream');
      } catch {
        // already closed
      }
    }
  }

  private _clearTimers(): void {
    if (this._retryTimer !== null) {
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
    }
    if (this._watchdog !== null) {
      clearTimeout(this._watchdog);
      this._watchdog = null;
    }
  }

  private _setLink(link: LinkState, force = false): void {
    if (link === 'open') {
      this._error = '';
    }
    if (force || link !== this._link) {
      this._link = link;
      this._changed.emit();
    }
  }

  private _api: IConnectionApi;
  private _createSocket: (url: string) => ISocketLike;
  private _backoff: Backoff;
  private _now: () => number;
  private _interval: number;
  private _effectiveInterval: number | null = null;
  private _status: IStatus | null = null;
  private _serverState: ServerState = 'loading';
  private _error = '';
  private _link: LinkState = 'stopped';
  private _retryAt: number | null = null;
  private _lastDataAt: number | null = null;
  private _running = false;
  private _disposed = false;
  private _generation = 0;
  private _socket: ISocketLike | null = null;
  private _retryTimer: ReturnType<typeof setTimeout> | null = null;
  private _watchdog: ReturnType<typeof setTimeout> | null = null;
  private _changed = new Signal<this, void>(this);
  private _sampled = new Signal<this, IGpus>(this);
  private _event = new Signal<this, StreamMessage>(this);
}
