import {
  gpuUseText,
  holderRows,
  kernelMemory,
  kernelsHoldingMemory,
  kernelsSummary,
  KernelsModel
} from '../kernels';
import { NotebookGpuItem, notebookItemText } from '../notebookItem';
import { DEFAULT_SETTINGS, readSettings } from '../settings';
import { statusItemContent } from '../statusbar';
import { IGpuProcess, IKernelsDocument, ProcessOwner } from '../tokens';
import { IKernelActions, KernelsSection } from '../widgets/kernelsSection';
import { connectedWith, settle } from './fakes';
import { GIB, makeGpu, makeGpus, makeStatus } from './fixtures';

const NOW = 1_700_000_000;

const train: ProcessOwner = {
  type: 'kernel',
  kernel_id: 'aaaaaaaa-1111',
  kernel_name: 'python3',
  path: 'work/train.ipynb',
  execution_state: 'idle'
};

function usage(index: number, memory: number | null, extra = {}) {
  return {
    index,
    uuid: `GPU-${index}`,
    memory,
    shared_with: [],
    shared_memory: null,
    processes: [],
    ...extra
  };
}

function kernelsDocument(): IKernelsDocument {
  return {
    timestamp: NOW,
    attribution: {
      method: 'device_files',
      exclusive_gpus: true,
      shared_gpus: []
    },
    kernels: [
      {
        id: 'aaaaaaaa-1111',
        name: 'python3',
        path: 'work/train.ipynb',
        execution_state: 'idle',
        last_activity: NOW - 720,
        connections: 1,
        pid: 57,
        gpu_since: NOW - 3600,
        gpus: [usage(0, 2 * GIB)]
      },
      {
        id: 'bbbbbbbb-2222',
        name: 'python3',
        path: 'eval.ipynb',
        execution_state: 'busy',
        last_activity: NOW,
        connections: 1,
        pid: 58,
        gpu_since: NOW - 60,
        gpus: [
          usage(1, null, {
            shared_with: [
              {
                type: 'kernel',
                kernel_id: 'cccccccc',
                kernel_name: 'python3',
                path: 'b.ipynb',
                execution_state: 'idle'
              }
            ],
            shared_memory: 45.4 * GIB
          })
        ]
      },
      {
        id: 'dddddddd-4444',
        name: 'python3',
        path: 'cpu-only.ipynb',
        execution_state: 'idle',
        last_activity: NOW,
        connections: 0,
        pid: 59,
        gpu_since: null,
        gpus: []
      }
    ],
    terminals: [
      {
        name: '1',
        pid: 70,
        last_activity: NOW,
        gpu_since: NOW - 10,
        gpus: [usage(0, GIB)]
      }
    ],
    processes: [],
    gpus: [
      {
        index: 0,
        uuid: 'GPU-0',
        processes: 2,
        others: 1,
        others_memory: 5 * GIB,
        uncertain: 0
      },
      {
        index: 1,
        uuid: 'GPU-1',
        processes: 2,
        others: 0,
        others_memory: 0,
        uncertain: 2
      }
    ]
  };
}

function process(
  pid: number,
  memory: number,
  owner: ProcessOwner | null
): IGpuProcess {
  return {
    pid,
    used_memory: memory,
    gpu_instance_id: null,
    sm_utilization: null,
    local_pid: null,
    owner
  };
}

describe('kernels', () => {
  it('lists what holds GPU memory, most first, and says what is shared', () => {
    const rows = holderRows(kernelsDocument(), NOW);
    expect(rows.map(r => r.label)).toEqual([
      'train.ipynb',
      'Terminal 1',
      'eval.ipynb'
    ]);
    expect(rows[0].gpus).toEqual(['GPU 0: 2.0 GiB']);
    expect(rows[0].idleSeconds).toBe(720);
    expect(rows[2].gpus).toEqual([
      'GPU 1: shared with b.ipynb, 45.4 GiB together'
    ]);
    expect(rows[2].idleSeconds).toBeNull(); // busy
    expect(kernelsSummary(kernelsDocument(), rows)).toBe(
      '2 kernels hold GPU memory. 1 process of other users or containers (5.0 GiB). ' +
        '2 processes whose owner cannot be told for certain.'
    );
    expect(gpuUseText(usage(3, null))).toBe('GPU 3: memory unknown');
  });

  it('counts the kernels holding memory in a sample and a kernel’s own memory', () => {
    const gpus = [
      makeGpu(0, {
        processes: [
          process(10, 2 * GIB, train),
          process(11, GIB, train),
          process(12, GIB, { type: 'other' })
        ]
      }),
      makeGpu(1, { processes: [process(13, GIB, null)] })
    ];
    expect(kernelsHoldingMemory(gpus)).toBe(1);
    expect(kernelMemory(gpus, 'aaaaaaaa-1111')).toBe(3 * GIB);
    expect(kernelMemory(gpus, 'nope')).toBeNull();
  });

  it('puts the count in the status bar item', async () => {
    const gpus = makeGpus(NOW, [
      makeGpu(0, { processes: [process(10, 2 * GIB, train)] })
    ]);
    const { connection } = await connectedWith(makeStatus(), gpus);
    const content = statusItemContent(connection, DEFAULT_SETTINGS);
    expect(content.text).toMatch(/ · 1 kernel$/);
    expect(content.tooltip).toContain('1 kernel holds GPU memory');
    connection.dispose();
  });
});

describe('NotebookGpuItem', () => {
  it('shows the memory of its own kernel only, and only when the setting is on', async () => {
    const gpus = makeGpus(NOW, [
      makeGpu(0, {
        processes: [
          process(10, 2 * GIB, train),
          process(11, GIB, { type: 'other' })
        ]
      })
    ]);
    const { connection } = await connectedWith(makeStatus(), gpus);
    expect(notebookItemText(connection, 'aaaaaaaa-1111')).toBe('GPU 2.0 GiB');
    expect(notebookItemText(connection, 'another-kernel')).toBe('');
    expect(notebookItemText(connection, null)).toBe('');
    let enabled = true;
    const item = new NotebookGpuItem(
      connection,
      () => 'aaaaaaaa-1111',
      () => enabled
    );
    expect(item.node.textContent).toBe('GPU 2.0 GiB');
    expect(item.node.hidden).toBe(false);
    enabled = false;
    item.render();
    expect(item.node.hidden).toBe(true);
    expect(readSettings({}).showNotebookGpuMemory).toBe(true);
    expect(
      readSettings({ showNotebookGpuMemory: false }).showNotebookGpuMemory
    ).toBe(false);
    item.dispose();
    connection.dispose();
  });
});

function fakeActions(answer: boolean) {
  const calls: string[] = [];
  const actions: IKernelActions = {
    open: path => calls.push(`open ${path}`),
    interrupt: async id => void calls.push(`interrupt ${id}`),
    restart: async id => void calls.push(`restart ${id}`),
    shutdownKernel: async id => void calls.push(`shutdown ${id}`),
    shutdownTerminal: async name =>
      void calls.push(`shutdown terminal ${name}`),
    confirm: async title => {
      calls.push(`confirm ${title}`);
      return answer;
    }
  };
  return { actions, calls };
}

describe('KernelsSection', () => {
  async function section(answer: boolean) {
    let loads = 0;
    const model = new KernelsModel({
      getKernels: async () => {
        loads++;
        return kernelsDocument();
      }
    });
    const { actions, calls } = fakeActions(answer);
    const widget = new KernelsSection(model, actions, () => NOW);
    await model.load();
    return { widget, calls, loads: () => loads };
  }

  it('shows each holder with its GPUs, state and actions; the name opens the notebook', async () => {
    const { widget, calls } = await section(true);
    const items = Array.from(
      widget.node.querySelectorAll('.jp-GpuDevbox-holder')
    );
    expect(items.map(i => i.getAttribute('data-kind'))).toEqual([
      'kernel',
      'terminal',
      'kernel'
    ]);
    expect(items[0].textContent).toContain('idle 12 min');
    expect(items[0].textContent).toContain('holding GPU memory for 1 h');
    const buttons = Array.from(
      items[0].querySelectorAll('button[data-action]')
    );
    expect(buttons.map(b => b.textContent)).toEqual([
      'Interrupt',
      'Restart',
      'Shut down'
    ]);
    expect(
      Array.from(items[1].querySelectorAll('button[data-action]')).map(
        b => b.textContent
      )
    ).toEqual(['Shut down']);
    (items[0].querySelector('.jp-GpuDevbox-link') as HTMLElement).click();
    expect(calls).toEqual(['open work/train.ipynb']);
    widget.dispose();
  });

  it('acts only after confirmation, then lists again', async () => {
    const { widget, calls, loads } = await section(true);
    const shutdown = widget.node.querySelector(
      '[data-kind="kernel"] button[data-action="shutdown"]'
    ) as HTMLElement;
    shutdown.click();
    await settle();
    expect(calls).toEqual([
      'confirm Shut down the kernel of train.ipynb?',
      'shutdown aaaaaaaa-1111'
    ]);
    expect(loads()).toBe(2);
    widget.dispose();

    const refused = await section(false);
    (
      refused.widget.node.querySelector(
        '[data-kind="terminal"] button[data-action="shutdown"]'
      ) as HTMLElement
    ).click();
    await settle();
    expect(refused.calls).toEqual(['confirm Shut down Terminal 1?']);
    expect(refused.loads()).toBe(1);
    refused.widget.dispose();
  });
});
