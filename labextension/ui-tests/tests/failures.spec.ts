/**
 * Failure states the browser can be put into without breaking the server: a Jupyter server
 * without the gpu-devbox server extension (its routes answer 404), and a push stream that keeps
 * dropping (a proxy closing websockets).
 */
import type { WebSocketRoute } from '@playwright/test';

import { gpuCards, openFromIcon, panel, statusItem } from './helpers';
import { expect, test } from './fixtures';

test.describe('failure states', () => {
  test.use({ autoGoto: false });

  test('a server without the extension: the panel says what to install', async ({
    page
  }) => {
    await page.route(/gpu-devbox\/api\//, route =>
      route.fulfill({
        status: 404,
        contentType: 'application/json',
        body: '{"message": "Not Found"}'
      })
    );
    await page.goto();
    await openFromIcon(page);
    // an alert named by its headline, its level an icon with a name
    const banner = panel(page).getByRole('alert', {
      name: 'The gpu-devbox server extension is not running'
    });
    await expect(banner.getByRole('img', { name: 'Error' })).toBeVisible();
    await expect(banner).toContainText('pip install gpu-devbox');
    await expect(banner).toContainText('jupyter server extension list');
    await expect(statusItem(page)).toHaveText('GPU n/a', {
      useInnerText: true
    });
  });

  test('a dropping stream: retries with backoff, says how old the data is, recovers', async ({
    page
  }) => {
    let drop = false;
    let refused = 0;
    const live: WebSocketRoute[] = [];
    await page.routeWebSocket(/gpu-devbox\/api\/stream/, ws => {
      if (drop) {
        refused++;
        void ws.close({
          code: 1011,
          reason: 'test: the proxy refuses the stream'
        });
        return;
      }
      ws.connectToServer();
      live.push(ws);
    });
    await page.goto();
    const gpus = await openFromIcon(page);
    await expect(gpuCards(gpus)).toHaveCount(2);
    // the network breaks: the open stream drops and every new one is refused
    drop = true;
    for (const ws of live.splice(0)) {
      await ws.close({ code: 1006, reason: 'test: connection lost' });
    }
    const banner = panel(page).getByRole('alert', {
      name: 'Live updates interrupted'
    });
    await expect(banner.getByRole('img', { name: 'Warning' })).toBeVisible();
    await expect(banner).toContainText(/Retrying in \d+ s\./);
    await expect(banner).toContainText(/The data shown is \d+ s old\./);
    // the status bar item greys out and its tooltip says why
    await expect(statusItem(page)).toHaveAttribute(
      'title',
      /Live updates interrupted: these values may be out of date\./
    );
    // it keeps retrying with growing delays (1 s, 2 s, 4 s ...): at least two attempts in 4 s
    await expect
      .poll(() => refused, { timeout: 8000 })
      .toBeGreaterThanOrEqual(2);
    // the network heals: "Retry now" gets through at once
    drop = false;
    await banner.getByRole('button', { name: 'Retry now' }).click();
    await expect(banner).toBeHidden({ timeout: 10_000 });
    await expect(statusItem(page)).not.toHaveAttribute(
      'title',
      /Live updates interrupted/
    );
  });
});
