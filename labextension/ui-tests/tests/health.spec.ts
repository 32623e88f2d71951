/** The Health section against the server's real doctor (simulated GPUs: the nvml check warns). */
import { expandSection, openFromIcon, panel, runFromPalette } from './helpers';
import { expect, test } from './fixtures';

test.describe('Health checks', () => {
  test('render grouped by status with details and remedies', async ({
    page
  }) => {
    await openFromIcon(page);
    const health = await expandSection(page, 'Health');
    // a check is a group named by its title, its status an icon with a name
    const nvml = health.getByRole('group', {
      name: 'NVML facts come from the simulated backend'
    });
    await expect(nvml.getByRole('img', { name: 'Warning' })).toBeVisible();
    await expect(nvml.getByText(/^Fix: /)).toHaveText(
      'Fix: Use the nvml backend to check real GPUs.'
    );
    await expect(health.getByRole('status')).toHaveText(
      /^1 warning · \d+ passed · \d+ skipped · facts gathered \d+ (s|min) ago$/
    );
    // warnings are open, passed checks folded away (a folded check is not shown, so not found)
    const warnings = health.getByRole('group', { name: 'Warnings (1)' });
    await expect(warnings.getByRole('group')).toHaveCount(1);
    const passed = health.getByRole('group', { name: /^Passed \(\d+\)$/ });
    await expect(passed).toBeVisible();
    await expect(passed.getByRole('group')).toHaveCount(0);
  });

  test('the refresh button and the palette command check again', async ({
    page
  }) => {
    await openFromIcon(page);
    const health = await expandSection(page, 'Health');
    await expect(health.getByRole('img', { name: 'Warning' })).toBeVisible();
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
      health.getByRole('group', {
        name: 'NVML facts come from the simulated backend'
      })
    ).toBeVisible();
  });
});
