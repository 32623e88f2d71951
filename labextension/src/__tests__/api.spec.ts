import { ServerConnection } from '@jupyterlab/services';

import { ApiError, DevboxApi } from '../api';

function settingsWith(
  fetch: (input: RequestInfo, init?: RequestInit) => Promise<Response>,
  extra: Partial<ServerConnection.ISettings> = {}
): ServerConnection.ISettings {
  return ServerConnection.makeSettings({
    baseUrl: 'http://hub.example/user/alice/',
    wsUrl: 'ws://hub.example/user/alice/',
    fetch,
    token: '',
    appendToken: false,
    ...extra
  });
}

/** The URL without the cache-busting timestamp `ServerConnection.makeRequest` appends. */
function bare(url: string): string {
  return url.replace(/[?&]\d{10,}$/, '');
}

function respond(status: number, body: string): Promise<Response> {
  return Promise.resolve(
    new Response(body, {
      status,
      statusText: status === 404 ? 'Not Found' : ''
    })
  );
}

describe('DevboxApi', () => {
  it('builds every URL under the server base_url (JupyterHub prefix)', async () => {
    const urls: string[] = [];
    const api = new DevboxApi(
      settingsWith(async input => {
        urls.push(bare(typeof input === 'string' ? input : input.url));
        return respond(200, '{"samples": []}');
      })
    );
    await api.getHistory(1234.5);
    await api.getStatus();
    expect(urls[0]).toBe(
      'http://hub.example/user/alice/gpu-devbox/api/gpus/history?since=1234.500'
    );
    expect(urls[1]).toBe('http://hub.example/user/alice/gpu-devbox/api/status');
    expect(api.streamUrl(2)).toBe(
      'ws://hub.example/user/alice/gpu-devbox/api/stream?interval=2'
    );
  });

  it('appends the token to the websocket URL only when the settings say so', () => {
    const fetch = async () => respond(200, '{}');
    const withToken = new DevboxApi(
      settingsWith(fetch, { token: 'a b', appendToken: true })
    );
    expect(withToken.streamUrl(1)).toBe(
      'ws://hub.example/user/alice/gpu-devbox/api/stream?interval=1&token=a%20b'
    );
    const cookies = new DevboxApi(
      settingsWith(fetch, { token: 'secret', appendToken: false })
    );
    expect(cookies.streamUrl(1)).not.toContain('secret');
  });

  it('turns error answers into ApiError with the server message', async () => {
    const api = new DevboxApi(
      settingsWith(async () =>
        respond(400, '{"message": "since must be a number, not \'x\'"}')
      )
    );
    await expect(api.getHistory()).rejects.toMatchObject({
      status: 400,
      message: "since must be a number, not 'x'"
    });
  });

  it('presses Keep running with a POST, and keeps the 409 that says none are left', async () => {
    const calls: { url: string; method: string }[] = [];
    let status = 200;
    const api = new DevboxApi(
      settingsWith(async (input, init) => {
        calls.push({
          url: bare(typeof input === 'string' ? input : input.url),
          method:
            init?.method ?? (typeof input === 'string' ? 'GET' : input.method)
        });
        return status === 200
          ? respond(200, '{"stops_at": 1765130000, "warning": false}')
          : respond(
              409,
              '{"message": "\'Keep running\' was used 2 of 2 times"}'
            );
      })
    );
    await expect(api.keepRunning()).resolves.toMatchObject({
      stops_at: 1765130000
    });
    expect(calls).toEqual([
      {
        url: 'http://hub.example/user/alice/gpu-devbox/api/keep-running',
        method: 'POST'
      }
    ]);
    status = 409;
    await expect(api.keepRunning()).rejects.toMatchObject({
      status: 409,
      message: "'Keep running' was used 2 of 2 times"
    });
  });

  it('marks a missing route and an unreachable server', async () => {
    const missing = new DevboxApi(
      settingsWith(async () => respond(404, '<html>404</html>'))
    );
    const error = await missing.getStatus().catch(e => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error.isMissing).toBe(true);
    expect(error.message).toBe('404 Not Found');

    const offline = new DevboxApi(
      settingsWith(async () => {
        throw new TypeError('Failed to fetch');
      })
    );
    const lost = await offline.getStatus().catch(e => e);
    expect(lost.isNetwork).toBe(true);
    expect(lost.message).toContain('Failed to fetch');
  });

  it('sends benchmark requests as JSON with the right verbs', async () => {
    const calls: Array<[string, string, string]> = [];
    const api = new DevboxApi(
      settingsWith(async (input, init) => {
        const request = new Request(input, init);
        calls.push([request.method, bare(request.url), await request.text()]);
        return respond(202, '{"id": "run-1"}');
      })
    );
    await api.startBenchmark('quick', [0, 1]);
    await api.cancelBenchmark('run/1');
    expect(calls[0][0]).toBe('POST');
    expect(calls[0][1]).toBe(
      'http://hub.example/user/alice/gpu-devbox/api/benchmarks'
    );
    expect(JSON.parse(calls[0][2])).toEqual({
      suite: 'quick',
      devices: [0, 1]
    });
    expect(calls[1][0]).toBe('DELETE');
    expect(calls[1][1]).toBe(
      'http://hub.example/user/alice/gpu-devbox/api/benchmarks/run%2F1'
    );
  });
});
