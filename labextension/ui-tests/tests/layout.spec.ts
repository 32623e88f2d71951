/**
 * The panel at the width it opens at: JupyterLab's default side bar (250 px). Nothing a user
 * reads may be cut off there: not the GPU names, not the benchmark's pickers, not the results.
 */
import type { Locator } from '@playwright/test';

import {
  expandSection,
  gpuCards,
  openFromIcon,
  panel,
  section
} from './helpers';
import { expect, test } from './fixtures';

/**
 * Text the browser cuts off inside `root`: elements that clip their content (overflow other
 * than visible, or an ellipsis) while it is wider than they are, and `root` itself scrolling
 * sideways. Returns the clipped texts, so a failure says what was cut.
 */
async function clippedTexts(root: Locator): Promise<string[]> {
  return root.evaluate((top: HTMLElement) => {
    const cut: string[] = [];
    for (const el of [top, ...Array.from(top.querySelectorAll('*'))]) {
      const node = el as HTMLElement;
      if (node.clientWidth === 0 || node.scrollWidth <= node.clientWidth + 1) {
        continue;
      }
      const style = getComputedStyle(node);
      if (style.overflowX !== 'visible' || style.textOverflow === 'ellipsis') {
        cut.push(
          `${(node.textContent ?? '').trim().slice(0, 60)} (${node.scrollWidth} px in ${node.clientWidth} px)`
        );
      }
    }
    return cut;
  });
}

/**
 * Options of a select whose label is wider than the select's text box: a closed select shows
 * the chosen label cut without an ellipsis ("CPU (NumP").
 */
async function cutOptions(select: Locator): Promise<string[]> {
  return select.evaluate((node: HTMLSelectElement) => {
    const style = getComputedStyle(node);
    const room =
      node.clientWidth -
      parseFloat(style.paddingLeft) -
      parseFloat(style.paddingRight);
    const context = document.createElement('canvas').getContext('2d')!;
    context.font = style.font;
    return Array.from(node.options)
      .map(option => option.text)
      .filter(label => context.measureText(label).width > room)
      .map(label => `${label} (${room} px of room)`);
  });
}

test.describe('at the default side bar width', () => {
  test('GPU names, the benchmark pickers and results are shown in full', async ({
    page
  }) => {
    const root = await openFromIcon(page);
    // the width a new user gets; a wider panel would hide the problem this test is about
    const width = await root.evaluate(
      node => node.getBoundingClientRect().width
    );
    expect(width).toBeLessThanOrEqual(260);

    const cards = gpuCards(section(page, 'GPUs'));
    await expect(cards).toHaveCount(2);
    for (const index of [0, 1]) {
      const title = cards.nth(index).getByRole('heading');
      await expect(title).toHaveText(`GPU ${index} · NVIDIA H100 80GB HBM3`);
      expect.soft(await clippedTexts(title)).toEqual([]);
    }

    const bench = await expandSection(page, 'Benchmark');
    for (const name of ['Suite', 'Device']) {
      const select = bench.getByRole('combobox', { name });
      await expect(select).toBeVisible();
      expect.soft(await cutOptions(select)).toEqual([]);
    }
    await bench.getByRole('button', { name: 'Run' }).click();
    await expect(bench.getByRole('status')).toHaveText('Finished', {
      timeout: 60_000
    });
    const health = await expandSection(page, 'Health');
    await expect(
      health.getByRole('group', {
        name: 'NVML facts come from the simulated backend'
      })
    ).toBeVisible();

    expect(await clippedTexts(root)).toEqual([]);
  });
});

test('after a reload the sections left open still have room', async ({
  page
}) => {
  await openFromIcon(page);
  await expandSection(page, 'Health');
  await expandSection(page, 'Benchmark');
  const heights = () =>
    Promise.all(
      ['GPUs', 'Health', 'Benchmark'].map(title =>
        section(page, title).evaluate(
          node => node.getBoundingClientRect().height
        )
      )
    );
  expect(Math.min(...(await heights()))).toBeGreaterThan(100);
  await page.waitForTimeout(1500); // the layout is saved in the workspace
  await page.reload();
  await expect(panel(page)).toBeVisible();
  // JupyterLab restores the three sections as open: each must show something, not 0 px
  for (const title of ['Health', 'Benchmark']) {
    await expect(
      panel(page).getByRole('heading', { name: new RegExp(`^${title}`) })
    ).toHaveAttribute('aria-expanded', 'true');
  }
  await expect
    .poll(async () => Math.min(...(await heights())))
    .toBeGreaterThan(100);
  await expect(
    section(page, 'Benchmark').getByRole('button', { name: 'Run' })
  ).toBeInViewport();
});
