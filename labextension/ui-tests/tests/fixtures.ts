/**
 * galata's `test`, adapted to a server under a base_url: galata creates its per-test folder with
 * root-relative API calls (`/api/contents/...`) that miss the prefix, so the tests share one
 * folder created here through the prefixed API (they create no files in it).
 */
import { test as base } from '@jupyterlab/galata';

export { expect } from '@jupyterlab/galata';

const FOLDER = 'gpu-devbox-ui';

export const test = base.extend({
  tmpPath: async ({ request, baseURL }, use) => {
    const url = `${baseURL}/api/contents/${FOLDER}`;
    const exists = await request.get(`${url}?content=0`);
    if (!exists.ok()) {
      const made = await request.put(url, { data: { type: 'directory' } });
      if (!made.ok()) {
        throw new Error(`cannot create ${url}: ${made.status()}`);
      }
    }
    await use(FOLDER);
  }
});
