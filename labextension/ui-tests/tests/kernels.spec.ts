/**
 * Which notebook holds the GPU: a real kernel, run on a simulated GPU, appears under its notebook
 * in "Kernels on GPU", in its GPU's card and in the status bar; Shut down (after a confirmation,
 * through jupyter-server's kernel API) frees it.
 *
 * The simulated backend's processes file is the test's control of what "NVML" lists: the kernel
 * writes its own PID there, as if it had allocated 3 GiB with CUDA.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { expect, test } from './fixtures';
import { expandSection, gpuCards, openFromIcon, statusItem } from './helpers';

/** Where jupyter_server_test_config.py points the simulated backend. */
const PROCESSES_FILE = path.join(os.tmpdir(), 'gpu-devbox-ui-processes.json');
const NOTEBOOK = 'gpu-holder.ipynb';

const ALLOCATE = [
  'import json, os',
  'target = os.environ["GPU_DEVBOX_SIMULATED_PROCESSES"]',
  'with open(target + ".part", "w") as f:',
  '    json.dump([{"gpu": 0, "pid": os.getpid(), "used_memory": 3 * 1024**3}], f)',
  'os.replace(target + ".part", target)',
  'print("on GPU 0")'
].join('\n');

// galata tracks kernels by intercepting every URL matching /api/kernels, which would take
// gpu-devbox's own GET gpu-devbox/api/kernels for jupyter-server's list: tracked here instead
test.use({ kernels: null });

test.afterEach(async ({ request, baseURL, tmpPath }) => {
  fs.rmSync(PROCESSES_FILE, { force: true });
  const running = await request.get(`${baseURL}/api/kernels`);
  for (const kernel of (await running.json()) as { id: string }[]) {
    await request.delete(`${baseURL}/api/kernels/${kernel.id}`);
  }
  await request.delete(`${baseURL}/api/contents/${tmpPath}/${NOTEBOOK}`);
});

test('a kernel holding GPU memory appears under its notebook and Shut down frees it', async ({
  page,
  request,
  baseURL,
  tmpPath
}) => {
  const notebook = `${tmpPath}/${NOTEBOOK}`;
  const made = await request.put(`${baseURL}/api/contents/${notebook}`, {
    data: {
      type: 'notebook',
      format: 'json',
      content: {
        nbformat: 4,
        nbformat_minor: 5,
        metadata: {
          kernelspec: { name: 'python3', display_name: 'Python 3' }
        },
        cells: [
          {
            cell_type: 'code',
            id: 'allocate',
            source: ALLOCATE,
            metadata: {},
            outputs: [],
            execution_count: null
          }
        ]
      }
    }
  });
  expect(made.ok()).toBe(true);
  await page.evaluate(async (p: string) => {
    await (window as any).jupyterapp.commands.execute('docmanager:open', {
      path: p,
      factory: 'Notebook'
    });
  }, notebook);
  await expect(page.getByRole('tab', { name: NOTEBOOK })).toBeVisible();
  await page.notebook.run();
  await expect(page.getByText('on GPU 0', { exact: true })).toBeVisible();

  // the GPU card names the notebook instead of a PID
  const gpus = await openFromIcon(page);
  await expect(
    gpuCards(gpus).nth(0).getByRole('list', { name: 'Processes' })
  ).toContainText(NOTEBOOK, { timeout: 20000 });
  const kernels = await expandSection(page, 'Kernels on GPU');
  const holder = kernels.getByRole('listitem').filter({ hasText: NOTEBOOK });
  await expect(holder).toBeVisible({ timeout: 20000 });
  await expect(holder).toContainText('GPU 0: 3.0 GiB');
  await expect(kernels.getByRole('status')).toHaveText(
    /^1 kernel holds GPU memory\./
  );
  // the status bar counts the kernel
  await expect(statusItem(page)).toHaveAttribute(
    'aria-label',
    /· 1 kernel \(simulated GPUs\)$/
  );

  // the notebook's name opens it (closed, its kernel keeps running)
  await page.evaluate(() => {
    // closed without saving or asking; the session and its kernel stay
    (window as any).jupyterapp.shell.currentWidget.dispose();
  });
  await expect(page.getByRole('tab', { name: NOTEBOOK })).toHaveCount(0);
  await holder.getByRole('button', { name: NOTEBOOK, exact: true }).click();
  await expect(page.getByRole('tab', { name: NOTEBOOK })).toBeVisible();

  // Shut down asks first; cancelling keeps the kernel
  await holder.getByRole('button', { name: `Shut down ${NOTEBOOK}` }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText(`Shut down the kernel of ${NOTEBOOK}?`);
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(holder).toBeVisible();

  await holder.getByRole('button', { name: `Shut down ${NOTEBOOK}` }).click();
  await page
    .getByRole('dialog')
    .getByRole('button', { name: 'Shut down' })
    .click();
  // the kernel is gone (jupyter-server's own API shut it down), and so is its GPU memory
  await expect(holder).toHaveCount(0, { timeout: 20000 });
  await expect(kernels.getByRole('status')).toHaveText(
    /^No kernel holds GPU memory\./
  );
  await expect(statusItem(page)).not.toHaveAttribute('aria-label', /kernel/);
  const running = await request.get(`${baseURL}/api/kernels`);
  expect(await running.json()).toEqual([]);
});
