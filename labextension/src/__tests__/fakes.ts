/** Hand-driven fakes of the REST client and the websocket. */
import { DevboxConnection, IConnectionApi, ISocketLike } from '../connection';
import { GpuStore } from '../store';
import { IGpus, IHistory, IStatus } from '../tokens';
import { makeHistory, makeStatus } from './fixtures';

/** A socket the test drives by hand. */
export class FakeSocket implements ISocketLike {
  static all: FakeSocket[] = [];
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  closed = false;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  close(): void {
    this.closed = true;
  }

  send(type: string, data: unknown): void {
    this.onmessage?.({ data: JSON.stringify({ type, data }) });
  }

  hello(status: IStatus = makeStatus(), interval = 1): void {
    this.send('hello', { interval, floor: 1, status });
  }

  drop(): void {
    this.onclose?.({ code: 1006 });
  }
}

/** An API whose answers the test sets; it records the calls. */
export class FakeApi implements IConnectionApi {
  status: () => Promise<IStatus> = async () => makeStatus();
  history: (since?: number) => Promise<IHistory> = async () =>
    makeHistory(1000, 5);
  calls: string[] = [];

  getStatus(): Promise<IStatus> {
    this.calls.push('status');
    return this.status();
  }

  getHistory(since?: number): Promise<IHistory> {
    this.calls.push(`history:${since ?? 'all'}`);
    return this.history(since);
  }

  streamUrl(interval: number): string {
    return `ws://host/user/x/gpu-devbox/api/stream?interval=${interval}`;
  }
}

/** Let pending promise callbacks run (the connection awaits two requests before opening). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await Promise.resolve();
  }
}

/**
 * A connection that went through status, history and hello, then received `snapshot`
 * (the timers it arms are real: call `dispose()` at the end of the test).
 */
export async function connectedWith(
  status: IStatus,
  snapshot: IGpus | null,
  history?: IHistory
): Promise<{ connection: DevboxConnection; socket: FakeSocket }> {
  const api = new FakeApi();
  api.status = async () => status;
  api.history = async () =>
    history ?? { interval: 1, history_seconds: 600, samples: [] };
  let socket: FakeSocket | null = null;
  const connection = new DevboxConnection({
    api,
    store: new GpuStore(),
    createSocket: url => (socket = new FakeSocket(url))
  });
  connection.start();
  await settle();
  socket!.hello(status);
  if (snapshot) {
    socket!.send('gpus', snapshot);
  }
  return { connection, socket: socket! };
}
