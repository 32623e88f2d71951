/** Shared steps of the UI tests. */
import * as fs from 'fs';
import * as path from 'path';

import type { IJupyterLabPageFixture } from '@jupyterlab/galata';
import { expect, Locator } from '@playwright/test';

/**
 * The panel and its parts are found as a user (or a screen reader) finds them: by role and
 * accessible name, not by CSS class.
 */

/** The panel: a region named by its heading. */
export function panel(page: IJupyterLabPageFixture): Locator {
  return page.getByRole('region', { name: 'GPU Devbox', exact: true });
}

/** The panel's tab in the side bar (an icon; "GPUs" is its tooltip and name). */
export function panelTab(page: IJupyterLabPageFixture): Locator {
  return page.getByRole('tab', { name: 'GPUs', exact: true });
}

/** Open the panel by clicking its icon in the side bar (a click on an open panel's icon closes it). */
export async function openFromIcon(
  page: IJupyterLabPageFixture
): Promise<Locator> {
  if (!(await panel(page).isVisible())) {
    await panelTab(page).click();
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
  const palette = page.getByRole('region', { name: 'Command Palette Section' });
  const input = palette.getByRole('textbox');
  await expect(input).toBeVisible();
  await input.fill(label);
  // a command with a toggle (Show GPU Status ...) is a menuitemcheckbox
  await palette
    .getByRole('menuitem', { name: label, exact: true })
    .or(palette.getByRole('menuitemcheckbox', { name: label, exact: true }))
    .first()
    .click();
}

/** The accordion's name for a section of the panel ("GPUs Section" in JupyterLab 4). */
function sectionName(title: string): RegExp {
  return new RegExp(`^${title}( Section)?$`);
}

/** A section of the panel (GPUs, Health, Benchmark), open or not. */
export function section(page: IJupyterLabPageFixture, title: string): Locator {
  return panel(page).getByRole('region', { name: sectionName(title) });
}

/** Expand a section of the panel by its title; returns the section. */
export async function expandSection(
  page: IJupyterLabPageFixture,
  title: string
): Promise<Locator> {
  const header = panel(page).getByRole('heading', {
    name: sectionName(title)
  });
  if ((await header.getAttribute('aria-expanded')) !== 'true') {
    await header.click();
  }
  await expect(header).toHaveAttribute('aria-expanded', 'true');
  return section(page, title);
}

/** Fold a section of the panel away (the open ones share its height). */
export async function collapseSection(
  page: IJupyterLabPageFixture,
  title: string
): Promise<void> {
  const header = panel(page).getByRole('heading', {
    name: sectionName(title)
  });
  if ((await header.getAttribute('aria-expanded')) === 'true') {
    await header.click();
  }
  await expect(header).toHaveAttribute('aria-expanded', 'false');
}

/** The GPU cards in `scope`: regions named by their heading, "GPU 0 · NVIDIA H100 80GB HBM3". */
export function gpuCards(scope: Locator): Locator {
  return scope.getByRole('region', { name: /^GPU \d+ · / });
}

/** A metric's row of a card ("Temperature"): its label, value and chart. */
export function metric(card: Locator, name: string): Locator {
  return card.getByRole('group', { name, exact: true });
}

/** The status bar item: a button named "GPU status: <what it shows>". */
export function statusItem(page: IJupyterLabPageFixture): Locator {
  return page.getByRole('button', { name: /^GPU status: / });
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
