/**
 * The idle-stop warning against the server's own idle clock: the UI-test server runs with an
 * idle policy of seconds (jupyter_server_test_config.py), and the simulated GPUs' load is pinned
 * through the test control `PUT gpu-devbox/api/simulated/load`.
 */
import {
  openFromIcon,
  saveScreenshot,
  statusItem,
  widenPanel
} from './helpers';
import { expect, test } from './fixtures';

const SENTENCE =
  /GPU idle for \d+ s — this server stops at \d\d:\d\d:\d\d unless the GPU is used/;

test.describe('GPU idle warning', () => {
  test.afterEach(async ({ request, baseURL }) => {
    // back to the built-in pattern, which keeps the GPUs busy enough for the other tests
    await request.put(`${baseURL}/gpu-devbox/api/simulated/load`, {
      data: { utilization: null }
    });
  });

  test('warns before the stop, Keep running pushes it out, and using the GPU clears it', async ({
    page,
    request,
    baseURL
  }) => {
    test.setTimeout(180_000);
    const load = (utilization: number) =>
      request.put(`${baseURL}/gpu-devbox/api/simulated/load`, {
        data: { utilization }
      });
    const cull = async () => {
      const answer = await request.get(`${baseURL}/gpu-devbox/api/status`);
      expect(answer.ok()).toBe(true);
      return (await answer.json()).cull;
    };
    expect((await load(0)).ok()).toBe(true);

    const panel = await openFromIcon(page);
    await widenPanel(page);
    const warning = panel
      .getByRole('alert')
      .filter({ hasText: 'this server stops at' });
    // warned 25 s into the idle spell (30 s policy, warned 5 s before)
    await expect(warning).toBeVisible({ timeout: 60_000 });
    await expect(warning).toContainText(SENTENCE);
    await expect(warning).toContainText(
      '"Keep running" holds the stop off for 30 s (1 of 1 left).'
    );
    // the status bar's short form, and one notification with the same sentence
    await expect(statusItem(page)).toHaveAccessibleName(
      /^GPU status: GPU idle · stops \d\d:\d\d:\d\d/
    );
    const toast = page
      .locator('.Toastify__toast')
      .filter({ hasText: 'this server stops at' });
    await expect(toast).toHaveCount(1);
    await expect(
      toast.getByRole('button', { name: 'Keep running' })
    ).toBeVisible();
    await saveScreenshot(panel, 'cull-warning.png');

    const before = await cull();
    expect(before.warning).toBe(true);
    await warning.getByRole('button', { name: 'Keep running' }).click();
    await expect(warning).toBeHidden();
    await expect(toast).toHaveCount(0); // withdrawn with the warning
    const after = await cull();
    expect(after.keep_running.used).toBe(1);
    expect(after.keep_running.max).toBe(1);
    expect(after.stops_at).toBeGreaterThan(before.stops_at + 15);
    expect(after.warning).toBe(false);

    // still idle: warned again later, now with a later stop and no Keep running left
    await expect(warning).toBeVisible({ timeout: 60_000 });
    await expect(warning).toContainText(SENTENCE);
    expect((await cull()).stops_at).toBe(after.stops_at);
    await expect(warning).toContainText(
      '"Keep running" was used 1 of 1 times: use the GPU to keep this server running.'
    );
    await expect(
      warning.getByRole('button', { name: 'Keep running' })
    ).toHaveCount(0);

    // the GPU is used: the warning is gone, and the status bar shows the figures again
    expect((await load(80)).ok()).toBe(true);
    await expect(warning).toBeHidden({ timeout: 10_000 });
    await expect(statusItem(page)).toHaveAccessibleName(
      /^GPU status: GPU \d+%/
    );
    expect((await cull()).keep_running.used).toBe(0);
  });
});
