/**
 * The Benchmark section: simulated GPUs cannot be measured, so the server's benchmark runs on
 * the CPU (NumPy) — a real worker process, start to finish.
 */
import {
  expandSection,
  openFromIcon,
  runFromPalette,
  saveScreenshot,
  widenPanel
} from './helpers';
import { expect, test } from './fixtures';

test.describe('Benchmark', () => {
  test('a quick run on the CPU completes and its results and history appear', async ({
    page
  }) => {
    await openFromIcon(page);
    const bench = await expandSection(page, 'Benchmark');
    await expect(bench.getByRole('combobox', { name: 'Device' })).toHaveValue(
      'cpu'
    );
    await expect(
      bench.locator('.jp-GpuDevbox-muted', { hasText: 'simulated' })
    ).toBeVisible();
    const before = await historyCount(bench);
    await bench.getByRole('combobox', { name: 'Suite' }).selectOption('quick');
    await bench.getByRole('button', { name: 'Run' }).click();
    await expect(bench.locator('.jp-GpuDevbox-run-state')).toHaveText(
      'Running'
    );
    await expect(bench.getByRole('button', { name: 'Cancel' })).toBeVisible();
    await expect(bench.locator('.jp-GpuDevbox-run-state')).toHaveText(
      'Finished',
      { timeout: 60_000 }
    );
    const matmul = bench.locator(
      '.jp-GpuDevbox-measure[data-measurement="matmul_fp32"]'
    );
    await expect(matmul.locator('.jp-GpuDevbox-measure-value')).toHaveText(
      /^\d+(\.\d+)? [GM]FLOP\/s$/
    );
    await expect(
      bench.locator(
        '.jp-GpuDevbox-measure[data-measurement="memory_copy"] .jp-GpuDevbox-measure-value'
      )
    ).toHaveText(/B\/s$/);
    await expect(
      bench.locator('.jp-GpuDevbox-run-device .jp-GpuDevbox-muted').first()
    ).toContainText('No datasheet peak');
    await expect(bench.getByRole('button', { name: 'Cancel' })).toBeHidden();
    await expect.poll(() => historyCount(bench)).toBe(before + 1);
    await widenPanel(page);
    await saveScreenshot(bench, 'benchmark-cpu.png');
  });

  test('cancel stops a running benchmark', async ({
    page,
    request,
    baseURL
  }) => {
    await openFromIcon(page);
    const bench = await expandSection(page, 'Benchmark');
    await bench.getByRole('combobox', { name: 'Suite' }).selectOption('full');
    await bench.getByRole('button', { name: 'Run' }).click();
    await expect(bench.locator('.jp-GpuDevbox-progress-text')).toHaveText(
      /^Step \d+ of \d+/,
      { timeout: 20_000 }
    );
    await bench.getByRole('button', { name: 'Cancel' }).click();
    await expect(bench.locator('.jp-GpuDevbox-run-state')).toHaveText(
      'Cancelled'
    );
    await expect(bench.getByRole('button', { name: 'Run' })).toBeEnabled();
    const listing = await (
      await request.get(`${baseURL}/gpu-devbox/api/benchmarks`)
    ).json();
    expect(listing.running).toBeNull();
    expect(listing.runs[0].state).toBe('cancelled');
  });

  test('the palette command runs the quick suite', async ({ page }) => {
    await runFromPalette(page, 'Run GPU Benchmark (quick)');
    const bench = page.locator('#gpu-devbox-panel .jp-GpuDevbox-bench');
    await expect(bench.locator('.jp-GpuDevbox-run-state')).toHaveText(
      'Running'
    );
    await expect(bench.locator('.jp-GpuDevbox-run-state')).toHaveText(
      'Finished',
      { timeout: 60_000 }
    );
  });
});

async function historyCount(
  bench: import('@playwright/test').Locator
): Promise<number> {
  const summary =
    (await bench.locator('.jp-GpuDevbox-history > summary').textContent()) ??
    '';
  const match = summary.match(/\((\d+) runs?\)/);
  return match ? Number(match[1]) : -1;
}
