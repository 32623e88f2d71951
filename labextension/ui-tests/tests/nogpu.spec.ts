/**
 * A server with the real NVML backend on a machine without an NVIDIA GPU: the panel must show
 * NVML's reason and remedy (library_not_found), not an empty panel.
 */
import {
  expandSection,
  openFromIcon,
  saveScreenshot,
  widenPanel
} from './helpers';
import { expect, test } from './fixtures';

test('no GPU: the panel shows why and what to do', async ({ page }) => {
  const gpus = await openFromIcon(page);
  const notice = gpus.locator('.jp-GpuDevbox-nogpu');
  await expect(notice).toBeVisible();
  await expect(notice.locator('.jp-GpuDevbox-notice-title')).toHaveText(
    'No GPU: NVML is not usable'
  );
  await expect(notice.locator('.jp-GpuDevbox-reason')).toHaveText(
    /^NVML library not found: libnvidia-ml\.so\.1/
  );
  await expect(notice.locator('.jp-GpuDevbox-remedy')).toHaveText(
    /^What to do: Start the container with GPU access/
  );
  await expect(notice).toContainText('reason: library_not_found');
  await expect(gpus.locator('.jp-GpuDevbox-card')).toHaveCount(0);
  await expect(gpus.locator('.jp-GpuDevbox-badge')).toBeHidden();
  const item = page.locator('.jp-GpuDevbox-status');
  await expect(item.locator('.jp-GpuDevbox-status-text')).toHaveText('No GPU');
  await expect(item).toHaveAttribute('title', /NVML library not found/);
  // the doctor agrees, with its own remedy
  const health = await expandSection(page, 'Health');
  const nvml = health.locator('.jp-GpuDevbox-check[data-check="nvml"]');
  await expect(nvml).toHaveAttribute('data-status', 'fail');
  await expect(nvml.locator('.jp-GpuDevbox-remedy')).toHaveText(/^Fix: /);
  await widenPanel(page);
  await saveScreenshot(gpus, 'panel-no-gpu.png');
});
