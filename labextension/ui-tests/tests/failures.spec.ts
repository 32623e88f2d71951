/**
 * Failure states the browser can be put into without breaking the server: a Jupyter server
 * without the gpu-devbox server extension (its routes answer 404), and a push stream that keeps
 * dropping (a proxy closing websockets).
 */
import type { WebSocketRoute } from '@playwright/test';

import { openFromIcon, panel } from './helpers';
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
    const banner = panel(page).locator('.jp-GpuDevbox-banner');
    await expect(banner).toHaveAttribute('data-level', 'error');
    await expect(banner).toContainText(
      'The gpu-devbox server extension is not running'
    );
    await expect(banner).toContainText('pip install gpu-devbox');
    await expect(banner).toContainText('jupyter server extension list');
    await expect(page.locator('.jp-GpuDevbox-status-text')).toHaveText(
      'GPU n/a'
    );
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
    await expect(gpus.locator('.jp-GpuDevbox-card')).toHaveCount(2);
    // the network breaks: the open stream drops and every new one is refused
    drop = true;
    for (const ws of live.splice(0)) {
      await ws.close({ code: 1006, reason: 'test: connection lost' });
    }
    const banner = panel(page).locator('.jp-GpuDevbox-banner');
    await expect(banner).toContainText('Live updates interrupted');
    await expect(banner).toContainText(/Retrying in \d+ s\./);
    await expect(banner).toContainText(/The data shown is \d+ s old\./);
    await expect(page.locator('.jp-GpuDevbox-status')).toHaveClass(
      /jp-mod-stale/
    );
    // it keeps retrying with growing delays (1 s, 2 s, 4 s ...): at least two attempts in 4 s
    await expect
      .poll(() => refused, { timeout: 8000 })
      .toBeGreaterThanOrEqual(2);
    // the network heals: "Retry now" gets through at once
    drop = false;
    await banner.getByRole('button', { name: 'Retry now' }).click();
    await expect(banner).toBeHidden({ timeout: 10_000 });
    await expect(page.locator('.jp-GpuDevbox-status')).not.toHaveClass(
      /jp-mod-stale/
    );
  });
});
