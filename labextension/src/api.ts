/**
 * The REST client of the gpu-devbox server extension.
 *
 * Every URL is built from the server settings' `baseUrl`/`wsUrl`, so the panel works under a
 * JupyterHub prefix (`/user/<name>/`) or any other `base_url`; requests go through
 * `ServerConnection.makeRequest`, which adds the token or the XSRF header.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  IBenchmarkList,
  IBenchmarkRun,
  IChecksDocument,
  ICull,
  IHistory,
  IKernelsDocument,
  IStatus
} from './tokens';

/** Where the extension's routes live, relative to the server's base URL. */
export const API_PATH = 'gpu-devbox/api';

/**
 * A failed API call. `status` is the HTTP status, or 0 when the server could not be reached.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown = null
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The server answered, but has no such route: the server extension is not running. */
  get isMissing(): boolean {
    return this.status === 404;
  }

  /** The user may not use this route. */
  get isForbidden(): boolean {
    return this.status === 403;
  }

  /** The server could not be reached at all (network, proxy, server stopped). */
  get isNetwork(): boolean {
    return this.status === 0;
  }
}

/** The typed client. */
export class DevboxApi {
  constructor(readonly settings: ServerConnection.ISettings) {}

  /** The absolute URL of a route, e.g. `url('gpus/history')`. */
  url(path: string): string {
    return URLExt.join(this.settings.baseUrl, API_PATH, path);
  }

  /**
   * The websocket URL of the push stream, with the token appended when the server settings
   * say so (the same rule `@jupyterlab/services` uses for kernel websockets).
   */
  streamUrl(interval: number): string {
    let url =
      URLExt.join(this.settings.wsUrl, API_PATH, 'stream') +
      `?interval=${encodeURIComponent(String(interval))}`;
    const token = this.settings.token;
    if (this.settings.appendToken && token) {
      url += `&token=${encodeURIComponent(token)}`;
    }
    return url;
  }

  /** Call a route and parse its JSON answer; throws {@link ApiError} on any failure. */
  async request<T>(path: string, init: RequestInit = {}): Promise<T> {
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(
        this.url(path),
        init,
        this.settings
      );
    } catch (error) {
      throw new ApiError(
        0,
        `cannot reach the Jupyter server: ${String(error)}`
      );
    }
    const text = await response.text();
    let body: unknown = null;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (!response.ok) {
      throw new ApiError(response.status, errorMessage(response, body), body);
    }
    return body as T;
  }

  getStatus(): Promise<IStatus> {
    return this.request<IStatus>('status');
  }

  /** The server's samples after `since` (Unix seconds), or all it keeps. */
  getHistory(since?: number): Promise<IHistory> {
    const query =
      since === undefined
        ? ''
        : `?since=${encodeURIComponent(since.toFixed(3))}`;
    return this.request<IHistory>(`gpus/history${query}`);
  }

  /** This server's kernels and terminals with the GPU memory each holds. */
  getKernels(): Promise<IKernelsDocument> {
    return this.request<IKernelsDocument>('kernels');
  }

  /** The doctor's checks; `refresh` regathers the facts (slow: it imports frameworks). */
  getChecks(refresh = false): Promise<IChecksDocument> {
    return this.request<IChecksDocument>(
      refresh ? 'checks?refresh=1' : 'checks'
    );
  }

  /** Start a benchmark run; resolves with the run as it starts (it holds the run's id). */
  startBenchmark(suite: string, devices: number[]): Promise<IBenchmarkRun> {
    return this.request<IBenchmarkRun>('benchmarks', {
      method: 'POST',
      body: JSON.stringify({ suite, devices })
    });
  }

  /** One run, finished or not. */
  getBenchmark(id: string): Promise<IBenchmarkRun> {
    return this.request<IBenchmarkRun>(`benchmarks/${encodeURIComponent(id)}`);
  }

  /** Cancel a run; resolves with the run as it ends. */
  cancelBenchmark(id: string): Promise<IBenchmarkRun> {
    return this.request<IBenchmarkRun>(`benchmarks/${encodeURIComponent(id)}`, {
      method: 'DELETE'
    });
  }

  /**
   * Hold off the idle stop for one more `gpu_idle_after` ("Keep running"); resolves with the
   * new `cull` object. 409 when none are left, 404 when no idle policy applies.
   */
  keepRunning(): Promise<ICull> {
    return this.request<ICull>('keep-running', { method: 'POST' });
  }

  /** Whether runs are allowed, the suites, the run in progress and the history. */
  listBenchmarks(): Promise<IBenchmarkList> {
    return this.request<IBenchmarkList>('benchmarks');
  }
}

function errorMessage(response: Response, body: unknown): string {
  if (body && typeof body === 'object' && 'message' in body) {
    const message = (body as { message: unknown }).message;
    if (typeof message === 'string' && message) {
      return message;
    }
  }
  return `${response.status} ${response.statusText || 'error'}`.trim();
}
