/**
 * The panel and the status bar item against a server with two simulated GPUs, served under a
 * JupyterHub-like base_url (/user/galata/).
 */
import {
  drawnColumns,
  gpuCards,
  metric,
  openFromIcon,
  panel,
  panelTab,
  runFromPalette,
  saveScreenshot,
  statusItem,
  widenPanel
} from './helpers';
import { expect, test } from './fixtures';

test.describe('GPU panel', () => {
  test('opens from its side bar icon and shows the simulated GPUs at once with their history', async ({
    page
  }) => {
    const gpus = await openFromIcon(page);
    const cards = gpuCards(gpus);
    await expect(cards).toHaveCount(2);
    await expect(cards.nth(0).getByRole('heading')).toHaveText(
      'GPU 0 · NVIDIA H100 80GB HBM3'
    );
    await expect(cards.nth(1).getByRole('heading')).toHaveText(
      'GPU 1 · NVIDIA H100 80GB HBM3'
    );
    await expect(cards.nth(0).getByTitle('CUDA compute capability')).toHaveText(
      'sm 9.0'
    );
    await expect(gpus.getByText('Simulated', { exact: true })).toBeVisible();
    // memory as nvidia-smi users know it: an H100's 81559 MiB is 79.6 GiB
    const memory = cards.nth(0).getByRole('meter', { name: 'Memory used' });
    await expect(memory).toHaveAttribute(
      'aria-valuetext',
      /^\d+\.\d\/79\.6 GiB \(\d+%\)$/
    );
    await expect(
      cards.nth(0).getByText(/^\d+\.\d\/79\.6 GiB \(\d+%\)$/)
    ).toBeVisible();
    await expect(
      metric(cards.nth(0), 'Temperature').getByText(/^\d+ °C$/)
    ).toBeVisible();
    await expect(
      metric(cards.nth(0), 'Power').getByText(/^\d+ \/ 700 W$/)
    ).toBeVisible();
    // The history came from the server at once: it holds samples from before this page loaded.
    const oldest = await page.evaluate(() => {
      const app = (window as any).jupyterapp;
      const gpuPanel = Array.from(app.shell.widgets('right') as any).find(
        (w: any) => w.id === 'gpu-devbox-panel'
      ) as any;
      const store = gpuPanel.connection.store;
      const ring = store.ring(store.latest.gpus[0].uuid);
      return { first: ring.time[ring.index(0)], samples: ring.length };
    });
    const loaded = await page.evaluate(() => performance.timeOrigin / 1000);
    expect(oldest.first).toBeLessThan(loaded - 1);
    expect(oldest.samples).toBeGreaterThan(4);
    // and the chart shows it: the utilization line spans many pixel columns
    const chart = cards
      .nth(0)
      .getByRole('img', { name: 'Utilization history' });
    expect(await drawnColumns(chart)).toBeGreaterThan(3);
  });

  test('opens from the command palette', async ({ page }) => {
    await expect(panel(page)).toBeHidden();
    await runFromPalette(page, 'Open GPU Panel');
    await expect(panel(page)).toBeVisible();
    await expect(gpuCards(panel(page))).toHaveCount(2);
  });

  test('values change over time', async ({ page }) => {
    const gpus = await openFromIcon(page);
    const card = gpuCards(gpus).first();
    const read = async () =>
      [
        await metric(card, 'Utilization').textContent(),
        await metric(card, 'Power').textContent(),
        await card
          .getByRole('img', { name: 'Utilization history' })
          .evaluate((c: HTMLCanvasElement) => c.toDataURL())
      ].join('|');
    const before = await read();
    await expect.poll(read, { timeout: 10_000 }).not.toBe(before);
  });

  test('the status bar item shows utilization and memory, updates, and opens the panel', async ({
    page,
    request,
    baseURL
  }) => {
    const item = statusItem(page);
    // two H100s: their 159.3 GiB by the rule of each card's total, whole from 100 on, one
    // decimal below (the used memory too: 99.5 or 101)
    const memory = '(\\d{1,2}\\.\\d|\\d{3})\\/159 GiB';
    await expect(
      item.getByText(new RegExp(`^GPU \\d+% · ${memory}$`))
    ).toBeVisible();
    await expect(item.getByText('sim', { exact: true })).toBeVisible();
    await expect(item).toHaveAccessibleName(
      new RegExp(`^GPU status: GPU \\d+% · ${memory} \\(simulated GPUs\\)$`)
    );
    expect(await item.getAttribute('title')).toContain(
      'GPU 0 NVIDIA H100 80GB HBM3'
    );
    // the built-in load may rest for a while: pin it (test control of the simulated backend)
    // to two values in turn and see each one arrive
    const load = (utilization: number | null) =>
      request.put(`${baseURL}/gpu-devbox/api/simulated/load`, {
        data: { utilization }
      });
    try {
      for (const utilization of [11, 77]) {
        expect((await load(utilization)).ok()).toBe(true);
        await expect(item).toHaveAccessibleName(
          new RegExp(`^GPU status: GPU ${utilization}% · `),
          { timeout: 10_000 }
        );
      }
    } finally {
      await load(null);
    }
    await expect(panel(page)).toBeHidden();
    await item.click();
    await expect(panel(page)).toBeVisible();
  });

  test.describe('streaming', () => {
    test.use({ autoGoto: false });

    test('streams only while the panel is shown or the status bar item is on', async ({
      page
    }) => {
      const opened: string[] = [];
      const closed: string[] = [];
      page.on('websocket', ws => {
        if (ws.url().includes('gpu-devbox/api/stream')) {
          opened.push(ws.url());
          ws.on('close', () => closed.push(ws.url()));
        }
      });
      await page.goto();
      await expect.poll(() => opened.length).toBe(1); // the status bar item streams from the start
      await openFromIcon(page);
      // the status bar item is on: the stream (opened at page load) keeps running
      await runFromPalette(page, 'Show GPU Status in the Status Bar');
      await expect(statusItem(page)).toBeHidden();
      // panel visible: still streaming
      await page.waitForTimeout(1000);
      expect(closed).toHaveLength(0);
      // hide the panel too: the stream must close
      await panelTab(page).click();
      await expect(panel(page)).toBeHidden();
      await expect
        .poll(() => closed.length, { timeout: 5000 })
        .toBeGreaterThan(0);
      const before = opened.length;
      await page.waitForTimeout(2500);
      expect(opened.length).toBe(before); // and it does not come back by itself
      // showing the panel again resumes it
      await openFromIcon(page);
      await expect
        .poll(() => opened.length, { timeout: 5000 })
        .toBeGreaterThan(before);
      await expect(gpuCards(panel(page))).toHaveCount(2);
      await runFromPalette(page, 'Show GPU Status in the Status Bar');
      await expect(statusItem(page)).toBeVisible();
    });
  });

  test.describe('screenshots', () => {
    test.use({ viewport: { width: 1280, height: 1000 } });

    test('the panel in the light and the dark theme', async ({ page }) => {
      await openFromIcon(page);
      await widenPanel(page);
      await expect(gpuCards(panel(page))).toHaveCount(2);
      await page.waitForTimeout(2500); // a few more points on the sparklines
      await saveScreenshot(panel(page), 'panel-light.png');
      await page.theme.setDarkTheme();
      await openFromIcon(page);
      await widenPanel(page);
      await page.waitForTimeout(1000);
      await saveScreenshot(panel(page), 'panel-dark.png');
      await saveScreenshot(
        page.getByRole('contentinfo', { name: 'Bottom Panel' }),
        'statusbar-dark.png'
      );
      await page.theme.setLightTheme();
    });
  });
});
