/**
 * The Benchmark section: simulated GPUs cannot be measured, so the server's benchmark runs on
 * the CPU (NumPy) — a real worker process, start to finish.
 */
import type { Locator } from '@playwright/test';

import {
  collapseSection,
  expandSection,
  openFromIcon,
  runFromPalette,
  saveScreenshot,
  section,
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
      bench.getByText(
        'The GPUs are simulated, so the benchmark measures the CPU instead.'
      )
    ).toBeVisible();
    const before = await historyCount(bench);
    await bench.getByRole('combobox', { name: 'Suite' }).selectOption('quick');
    await bench.getByRole('button', { name: 'Run' }).click();
    // the run's state is a live region
    await expect(bench.getByRole('status')).toHaveText('Running');
    await expect(bench.getByRole('button', { name: 'Cancel' })).toBeVisible();
    await expect(bench.getByRole('status')).toHaveText('Finished', {
      timeout: 60_000
    });
    await expect(bench.getByRole('heading', { name: /^CPU · / })).toBeVisible();
    await expect(
      bench
        .getByRole('group', { name: /^matmul fp32/ })
        .getByText(/^\d+(\.\d+)? [GM]FLOP\/s$/)
    ).toBeVisible();
    await expect(
      bench.getByRole('group', { name: /^memory copy/ }).getByText(/B\/s$/)
    ).toBeVisible();
    await expect(bench.getByText(/^No datasheet peak/)).toBeVisible();
    await expect(bench.getByRole('button', { name: 'Cancel' })).toBeHidden();
    await expect.poll(() => historyCount(bench)).toBe(before + 1);
    await collapseSection(page, 'GPUs'); // room for the whole section
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
    const progress = bench.getByRole('progressbar', {
      name: 'Benchmark progress'
    });
    await expect(progress).toHaveAttribute(
      'aria-valuetext',
      /^Step \d+ of \d+/,
      {
        timeout: 20_000
      }
    );
    await expect(bench.getByText(/^Step \d+ of \d+/)).toBeVisible();
    await bench.getByRole('button', { name: 'Cancel' }).click();
    await expect(bench.getByRole('status')).toHaveText('Cancelled');
    await expect(progress).toBeHidden();
    await expect(bench.getByRole('button', { name: 'Run' })).toBeEnabled();
    const listing = await (
      await request.get(`${baseURL}/gpu-devbox/api/benchmarks`)
    ).json();
    expect(listing.running).toBeNull();
    expect(listing.runs[0].state).toBe('cancelled');
  });

  test('the palette command runs the quick suite', async ({ page }) => {
    await runFromPalette(page, 'Run GPU Benchmark (quick)');
    const bench = section(page, 'Benchmark');
    await expect(bench.getByRole('status')).toHaveText('Running');
    await expect(bench.getByRole('status')).toHaveText('Finished', {
      timeout: 60_000
    });
  });
});

async function historyCount(bench: Locator): Promise<number> {
  const summary =
    (await bench.getByText(/^History \(\d+ runs?\)$/).textContent()) ?? '';
  const match = summary.match(/\((\d+) runs?\)/);
  return match ? Number(match[1]) : -1;
}
