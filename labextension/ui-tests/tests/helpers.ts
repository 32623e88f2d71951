/** Shared steps of the UI tests. */
import * as fs from 'fs';
import * as path from 'path';

import type { IJupyterLabPageFixture } from '@jupyterlab/galata';
import { expect, Locator } from '@playwright/test';

export const PANEL_ID = 'gpu-devbox-panel';

/** The panel. */
export function panel(page: IJupyterLabPageFixture): Locator {
  return page.locator(`#${PANEL_ID}`);
}

/** Open the panel by clicking its icon in the side bar (a click on an open panel's icon closes it). */
export async function openFromIcon(
  page: IJupyterLabPageFixture
): Promise<Locator> {
  if (!(await panel(page).isVisible())) {
    await page.locator(`.lm-TabBar-tab[data-id="${PANEL_ID}"]`).click();
  }
  await expect(panel(page)).toBeVisible();
  return panel(page);
}

/** Run a command through the command palette, as a user would. */
export async function runFromPalette(
  page: IJupyterLabPageFixture,
  label: string
): Promise<void> {
  await page.keyboard.press('Control+Shift+C');
  const input = page.locator('#modal-command-palette input');
  await expect(input).toBeVisible();
  await input.fill(label);
  await page
    .locator('#modal-command-palette .lm-CommandPalette-item', {
      hasText: label
    })
    .first()
    .click();
}

/** Expand an accordion section of the panel by its title. */
export async function expandSection(
  page: IJupyterLabPageFixture,
  title: string
): Promise<Locator> {
  const header = panel(page).locator('.jp-AccordionPanel-title', {
    hasText: title
  });
  if ((await header.getAttribute('aria-expanded')) !== 'true') {
    await header.click();
  }
  return panel(page).locator(
    `.jp-GpuDevbox-${title === 'Health' ? 'health' : title === 'Benchmark' ? 'bench' : 'gpus'}`
  );
}

/** Give the side bar room and hide the left one, so a screenshot shows the panel at ease. */
export async function widenPanel(page: IJupyterLabPageFixture): Promise<void> {
  await page.sidebar.close('left');
  await page.evaluate(() => {
    const shell = (window as any).jupyterapp.shell;
    shell._hsplitPanel?.setRelativeSizes([0, 0.58, 0.42]);
  });
}

/**
 * Save a screenshot under ui-tests/screenshots, and into docs/screenshots when
 * GPU_DEVBOX_UPDATE_SCREENSHOTS=1 (how the committed screenshots are refreshed).
 */
export async function saveScreenshot(
  target: Locator,
  name: string
): Promise<void> {
  const out = path.resolve(__dirname, '..', 'screenshots', name);
  await target.screenshot({ path: out, animations: 'disabled' });
  if (process.env.GPU_DEVBOX_UPDATE_SCREENSHOTS === '1') {
    const docs = path.resolve(
      __dirname,
      '..',
      '..',
      '..',
      'docs',
      'screenshots'
    );
    fs.mkdirSync(docs, { recursive: true });
    fs.copyFileSync(out, path.join(docs, name));
  }
}

/** How many pixel columns of a chart canvas have something drawn in them. */
export async function drawnColumns(canvas: Locator): Promise<number> {
  return canvas.evaluate((c: HTMLCanvasElement) => {
    const ctx = c.getContext('2d');
    if (!ctx || c.width === 0) {
      return 0;
    }
    const { data } = ctx.getImageData(0, 0, c.width, c.height);
    let columns = 0;
    for (let x = 0; x < c.width; x++) {
      for (let y = 0; y < c.height; y++) {
        if (data[(y * c.width + x) * 4 + 3] > 0) {
          columns++;
          break;
        }
      }
    }
    return columns;
  });
}
