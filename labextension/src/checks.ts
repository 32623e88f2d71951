/**
 * The doctor's checks (`GET checks`): loading state, last error, and grouping for display.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError } from './api';
import { ICheck, IChecksDocument } from './tokens';

/** The outcome of one check. */
export type CheckStatus = ICheck['status'];

/** Display order of the groups: what needs attention first. */
export const STATUS_ORDER: CheckStatus[] = ['fail', 'warn', 'pass', 'skip'];

export const STATUS_LABELS: Record<CheckStatus, string> = {
  fail: 'Failed',
  warn: 'Warnings',
  pass: 'Passed',
  skip: 'Skipped'
};

export interface ICheckGroup {
  status: CheckStatus;
  checks: ICheck[];
}

/** Group checks by status in {@link STATUS_ORDER}; machine-wide checks before per-environment ones. */
export function groupChecks(checks: readonly ICheck[]): ICheckGroup[] {
  const groups: ICheckGroup[] = [];
  for (const status of STATUS_ORDER) {
    const members = checks
      .filter(check => check.status === status)
      .sort((a, b) => (a.environment ?? '').localeCompare(b.environment ?? ''));
    if (members.length > 0) {
      groups.push({ status, checks: members });
    }
  }
  return groups;
}

/** `2 failed · 1 warning · 5 passed`. */
export function checksSummary(checks: readonly ICheck[]): string {
  const count = (status: CheckStatus): number =>
    checks.filter(check => check.status === status).length;
  const parts: string[] = [];
  const fail = count('fail');
  const warn = count('warn');
  const pass = count('pass');
  const skip = count('skip');
  if (fail) {
    parts.push(`${fail} failed`);
  }
  if (warn) {
    parts.push(`${warn} warning${warn > 1 ? 's' : ''}`);
  }
  if (pass) {
    parts.push(`${pass} passed`);
  }
  if (skip) {
    parts.push(`${skip} skipped`);
  }
  return parts.length ? parts.join(' · ') : 'No checks';
}

/** Accept the documented `{checks: [...]}` envelope (or a bare list) and drop malformed items. */
export function parseChecks(body: unknown): ICheck[] {
  const list = Array.isArray(body)
    ? body
    : body &&
        typeof body === 'object' &&
        Array.isArray((body as { checks?: unknown }).checks)
      ? (body as { checks: unknown[] }).checks
      : null;
  if (!list) {
    throw new Error('the server answered GET checks without a list of checks');
  }
  return list.filter(
    (item): item is ICheck =>
      !!item &&
      typeof item === 'object' &&
      typeof (item as ICheck).id === 'string' &&
      STATUS_ORDER.includes((item as ICheck).status)
  );
}

/** The checks the panel shows. */
export class ChecksModel {
  constructor(private _fetch: (refresh: boolean) => Promise<IChecksDocument>) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The last checks received, or null before the first answer. */
  get checks(): ICheck[] | null {
    return this._checks;
  }

  get loading(): boolean {
    return this._loading;
  }

  /** What went wrong on the last load ('' when it worked). */
  get error(): string {
    return this._error;
  }

  /** The route does not exist on this server (an older gpu-devbox). */
  get unavailable(): boolean {
    return this._unavailable;
  }

  /** When the last answer arrived (ms since the epoch). */
  get loadedAt(): number | null {
    return this._loadedAt;
  }

  /** When the server gathered the facts behind the checks (ms since the epoch), if it said. */
  get gatheredAt(): number | null {
    return this._gatheredAt;
  }

  /** Load the checks; `refresh` makes the server gather the facts again. */
  async load(refresh = false): Promise<void> {
    if (this._loading) {
      return this._pending ?? Promise.resolve();
    }
    this._loading = true;
    this._changed.emit();
    this._pending = (async () => {
      try {
        const body = await this._fetch(refresh);
        this._checks = parseChecks(body);
        this._gatheredAt = gatheredAt(body);
        this._error = '';
        this._unavailable = false;
        this._loadedAt = Date.now();
      } catch (error) {
        this._unavailable = error instanceof ApiError && error.isMissing;
        this._error = this._unavailable
          ? 'The server has no checks route (404): gpu-devbox is missing or too old there.'
          : error instanceof Error
            ? error.message
            : String(error);
      } finally {
        this._loading = false;
        this._pending = null;
        this._changed.emit();
      }
    })();
    return this._pending;
  }

  private _checks: ICheck[] | null = null;
  private _loading = false;
  private _error = '';
  private _unavailable = false;
  private _loadedAt: number | null = null;
  private _gatheredAt: number | null = null;
  private _pending: Promise<void> | null = null;
  private _changed = new Signal<this, void>(this);
}

function gatheredAt(body: IChecksDocument): number | null {
  const raw: unknown = body?.gathered_at;
  if (typeof raw !== 'string') {
    return null;
  }
  const ms = Date.parse(raw);
  return Number.isNaN(ms) ? null : ms;
}
