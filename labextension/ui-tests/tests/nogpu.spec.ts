/**
 * A server with the real NVML backend on a machine without an NVIDIA GPU: the panel must show
 * NVML's reason and remedy (library_not_found), not an empty panel.
 */
import {
  expandSection,
  gpuCards,
  openFromIcon,
  saveScreenshot,
  section,
  statusItem,
  widenPanel
} from './helpers';
import { expect, test } from './fixtures';

test('no GPU: the panel shows why and what to do', async ({ page }) => {
  const root = await openFromIcon(page);
  const gpus = section(page, 'GPUs');
  // the notice is a status named by its headline
  const notice = gpus.getByRole('status', {
    name: 'No GPU: NVML is not usable'
  });
  await expect(notice).toBeVisible();
  await expect(
    notice.getByText(/^NVML library not found: libnvidia-ml\.so\.1/)
  ).toBeVisible();
  await expect(
    notice.getByText(/^What to do: Start the container with GPU access/)
  ).toBeVisible();
  await expect(notice).toContainText('reason: library_not_found');
  await expect(gpuCards(gpus)).toHaveCount(0);
  await expect(root.getByText('Simulated', { exact: true })).toBeHidden();
  const item = statusItem(page);
  await expect(item).toHaveText('No GPU', { useInnerText: true });
  await expect(item).toHaveAccessibleName('GPU status: No GPU');
  await expect(item).toHaveAttribute('title', /NVML library not found/);
  // the doctor agrees, with its own remedy
  const health = await expandSection(page, 'Health');
  const failed = health.getByRole('group', { name: 'Failed (1)' });
  const nvml = failed.getByRole('group', { name: 'NVML library not found' });
  await expect(nvml.getByRole('img', { name: 'Failed' })).toBeVisible();
  await expect(nvml.getByText(/^Fix: /)).toBeVisible();
  await widenPanel(page);
  await saveScreenshot(root, 'panel-no-gpu.png');
});
