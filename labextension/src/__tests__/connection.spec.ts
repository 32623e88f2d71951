import { ApiError } from '../api';
import { Backoff, DevboxConnection } from '../connection';
import { GpuStore } from '../store';
import { IStatus } from '../tokens';
import { FakeApi, FakeSocket, settle } from './fakes';
import { makeGpu, makeGpus, makeStatus } from './fixtures';

function last(): FakeSocket {
  return FakeSocket.all[FakeSocket.all.length - 1];
}

describe('Backoff', () => {
  it('doubles up to the maximum and starts again after a reset', () => {
    const backoff = new Backoff({
      initial: 1000,
      max: 8000,
      factor: 2,
      jitter: 0
    });
    expect([1, 2, 3, 4, 5].map(() => backoff.next())).toEqual([
      1000, 2000, 4000, 8000, 8000
    ]);
    backoff.reset();
    expect(backoff.next()).toBe(1000);
  });

  it('spreads retries by the jitter fraction', () => {
    const low = new Backoff(
      { initial: 1000, max: 8000, factor: 2, jitter: 0.2 },
      () => 0
    );
    const high = new Backoff(
      { initial: 1000, max: 8000, factor: 2, jitter: 0.2 },
      () => 0.999999
    );
    expect(low.next()).toBe(800);
    expect(high.next()).toBe(1200);
  });
});

describe('DevboxConnection', () => {
  let api: FakeApi;
  let store: GpuStore;
  let clock: number;
  let connection: DevboxConnection;

  beforeEach(() => {
    jest.useFakeTimers();
    FakeSocket.all = [];
    api = new FakeApi();
    store = new GpuStore();
    clock = 1_000_000;
    connection = new DevboxConnection({
      api,
      store,
      createSocket: url => new FakeSocket(url),
      backoff: { initial: 1000, max: 30000, factor: 2, jitter: 0 },
      now: () => clock
    });
  });

  afterEach(() => {
    connection.dispose();
    jest.useRealTimers();
  });

  it('loads status and the whole history before opening the stream', async () => {
    connection.start();
    await settle();
    expect(api.calls).toEqual(['status', 'history:all']);
    expect(store.ring(makeGpu(0).uuid)!.length).toBe(5);
    expect(last().url).toContain('/user/x/gpu-devbox/api/stream?interval=1');
    expect(connection.link).toBe('connecting');

    last().hello();
    expect(connection.link).toBe('open');
    expect(connection.serverState).toBe('ok');

    const seen: number[] = [];
    connection.sampled.connect((_, s) => seen.push(s.timestamp));
    last().send('gpus', makeGpus(1001, [makeGpu(0), makeGpu(1)]));
    expect(seen).toEqual([1001]);
    expect(connection.lastDataAt).toBe(clock);
    expect(store.latest!.gpus).toHaveLength(2);
  });

  it('retries with growing delays while the stream keeps failing, then resets', async () => {
    connection.start();
    await settle();
    last().drop();
    expect(connection.link).toBe('waiting');
    expect(connection.retryAt).toBe(clock + 1000);

    jest.advanceTimersByTime(999);
    expect(FakeSocket.all).toHaveLength(1);
    jest.advanceTimersByTime(1);
    await settle();
    expect(FakeSocket.all).toHaveLength(2);

    last().drop(); // second failure in a row: twice the delay
    expect(connection.retryAt).toBe(clock + 2000);
    jest.advanceTimersByTime(2000);
    await settle();
    expect(FakeSocket.all).toHaveLength(3);

    last().hello(); // a working stream resets the backoff
    last().drop();
    expect(connection.retryAt).toBe(clock + 1000);
  });

  it('fetches only the missed history when it reconnects', async () => {
    connection.start();
    await settle();
    last().hello();
    last().send('gpus', makeGpus(1010, [makeGpu(0)]));
    last().drop();
    jest.advanceTimersByTime(1000);
    await settle();
    expect(api.calls).toEqual([
      'status',
      'history:all',
      'status',
      'history:1010'
    ]);
  });

  it('tells a missing server extension (404) from a lost network and forbidden access', async () => {
    api.status = async () => {
      throw new ApiError(404, 'Not Found');
    };
    connection.start();
    await settle();
    expect(connection.serverState).toBe('missing');
    expect(connection.link).toBe('waiting');
    expect(FakeSocket.all).toHaveLength(0);

    api.status = async () => {
      throw new ApiError(403, 'Forbidden');
    };
    jest.advanceTimersByTime(1000);
    await settle();
    expect(connection.serverState).toBe('forbidden');

    api.status = async () => {
      throw new ApiError(
        0,
        'cannot reach the Jupyter server: TypeError: Failed to fetch'
      );
    };
    jest.advanceTimersByTime(2000);
    await settle();
    expect(connection.serverState).toBe('unreachable');
    expect(connection.error).toContain('cannot reach');

    api.status = async () => makeStatus();
    jest.advanceTimersByTime(4000);
    await settle();
    expect(connection.serverState).toBe('ok');
    expect(connection.error).toBe('');
    expect(FakeSocket.all).toHaveLength(1);
  });

  it('treats a silent stream as lost', async () => {
    connection.start();
    await settle();
    last().hello(makeStatus(), 1);
    jest.advanceTimersByTime(9999);
    expect(connection.link).toBe('open');
    jest.advanceTimersByTime(1);
    expect(connection.link).toBe('waiting');
    expect(FakeSocket.all[0].closed).toBe(true);
  });

  it('stops streaming and cancels retries when stopped', async () => {
    connection.start();
    await settle();
    last().hello();
    connection.stop();
    expect(last().closed).toBe(true);
    expect(connection.link).toBe('stopped');

    // a failure after stop schedules nothing
    api.status = async () => {
      throw new ApiError(0, 'offline');
    };
    jest.advanceTimersByTime(60_000);
    await settle();
    expect(api.calls).toEqual(['status', 'history:all']);

    // a stale socket's late events are ignored
    FakeSocket.all[0].send('gpus', makeGpus(5000, [makeGpu(0)]));
    expect(store.latest).toBeNull();
  });

  it('ignores a stop/start race: answers of an abandoned attempt open nothing', async () => {
    let resolve: (s: IStatus) => void = () => undefined;
    api.status = () => new Promise(r => (resolve = r));
    connection.start();
    connection.stop();
    resolve(makeStatus());
    await settle();
    expect(FakeSocket.all).toHaveLength(0);
  });

  it('reconnects with the new interval when the refresh setting changes', async () => {
    connection.start();
    await settle();
    last().hello(makeStatus(), 1);
    connection.setInterval(5);
    await settle();
    expect(FakeSocket.all[0].closed).toBe(true);
    expect(last().url).toContain('interval=5');
  });

  it('passes feature events on and keeps status changes', async () => {
    connection.start();
    await settle();
    const events: string[] = [];
    connection.event.connect((_, m) => events.push(m.type));
    last().hello();
    last().send('benchmark', { id: 'x' });
    last().send('status', makeStatus({ simulated: true }));
    last().onmessage?.({ data: 'not json' });
    expect(events).toEqual(['benchmark']);
    expect(connection.status!.simulated).toBe(true);
  });

  it('retries when the history request fails after the status worked', async () => {
    api.history = async () => {
      throw new ApiError(500, 'boom');
    };
    connection.start();
    await settle();
    expect(connection.serverState).toBe('error');
    expect(connection.link).toBe('waiting');
    expect(FakeSocket.all).toHaveLength(0);
  });

  it('retries at once on request', async () => {
    api.status = async () => {
      throw new ApiError(0, 'offline');
    };
    connection.start();
    await settle();
    jest.advanceTimersByTime(1000);
    await settle();
    expect(connection.retryAt).toBe(clock + 2000);
    api.status = async () => makeStatus();
    connection.retryNow();
    await settle();
    expect(FakeSocket.all).toHaveLength(1);
  });
});
