/**
 * gpu-devbox for JupyterLab: a GPU side panel (live metrics, health checks, benchmark), a status
 * bar item, palette commands and settings.
 *
 * Plugins:
 * - `gpu-devbox:plugin` builds the shared {@link IGpuDevbox} service, the panel and the commands;
 * - `gpu-devbox:status-bar` adds the status bar item.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Signal } from '@lumino/signaling';
import { AccordionPanel, Widget } from '@lumino/widgets';

// The panel's tab and the status bar item exist from the start, so their modules are needed
// at activation; lazy imports would only delay them.
/* eslint-disable jupyter/prefer-lazy-imports */
import { gpuIcon } from './icon';
import { KernelsModel } from './kernels';
import { NotebookGpuItem } from './notebookItem';
import { GpuDevboxService, IGpuDevbox } from './service';
import { readSettings } from './settings';
import { GpuStatusItem } from './statusbar';
import { VERSION } from './version';
import { GpuPanel } from './widgets/panel';
import { BenchSection } from './widgets/benchSection';
import { CullWarningBar, notifyCullWarnings } from './widgets/cullWarning';
import { HealthSection } from './widgets/healthSection';
import { IKernelActions, KernelsSection } from './widgets/kernelsSection';
/* eslint-enable jupyter/prefer-lazy-imports */

export const PLUGIN_ID = 'gpu-devbox:plugin';

/** The command ids. */
export namespace CommandIDs {
  export const open = 'gpu-devbox:open';
  export const runChecks = 'gpu-devbox:run-checks';
  export const runBenchmark = 'gpu-devbox:run-benchmark';
  export const toggleStatusBar = 'gpu-devbox:toggle-status-bar';
}

const CATEGORY = 'GPU';

/** What the notebook toolbar item needs of a notebook panel. */
interface IHasToolbar {
  toolbar: { insertItem(index: number, name: string, widget: Widget): boolean };
}

/** Milliseconds between two `GET kernels` while the Kernels on GPU section is open. */
const KERNELS_EVERY = 2000;

/**
 * What the Kernels on GPU section does, through JupyterLab's own services (jupyter-server's
 * kernel and terminal REST API): no route of gpu-devbox acts on a kernel.
 */
function kernelActions(app: JupyterFrontEnd): IKernelActions {
  const kernels = app.serviceManager.kernels;
  const withKernel = async (
    id: string,
    act: (kernel: {
      interrupt(): Promise<void>;
      restart(): Promise<void>;
    }) => Promise<void>
  ): Promise<void> => {
    const model = await kernels.findById(id);
    if (!model) {
      throw new Error('the kernel is not running any more');
    }
    const connection = kernels.connectTo({ model });
    try {
      await act(connection);
    } finally {
      connection.dispose();
    }
  };
  return {
    open: path => void app.commands.execute('docmanager:open', { path }),
    interrupt: id => withKernel(id, kernel => kernel.interrupt()),
    restart: id => withKernel(id, kernel => kernel.restart()),
    shutdownKernel: id => kernels.shutdown(id),
    shutdownTerminal: name => app.serviceManager.terminals.shutdown(name),
    confirm: async (title, body, action) => {
      const result = await showDialog({
        title,
        body,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: action })]
      });
      return result.button.accept;
    }
  };
}

const plugin: JupyterFrontEndPlugin<IGpuDevbox> = {
  id: PLUGIN_ID,
  description:
    'The GPU side panel: live GPU metrics, CUDA health checks and a GPU benchmark.',
  autoStart: true,
  provides: IGpuDevbox,
  optional: [ILayoutRestorer, ICommandPalette, ISettingRegistry],
  activate: async (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    registry: ISettingRegistry | null
  ): Promise<IGpuDevbox> => {
    const service = new GpuDevboxService(app.serviceManager.serverSettings);

    let settings: ISettingRegistry.ISettings | null = null;
    if (registry) {
      try {
        settings = await registry.load(PLUGIN_ID);
        service.updateSettings(
          readSettings(settings.composite as Record<string, unknown>)
        );
        settings.changed.connect(() => {
          service.updateSettings(
            readSettings(settings!.composite as Record<string, unknown>)
          );
        });
      } catch (error) {
        console.warn(
          'gpu-devbox: cannot load settings; using the defaults',
          error
        );
      }
    }

    const kernelsModel = new KernelsModel(service.api);
    const kernelsSection = new KernelsSection(kernelsModel, kernelActions(app));
    const health = new HealthSection(service.checks);
    const bench = new BenchSection(service.bench, service.connection);
    const panel = new GpuPanel({
      connection: service.connection,
      settings: () => service.settings,
      version: VERSION,
      icon: gpuIcon,
      sections: [kernelsSection, health, bench]
    });
    // the idle-stop warning heads the panel, under the connection banner
    panel.header.addWidget(new CullWarningBar(service.cull));
    // GET kernels while the section can be seen: on opening, then with the samples (at most
    // every KERNELS_EVERY ms; the samples themselves already carry each process's owner)
    let kernelsAt = 0;
    const loadKernels = (force: boolean): void => {
      const now = Date.now();
      if (
        panel.isVisible &&
        kernelsSection.isVisible &&
        (force || now - kernelsAt >= KERNELS_EVERY)
      ) {
        kernelsAt = now;
        void kernelsModel.load();
      }
    };
    service.connection.sampled.connect(() => loadKernels(false));
    (panel.content as AccordionPanel).expansionToggled.connect(() =>
      loadKernels(true)
    );
    const area = service.settings.area;
    app.shell.add(panel, area, { rank: 600, type: 'GPU' });
    restorer?.add(panel, 'gpu-devbox');
    void app.restored.then(() => panel.fitOpenSections());

    let checksLoaded = false;
    let benchLoaded = false;
    panel.visibilityChanged.connect((_, visible) => {
      service.demand('panel', visible);
      loadKernels(true);
      if (visible && !checksLoaded) {
        checksLoaded = true;
        void service.checks.load(false);
      }
      if (visible && !benchLoaded) {
        benchLoaded = true;
        void service.bench.refresh();
      }
    });
    service.settingsChanged.connect(() => {
      if (panel.isVisible) {
        panel.refresh();
      }
    });
    service.setOpener(() => app.shell.activateById(panel.id));
    notifyCullWarnings(service.cull, Notification, () => service.openPanel());

    // each notebook's toolbar: the GPU memory its own kernel holds (setting showNotebookGpuMemory)
    const notebookItems = new Set<NotebookGpuItem>();
    const syncNotebookItems = (): void => {
      service.demand(
        'notebook-toolbar',
        service.settings.showNotebookGpuMemory && notebookItems.size > 0
      );
      notebookItems.forEach(item => item.render());
    };
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (widget, context) => {
        const item = new NotebookGpuItem(
          service.connection,
          () => context.sessionContext.session?.kernel?.id ?? null,
          () => service.settings.showNotebookGpuMemory
        );
        // a notebook panel is a document widget: it has a toolbar
        const toolbar = (widget as Partial<IHasToolbar>).toolbar;
        toolbar?.insertItem(10, 'gpu-devbox-memory', item);
        notebookItems.add(item);
        item.disposed.connect(() => {
          notebookItems.delete(item);
          syncNotebookItems();
        });
        syncNotebookItems();
        return item;
      }
    });
    service.settingsChanged.connect(syncNotebookItems);

    const expand = (index: number): void => {
      const content = panel.content as AccordionPanel;
      if (content.expand) {
        content.expand(index);
      }
    };

    app.commands.addCommand(CommandIDs.open, {
      label: 'Open GPU Panel',
      describedBy: { args: { type: 'object', properties: {} } },
      caption: 'Show live GPU metrics, health checks and the benchmark',
      icon: args => (args.isPalette ? undefined : gpuIcon),
      execute: () => {
        app.shell.activateById(panel.id);
      }
    });
    app.commands.addCommand(CommandIDs.runChecks, {
      label: 'Run GPU Health Checks',
      describedBy: { args: { type: 'object', properties: {} } },
      caption: 'Check the driver, CUDA and frameworks again',
      execute: async () => {
        app.shell.activateById(panel.id);
        expand(panel.widgets.indexOf(health));
        checksLoaded = true;
        await service.checks.load(true);
      }
    });
    app.commands.addCommand(CommandIDs.runBenchmark, {
      label: 'Run GPU Benchmark (quick)',
      describedBy: {
        args: {
          type: 'object',
          properties: {
            suite: {
              type: 'string',
              enum: ['quick', 'full'],
              description: 'Which suite to run (default: quick)'
            }
          }
        }
      },
      caption:
        'Measure TFLOP/s and bandwidth and compare them with the datasheet',
      execute: async args => {
        app.shell.activateById(panel.id);
        expand(panel.widgets.indexOf(bench));
        const suite = typeof args.suite === 'string' ? args.suite : 'quick';
        await bench.run(suite);
      }
    });
    app.commands.addCommand(CommandIDs.toggleStatusBar, {
      label: 'Show GPU Status in the Status Bar',
      describedBy: { args: { type: 'object', properties: {} } },
      isToggled: () => service.settings.showStatusBar,
      execute: async () => {
        if (settings) {
          await settings.set('showStatusBar', !service.settings.showStatusBar);
        } else {
          service.updateSettings({
            ...service.settings,
            showStatusBar: !service.settings.showStatusBar
          });
        }
      }
    });
    service.settingsChanged.connect(() =>
      app.commands.notifyCommandChanged(CommandIDs.toggleStatusBar)
    );

    if (palette) {
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category: CATEGORY });
      }
    }
    return service;
  }
};

const statusBarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'gpu-devbox:status-bar',
  description:
    'A status bar item with GPU utilization and memory; a click opens the GPU panel.',
  autoStart: true,
  requires: [IGpuDevbox],
  optional: [IStatusBar],
  activate: (
    _app: JupyterFrontEnd,
    service: IGpuDevbox,
    statusBar: IStatusBar | null
  ) => {
    if (!statusBar) {
      return;
    }
    const item = new GpuStatusItem(
      service.connection,
      () => service.settings,
      () => service.openPanel(),
      service.cull
    );
    const activeChanged = new Signal<IGpuDevbox, void>(service);
    statusBar.registerStatusItem('gpu-devbox:status', {
      item,
      align: 'left',
      rank: 4,
      isActive: () => service.settings.showStatusBar,
      activeStateChanged: activeChanged
    });
    const sync = (): void => {
      service.demand('status-bar', service.settings.showStatusBar);
      activeChanged.emit();
      item.render();
    };
    service.settingsChanged.connect(sync);
    sync();
  }
};

export default [plugin, statusBarPlugin];
