import { DisposableSet } from '@lumino/disposable';

import { ApiError } from '../api';
import {
  CullModel,
  cullWarning,
  formatIdle,
  formatStopTime,
  ICullApi
} from '../cull';
import { DEFAULT_SETTINGS } from '../settings';
import { statusItemContent } from '../statusbar';
import { ICull, IStatus } from '../tokens';
import { CullWarningBar, notifyCullWarnings } from '../widgets/cullWarning';
import { connectedWith } from './fakes';
import { makeGpu, makeGpus, makeStatus } from './fixtures';

let owned = new DisposableSet();

afterEach(() => {
  owned.dispose();
  owned = new DisposableSet();
});

/** Unix seconds of a local wall-clock time (the browser's zone). */
function local(hours: number, minutes: number, seconds = 0, day = 7): number {
  return new Date(2026, 11, day, hours, minutes, seconds).getTime() / 1000;
}

const NOW = local(14, 45);

function makeCull(overrides: Partial<ICull> = {}): ICull {
  return {
    gpu_idle_after: 7200,
    warn_before: 900,
    stops_at: local(16, 30),
    warning: true,
    keep_running: { used: 0, max: 2, until: null },
    ...overrides
  };
}

/** A server idle for `idle` seconds with a warning due. */
function warnedStatus(idle = 105 * 60, cull: Partial<ICull> = {}): IStatus {
  return makeStatus({
    gpu_busy_at: NOW - idle,
    gpu_idle_seconds: idle,
    gpu_memory_held: false,
    cull: makeCull(cull)
  });
}

class FakeCullApi implements ICullApi {
  status: IStatus = makeStatus();
  answer: () => Promise<ICull> = async () =>
    makeCull({
      warning: false,
      stops_at: NOW + 7200,
      keep_running: { used: 1, max: 2, until: NOW + 7200 }
    });
  calls: string[] = [];

  async getStatus(): Promise<IStatus> {
    this.calls.push('status');
    return this.status;
  }

  keepRunning(): Promise<ICull> {
    this.calls.push('keep-running');
    return this.answer();
  }
}

async function model(
  status: IStatus,
  clock: { now: number }
): Promise<{ model: CullModel; api: FakeCullApi }> {
  const { connection } = await connectedWith(
    status,
    makeGpus(1000, [makeGpu(0), makeGpu(1)])
  );
  owned.add(connection);
  const api = new FakeCullApi();
  api.status = status;
  const made = new CullModel({
    connection,
    api,
    pollInterval: 0,
    now: () => clock.now
  });
  owned.add(made);
  return { model: made, api };
}

describe('formatIdle', () => {
  it.each([
    [0, '0 s'],
    [59.9, '59 s'],
    [60, '1 min'],
    [45 * 60 + 30, '45 min'],
    [3600, '1 h'],
    [105 * 60, '1 h 45 min'],
    [26 * 3600 + 60, '26 h 1 min'],
    [-5, '0 s']
  ])('%s s reads %s', (seconds, text) => {
    expect(formatIdle(seconds)).toBe(text);
  });
});

describe('formatStopTime', () => {
  it('gives the local wall-clock time, with seconds when it is near', () => {
    expect(formatStopTime(local(16, 30), NOW * 1000)).toBe('16:30');
    expect(formatStopTime(local(9, 5), local(8, 0) * 1000)).toBe('09:05');
    expect(formatStopTime(local(14, 46, 5), NOW * 1000)).toBe('14:46:05');
  });

  it('names the day when it is not today', () => {
    const text = formatStopTime(local(1, 15, 0, 8), NOW * 1000);
    expect(text).toMatch(/^\S+ 01:15$/);
  });
});

describe('cullWarning', () => {
  it('says how long the GPU is idle and when the server stops', () => {
    const warning = cullWarning(warnedStatus(), 105 * 60, NOW * 1000)!;
    expect(warning.text).toBe(
      'GPU idle for 1 h 45 min — this server stops at 16:30 unless the GPU is used'
    );
    expect(warning.shortText).toBe('GPU idle · stops 16:30');
    expect(warning.keepRunningLeft).toBe(2);
    expect(warning.note).toBe(
      '"Keep running" holds the stop off for 2 h (2 of 2 left).'
    );
  });

  it('says when no Keep running is left', () => {
    const status = warnedStatus(105 * 60, {
      keep_running: { used: 2, max: 2, until: NOW - 10 }
    });
    const warning = cullWarning(status, 105 * 60, NOW * 1000)!;
    expect(warning.keepRunningLeft).toBe(0);
    expect(warning.note).toBe(
      '"Keep running" was used 2 of 2 times: use the GPU to keep this server running.'
    );
  });

  it('is null without a policy, before the warning, or without GPU', () => {
    expect(cullWarning(makeStatus(), 10, NOW * 1000)).toBeNull();
    expect(
      cullWarning(warnedStatus(60, { warning: false }), 60, NOW * 1000)
    ).toBeNull();
    expect(cullWarning(warnedStatus(), null, NOW * 1000)).toBeNull();
    expect(cullWarning(null, 10, NOW * 1000)).toBeNull();
  });
});

describe('CullModel', () => {
  it('grows the idle time from when the status arrived, whatever the browser clock says', async () => {
    // the browser's clock is an hour ahead of the server's: the idle time must not jump
    const clock = { now: (NOW + 3600) * 1000 };
    const { model: m } = await model(warnedStatus(100), clock);
    expect(m.idleSeconds).toBeCloseTo(100);
    clock.now += 30_000;
    expect(m.idleSeconds).toBeCloseTo(130);
    expect(m.warning!.text).toContain('GPU idle for 2 min');
  });

  it('announces the warning once when it starts and once when it ends', async () => {
    const clock = { now: NOW * 1000 };
    const { model: m } = await model(
      warnedStatus(60, { warning: false }),
      clock
    );
    const seen: boolean[] = [];
    m.warningChanged.connect((_, warned) => seen.push(warned));
    m.update(warnedStatus(6000));
    m.update(warnedStatus(6001));
    m.update(warnedStatus(0, { warning: false }));
    expect(seen).toEqual([true, false]);
  });

  it('"Keep running" takes the new policy state and ends the warning', async () => {
    const clock = { now: NOW * 1000 };
    const { model: m, api } = await model(warnedStatus(), clock);
    const seen: boolean[] = [];
    m.warningChanged.connect((_, warned) => seen.push(warned));
    await m.keepRunning();
    expect(api.calls).toEqual(['keep-running']);
    expect(m.status!.cull!.keep_running).toEqual({
      used: 1,
      max: 2,
      until: NOW + 7200
    });
    expect(m.warning).toBeNull();
    expect(m.error).toBe('');
    expect(seen).toEqual([false]);
  });

  it("keeps the server's refusal and reads the status again", async () => {
    const clock = { now: NOW * 1000 };
    const { model: m, api } = await model(warnedStatus(), clock);
    api.answer = async () => {
      throw new ApiError(
        409,
        "'Keep running' was used 2 of 2 times; use the GPU to keep this server running"
      );
    };
    await m.keepRunning();
    expect(api.calls).toEqual(['keep-running', 'status']);
    expect(m.error).toContain('was used 2 of 2 times');
    expect(m.pending).toBe(false);
  });
});

describe('CullModel polling', () => {
  async function polled(status: IStatus): Promise<FakeCullApi> {
    const { connection } = await connectedWith(
      status,
      makeGpus(1000, [makeGpu(0)])
    );
    owned.add(connection);
    const api = new FakeCullApi();
    api.status = status;
    const made = new CullModel({ connection, api, pollInterval: 5 });
    owned.add(made);
    await new Promise(resolve => setTimeout(resolve, 40));
    expect(api.calls).toEqual([]); // the stream runs: it brings every change
    connection.stop();
    await new Promise(resolve => setTimeout(resolve, 40));
    return api;
  }

  it('reads the status while nothing streams, for a server with a policy', async () => {
    const api = await polled(warnedStatus());
    expect(api.calls.length).toBeGreaterThan(1);
  });

  it('never polls a server known to have no policy', async () => {
    const api = await polled(makeStatus());
    expect(api.calls).toEqual([]);
  });
});

describe('CullWarningBar', () => {
  it('shows the warning with Keep running, and hides the button when none are left', async () => {
    const clock = { now: NOW * 1000 };
    const { model: m, api } = await model(warnedStatus(), clock);
    const bar = new CullWarningBar(m);
    owned.add(bar);
    expect(bar.node.hidden).toBe(false);
    expect(bar.node.getAttribute('role')).toBe('alert');
    expect(
      bar.node.querySelector('.jp-GpuDevbox-cull-text')!.textContent
    ).toMatch(/^GPU idle for 1 h 4\d min — this server stops at 16:30/);
    const button = bar.node.querySelector<HTMLButtonElement>(
      '.jp-GpuDevbox-keep-running'
    )!;
    expect(button.hidden).toBe(false);
    button.click();
    await Promise.resolve();
    expect(api.calls).toEqual(['keep-running']);

    m.update(
      warnedStatus(6000, { keep_running: { used: 2, max: 2, until: NOW } })
    );
    expect(button.hidden).toBe(true);
    expect(
      bar.node.querySelector('.jp-GpuDevbox-cull-note')!.textContent
    ).toContain('was used 2 of 2 times');

    m.update(warnedStatus(0, { warning: false }));
    expect(bar.node.hidden).toBe(true);
  });
});

describe('notifyCullWarnings', () => {
  it('raises one notification per warning and withdraws it when the warning ends', async () => {
    const clock = { now: NOW * 1000 };
    const { model: m } = await model(
      warnedStatus(60, { warning: false }),
      clock
    );
    const raised: { message: string; labels: string[] }[] = [];
    const dismissed: string[] = [];
    const stop = notifyCullWarnings(
      m,
      {
        warning: (message, options) => {
          raised.push({
            message,
            labels: options.actions.map(a => a.label)
          });
          return `n${raised.length}`;
        },
        dismiss: id => dismissed.push(id)
      },
      () => undefined
    );
    expect(raised).toEqual([]);
    m.update(warnedStatus(105 * 60));
    m.update(warnedStatus(105 * 60 + 1));
    expect(raised).toEqual([
      {
        message:
          'GPU idle for 1 h 45 min — this server stops at 16:30 unless the GPU is used',
        labels: ['Keep running', 'Open GPU panel']
      }
    ]);
    m.update(warnedStatus(0, { warning: false }));
    expect(dismissed).toEqual(['n1']);

    // the next warning has no Keep running left: its notification offers none
    m.update(
      warnedStatus(7000, { keep_running: { used: 2, max: 2, until: NOW } })
    );
    expect(raised[1].labels).toEqual(['Open GPU panel']);
    stop();
    expect(dismissed).toEqual(['n1', 'n2']);
  });
});

describe('statusItemContent with a warning', () => {
  it('shows the short form in the warning colour, the sentence as tooltip', async () => {
    const status = warnedStatus();
    const { connection } = await connectedWith(
      status,
      makeGpus(1000, [makeGpu(0), makeGpu(1)])
    );
    owned.add(connection);
    const warning = cullWarning(status, 105 * 60, NOW * 1000);
    const content = statusItemContent(connection, DEFAULT_SETTINGS, warning);
    expect(content.text).toBe('GPU idle · stops 16:30');
    expect(content.warning).toBe(true);
    expect(content.tooltip.split('\n')[0]).toBe(
      'GPU idle for 1 h 45 min — this server stops at 16:30 unless the GPU is used.'
    );
    expect(statusItemContent(connection, DEFAULT_SETTINGS).text).toMatch(
      /^GPU \d+%/
    );
  });
});
