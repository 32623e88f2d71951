/**
 * Playwright configuration: galata's defaults, Debian's Chromium (Playwright cannot download its
 * own browsers here), no video (it needs Playwright's ffmpeg download), and two Jupyter servers:
 * one with two simulated GPUs under a JupyterHub-like base_url, one with the real NVML backend
 * (on a machine without a GPU it reports why).
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const basePath = process.env.GPU_DEVBOX_UI_BASE_URL || '/user/galata/';
const mainURL = `http://localhost:8888${basePath.replace(/\/$/, '')}`;
const noGpuPort = process.env.GPU_DEVBOX_NOGPU_PORT || '8891';
const noGpuURL = `http://localhost:${noGpuPort}`;

module.exports = {
  ...baseConfig,
  timeout: 90 * 1000,
  workers: 1,
  retries: process.env.CI ? 1 : 0,
  reporter: [['list'], ['html', { open: 'never' }]],
  use: {
    ...baseConfig.use,
    headless: true,
    video: 'off',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update'
      ]
    }
  },
  projects: [
    {
      name: 'simulated',
      testIgnore: /nogpu\.spec\.ts/,
      use: { baseURL: mainURL }
    },
    {
      name: 'nogpu',
      testMatch: /nogpu\.spec\.ts/,
      use: { baseURL: noGpuURL }
    }
  ],
  webServer: [
    {
      command: 'jlpm start',
      url: `${mainURL}/lab`,
      timeout: 120 * 1000,
      reuseExistingServer: !process.env.CI
    },
    {
      command: 'jlpm start:nogpu',
      url: `${noGpuURL}/lab`,
      timeout: 120 * 1000,
      reuseExistingServer: !process.env.CI
    }
  ]
};
