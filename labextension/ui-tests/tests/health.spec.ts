/** The Health section against the server's real doctor (simulated GPUs: the nvml check warns). */
import { expandSection, openFromIcon, panel, runFromPalette } from './helpers';
import { expect, test } from './fixtures';

test.describe('Health checks', () => {
  test('render grouped by status with details and remedies', async ({
    page
  }) => {
    await openFromIcon(page);
    const health = await expandSection(page, 'Health');
    const nvml = health.locator('.jp-GpuDevbox-check[data-check="nvml"]');
    await expect(nvml).toHaveAttribute('data-status', 'warn');
    await expect(nvml.locator('.jp-GpuDevbox-check-title')).toHaveText(
      'NVML facts come from the simulated backend'
    );
    await expect(nvml.locator('.jp-GpuDevbox-remedy')).toHaveText(
      'Fix: Use the nvml backend to check real GPUs.'
    );
    await expect(health.locator('.jp-GpuDevbox-summary')).toHaveText(
      /^1 warning · \d+ passed · \d+ skipped · facts gathered \d+ (s|min) ago$/
    );
    // warnings are open, passed checks folded away
    await expect(health.locator('details[data-status="warn"]')).toHaveAttribute(
      'open',
      ''
    );
    await expect(
      health.locator('details[data-status="pass"]')
    ).not.toHaveAttribute('open', '');
  });

  test('the refresh button and the palette command check again', async ({
    page
  }) => {
    await openFromIcon(page);
    const health = await expandSection(page, 'Health');
    await expect(health.locator('.jp-GpuDevbox-check').first()).toBeVisible();
    const refreshed = page.waitForResponse(
      r =>
        r.url().includes('gpu-devbox/api/checks') &&
        r.url().includes('refresh=1')
    );
    // the section's toolbar sits in its accordion title
    await panel(page)
      .getByTitle(/^Check again/)
      .click();
    expect((await refreshed).status()).toBe(200);

    const again = page.waitForResponse(
      r =>
        r.url().includes('gpu-devbox/api/checks') &&
        r.url().includes('refresh=1')
    );
    await runFromPalette(page, 'Run GPU Health Checks');
    expect((await again).status()).toBe(200);
    await expect(
      health.locator('.jp-GpuDevbox-check[data-check="nvml"]')
    ).toBeVisible();
  });
});
