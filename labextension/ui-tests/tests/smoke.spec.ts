import { expect, test } from './fixtures';

test('smoke', async ({ page }) => {
  await page.sidebar.openTab('gpu-devbox-panel');
  const panel = page.locator('#gpu-devbox-panel');
  await expect(panel.locator('.jp-GpuDevbox-card')).toHaveCount(2);
  await page.waitForTimeout(3000);
  await panel.screenshot({ path: 'test-results/smoke-panel.png' });
  await page.screenshot({ path: 'test-results/smoke-page.png' });
});
