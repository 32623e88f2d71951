import { DisposableSet } from '@lumino/disposable';

import { ApiError } from '../api';
import { DevboxConnection } from '../connection';
import { DEFAULT_SETTINGS } from '../settings';
import { statusItemContent } from '../statusbar';
import { GpuStore } from '../store';
import { bannerContent } from '../widgets/banner';
import { GpuSection } from '../widgets/gpuSection';
import { connectedWith, FakeApi, settle } from './fakes';
import {
  GIB,
  makeGpu,
  makeGpus,
  makeHistory,
  makeStatus,
  noGpuStatus
} from './fixtures';

let owned = new DisposableSet();

afterEach(() => {
  owned.dispose();
  owned = new DisposableSet();
});

function newSection(): GpuSection {
  const made = new GpuSection();
  owned.add(made);
  return made;
}

async function connected(...args: Parameters<typeof connectedWith>) {
  const result = await connectedWith(...args);
  owned.add(result.connection);
  return result;
}

function text(node: Element, selector: string): string[] {
  return Array.from(node.querySelectorAll(selector)).map(
    e => e.textContent ?? ''
  );
}

describe('GpuSection', () => {
  it('draws a card per GPU with name, capability, memory, values and processes', async () => {
    const gpu0 = makeGpu(0, {
      utilization: { gpu: 45, memory: 12 },
      memory: {
        total: 80 * GIB,
        used: 12.3 * GIB,
        reserved: 0,
        free: 67 * GIB
      },
      processes: [
        {
          pid: 4242,
          used_memory: 12 * GIB,
          gpu_instance_id: null,
          sm_utilization: null,
          local_pid: null,
          owner: null
        }
      ]
    });
    const gpu1 = makeGpu(1, {
      power: { usage: null, limit: null },
      processes: null
    });
    const { connection } = await connected(
      makeStatus(),
      makeGpus(1000, [gpu0, gpu1]),
      makeHistory(999, 60, gpu0.uuid)
    );
    const section = newSection();
    expect(section.render(connection, DEFAULT_SETTINGS)).toBe(2);

    const cards = section.node.querySelectorAll('.jp-GpuDevbox-card');
    expect(cards).toHaveLength(2);
    expect(text(section.node, '.jp-GpuDevbox-card-name')).toEqual([
      'GPU 0 · NVIDIA H100 80GB HBM3',
      'GPU 1 · NVIDIA H100 80GB HBM3'
    ]);
    // each card is a region named by its heading; each metric row a group named by its label
    const heading = cards[0].querySelector('h4')!;
    expect(cards[0].getAttribute('aria-labelledby')).toBe(heading.id);
    const power = cards[0].querySelector('[data-metric="power"]')!;
    expect(power.getAttribute('role')).toBe('group');
    expect(
      power.querySelector(`#${power.getAttribute('aria-labelledby')}`)!
        .textContent
    ).toBe('Power');
    expect(text(cards[0], '.jp-GpuDevbox-chip')).toEqual(['sm 9.0']);
    expect(text(cards[0], '.jp-GpuDevbox-bar-text')).toEqual([
      '12.3/80.0 GiB (15%)'
    ]);
    expect(
      text(cards[0], '[data-metric="utilization"] .jp-GpuDevbox-value')
    ).toEqual(['45% · mem 12%']);
    expect(text(cards[0], '.jp-GpuDevbox-proc-list li')).toEqual([
      'PID 424212.0 GiB'
    ]);
    // the chart has the server's history at once (60 samples) plus the live one
    expect(
      cards[0].querySelector(
        '[data-metric="utilization"] canvas[aria-label="Utilization history"]'
      )
    ).not.toBeNull();
    expect(connection.store.ring(gpu0.uuid)!.length).toBe(61);
    // the GPU without power readings shows a dash
    expect(text(cards[1], '[data-metric="power"] .jp-GpuDevbox-value')).toEqual(
      ['–']
    );
    expect(text(cards[1], '.jp-GpuDevbox-procs')).toEqual([
      'Processes: not reported'
    ]);
    // all is well: no reason shown
    expect(
      (section.node.querySelector('.jp-GpuDevbox-nogpu') as HTMLElement).hidden
    ).toBe(true);
    expect(text(section.node, '.jp-GpuDevbox-driver')).toEqual([
      'Driver 580.159.04 · CUDA 13.0'
    ]);
  });

  it('updates cards in place and drops GPUs that went away', async () => {
    const { connection, socket } = await connected(
      makeStatus(),
      makeGpus(1000, [makeGpu(0), makeGpu(1)])
    );
    const section = newSection();
    section.render(connection, DEFAULT_SETTINGS);
    const first = section.node.querySelector('.jp-GpuDevbox-card');
    socket.send(
      'gpus',
      makeGpus(1001, [makeGpu(0, { temperature: { gpu: 77 } })])
    );
    section.render(connection, DEFAULT_SETTINGS);
    const cards = section.node.querySelectorAll('.jp-GpuDevbox-card');
    expect(cards).toHaveLength(1);
    expect(cards[0]).toBe(first);
    expect(
      text(cards[0], '[data-metric="temperature"] .jp-GpuDevbox-value')
    ).toEqual(['77 °C']);
  });

  it('shows a card per MIG instance', async () => {
    const gpu = makeGpu(0, {
      mig: {
        capable: true,
        enabled: true,
        pending: false,
        instances: [
          {
            uuid: 'MIG-a',
            name: 'MIG 3g.40gb',
            profile: '3g.40gb',
            gpu_instance_id: 1,
            compute_instance_id: 0,
            memory: { total: 40 * GIB, used: 39 * GIB }
          },
          {
            uuid: 'MIG-b',
            name: 'MIG 1g.10gb',
            profile: '1g.10gb',
            gpu_instance_id: 9,
            compute_instance_id: 0,
            memory: { total: 10 * GIB, used: 1 * GIB }
          }
        ]
      }
    });
    const { connection } = await connected(makeStatus(), makeGpus(1000, [gpu]));
    const section = newSection();
    section.render(connection, DEFAULT_SETTINGS);
    const migs = section.node.querySelectorAll('.jp-GpuDevbox-mig');
    expect(text(section.node, '.jp-GpuDevbox-mig-title')).toEqual([
      'MIG 3g.40gb · GI 1 · CI 0',
      'MIG 1g.10gb · GI 9 · CI 0'
    ]);
    // 39 of 40 GiB is past the 90% warning threshold
    expect(migs[0].querySelector('.jp-GpuDevbox-memory')!.classList).toContain(
      'jp-mod-warning'
    );
    expect(
      migs[1].querySelector('.jp-GpuDevbox-memory')!.classList
    ).not.toContain('jp-mod-warning');
  });

  it('shows why a GPU cannot be read, and what to do, in its card', async () => {
    const lost = makeGpu(1, {
      utilization: { gpu: null, memory: null },
      temperature: { gpu: null },
      processes: null,
      reason: {
        code: 'gpu_lost',
        message:
          'A GPU fell off the bus or stopped responding (NVML reports it as lost). (NVML error 15: GPU is lost)',
        remedy:
          'The node needs attention: drain it, then reset the GPU or reboot the node.',
        nvml_error: 15
      }
    });
    const { connection, socket } = await connected(
      makeStatus(),
      makeGpus(1000, [makeGpu(0), lost])
    );
    const section = newSection();
    expect(section.render(connection, DEFAULT_SETTINGS)).toBe(2);
    const [healthy, card] = Array.from(
      section.node.querySelectorAll<HTMLElement>('.jp-GpuDevbox-card')
    );
    const fault = card.querySelector<HTMLElement>('[role="status"]')!;
    expect(fault.hidden).toBe(false);
    expect(
      fault.querySelector(`#${fault.getAttribute('aria-labelledby')}`)!
        .textContent
    ).toBe('This GPU is lost');
    expect(text(fault, 'p')).toEqual([
      'A GPU fell off the bus or stopped responding (NVML reports it as lost). (NVML error 15: GPU is lost)',
      'What to do: The node needs attention: drain it, then reset the GPU or reboot the node.',
      'reason: gpu_lost · NVML error 15'
    ]);
    // its empty values give way to the reason; the name stays, so the user knows which GPU
    expect(
      card.querySelector<HTMLElement>('.jp-GpuDevbox-card-values')!.hidden
    ).toBe(true);
    expect(text(card, '.jp-GpuDevbox-card-name')).toEqual([
      'GPU 1 · NVIDIA H100 80GB HBM3'
    ]);
    expect(card.classList).toContain('jp-mod-unreadable');
    // the other GPU is not affected
    expect(healthy.querySelector<HTMLElement>('[role="status"]')!.hidden).toBe(
      true
    );
    expect(
      healthy.querySelector<HTMLElement>('.jp-GpuDevbox-card-values')!.hidden
    ).toBe(false);

    // once it answers again, its values come back and the reason goes
    socket.send('gpus', makeGpus(1001, [makeGpu(0), makeGpu(1)]));
    section.render(connection, DEFAULT_SETTINGS);
    expect(fault.hidden).toBe(true);
    expect(
      card.querySelector<HTMLElement>('.jp-GpuDevbox-card-values')!.hidden
    ).toBe(false);
    expect(card.classList).not.toContain('jp-mod-unreadable');
    expect(
      text(card, '[data-metric="temperature"] .jp-GpuDevbox-value')
    ).toEqual(['31 °C']);
  });

  it('shows NVML’s reason and remedy instead of an empty panel when there is no GPU', async () => {
    const { connection } = await connected(noGpuStatus(), makeGpus(1000, []));
    const section = newSection();
    expect(section.render(connection, DEFAULT_SETTINGS)).toBe(0);
    const notice = section.node.querySelector(
      '.jp-GpuDevbox-nogpu'
    ) as HTMLElement;
    expect(notice.hidden).toBe(false);
    expect(notice.textContent).toContain('NVML library not found');
    expect(notice.textContent).toContain(
      'What to do: Start the container with GPU access.'
    );
    expect(notice.textContent).toContain(
      'reason: library_not_found · NVML error 12'
    );
  });

  it('leaves out sparklines of metrics the settings do not chart', async () => {
    const { connection } = await connected(
      makeStatus(),
      makeGpus(1000, [makeGpu(0)])
    );
    const section = newSection();
    section.render(connection, {
      ...DEFAULT_SETTINGS,
      charts: ['utilization']
    });
    const power = section.node.querySelector('[data-metric="power"]')!;
    const util = section.node.querySelector('[data-metric="utilization"]')!;
    expect(power.classList).toContain('jp-mod-nochart');
    expect(util.classList).not.toContain('jp-mod-nochart');
    expect(power.querySelector('.jp-GpuDevbox-value')!.textContent).toBe(
      '72 / 700 W'
    );
  });
});

describe('bannerContent', () => {
  it('says nothing while all is well', async () => {
    const { connection } = await connected(
      makeStatus(),
      makeGpus(1, [makeGpu(0)])
    );
    expect(bannerContent(connection, '0.1.0', Date.now())).toBeNull();
  });

  it('tells the user what to install when the server extension is missing', async () => {
    const api = new FakeApi();
    api.status = async () => {
      throw new ApiError(404, 'Not Found');
    };
    const connection = new DevboxConnection({
      api,
      store: new GpuStore(),
      createSocket: () => {
        throw new Error('no socket expected');
      }
    });
    owned.add(connection);
    connection.start();
    await settle();
    const banner = bannerContent(connection, '0.1.0', Date.now())!;
    expect(banner.level).toBe('error');
    expect(banner.title).toBe('The gpu-devbox server extension is not running');
    expect(banner.lines.join('\n')).toContain('pip install gpu-devbox');
    expect(banner.lines.join('\n')).toContain('jupyter server extension list');
  });

  it('says how old the data is while the stream is down', async () => {
    const { connection, socket } = await connected(
      makeStatus(),
      makeGpus(1, [makeGpu(0)])
    );
    const received = connection.lastDataAt!;
    socket.drop();
    const banner = bannerContent(connection, '0.1.0', received + 37_000)!;
    expect(banner.title).toBe('Live updates interrupted');
    expect(banner.lines).toContain('The data shown is 37 s old.');
    expect(banner.retry).toBe(true);
  });

  it('notices a panel and server of different versions', async () => {
    const { connection } = await connected(
      makeStatus({ version: '0.2.0' }),
      makeGpus(1, [makeGpu(0)])
    );
    expect(bannerContent(connection, '0.1.0', Date.now())!.title).toBe(
      'Panel and server versions differ'
    );
  });
});

describe('statusItemContent', () => {
  it('aggregates the GPUs and warns near full memory', async () => {
    const full = makeGpu(0, {
      utilization: { gpu: 90, memory: 1 },
      memory: { total: 80 * GIB, used: 75 * GIB, reserved: 0, free: 5 * GIB }
    });
    const { connection } = await connected(makeStatus(), makeGpus(1, [full]));
    const content = statusItemContent(connection, DEFAULT_SETTINGS);
    expect(content.text).toBe('GPU 90% · 75.0/80.0 GiB');
    expect(content.warning).toBe(true);
    expect(content.stale).toBe(false);
    expect(content.tooltip).toContain(
      'GPU 0 NVIDIA H100 80GB HBM3: 90%, 75.0/80.0 GiB'
    );
    expect(
      statusItemContent(connection, {
        ...DEFAULT_SETTINGS,
        memoryWarning: 0.95
      }).warning
    ).toBe(false);
  });

  it('says No GPU with the reason as tooltip', async () => {
    const { connection } = await connected(noGpuStatus(), makeGpus(1, []));
    const content = statusItemContent(connection, DEFAULT_SETTINGS);
    expect(content.text).toBe('No GPU');
    expect(content.tooltip).toContain('NVML library not found');
  });

  it('greys out stale values', async () => {
    const { connection, socket } = await connected(
      makeStatus(),
      makeGpus(1, [makeGpu(0)])
    );
    socket.drop();
    const content = statusItemContent(connection, DEFAULT_SETTINGS);
    expect(content.stale).toBe(true);
    expect(content.tooltip).toContain('may be out of date');
  });
});
