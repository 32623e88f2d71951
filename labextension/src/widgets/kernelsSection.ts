/**
 * The "Kernels on GPU" section: each kernel (notebook), terminal or process of this server that
 * holds GPU memory, with its GPUs and memory, its state and how long it has been idle, and
 * Interrupt, Restart and Shut down buttons. The actions go through jupyter-server's own kernel
 * and terminal API (via JupyterLab's service manager), after a confirmation.
 */
import {
  PanelWithToolbar,
  refreshIcon,
  ToolbarButton
} from '@jupyterlab/ui-components';

import { h, setHidden, setText } from '../dom';
import { formatAge } from '../format';
import {
  holderRows,
  IHolderRow,
  kernelsSummary,
  KernelsModel,
  stateText
} from '../kernels';

/** What the section does with a kernel or terminal (JupyterLab's services, in the plugin). */
export interface IKernelActions {
  /** Open a notebook (or console file) by its path. */
  open(path: string): void;
  interrupt(kernelId: string): Promise<void>;
  restart(kernelId: string): Promise<void>;
  shutdownKernel(kernelId: string): Promise<void>;
  shutdownTerminal(name: string): Promise<void>;
  /** Ask the user; resolves true to go ahead. */
  confirm(title: string, body: string, action: string): Promise<boolean>;
}

type Action = 'interrupt' | 'restart' | 'shutdown';

const ACTION_LABELS: Record<Action, string> = {
  interrupt: 'Interrupt',
  restart: 'Restart',
  shutdown: 'Shut down'
};

export class KernelsSection extends PanelWithToolbar {
  constructor(
    private _model: KernelsModel,
    private _actions: IKernelActions,
    private _now: () => number = () => Date.now() / 1000
  ) {
    super();
    this.addClass('jp-GpuDevbox-section');
    this.addClass('jp-GpuDevbox-kernels');
    this.title.label = 'Kernels on GPU';
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: 'List the kernels again',
        onClick: () => void this._model.load()
      })
    );
    this._summary = h('div', {
      className: 'jp-GpuDevbox-summary',
      attrs: { role: 'status' }
    });
    this._error = h('div', { className: 'jp-GpuDevbox-error' });
    this._list = h('ul', {
      className: 'jp-GpuDevbox-holders',
      attrs: { 'aria-label': 'Kernels and terminals holding GPU memory' }
    });
    this.node.append(
      h(
        'div',
        { className: 'jp-GpuDevbox-body' },
        this._summary,
        this._error,
        this._list
      )
    );
    _model.changed.connect(this.render, this);
    this.render();
  }

  render(): void {
    const doc = this._model.document;
    setText(this._error, this._model.error);
    setHidden(this._error, !this._model.error);
    if (!doc) {
      setText(this._summary, this._model.error ? '' : 'Loading…');
      return;
    }
    const rows = holderRows(doc, this._now());
    setText(this._summary, kernelsSummary(doc, rows));
    this._list.replaceChildren(...rows.map(row => this._row(row)));
  }

  private _row(row: IHolderRow): HTMLElement {
    const name =
      row.kind === 'kernel' && row.path
        ? h('button', {
            className: 'jp-GpuDevbox-holder-name jp-GpuDevbox-link',
            text: row.label,
            title: `Open ${row.path}`,
            attrs: { type: 'button' }
          })
        : h('span', {
            className: 'jp-GpuDevbox-holder-name',
            text: row.label,
            title: row.label
          });
    if (row.path) {
      const path = row.path;
      name.addEventListener('click', () => this._actions.open(path));
    }
    const details: string[] = [];
    const state = stateText(row);
    if (state) {
      details.push(state);
    }
    if (row.holdingSeconds !== null) {
      details.push(`holding GPU memory for ${formatAge(row.holdingSeconds)}`);
    }
    const item = h(
      'li',
      {
        className: 'jp-GpuDevbox-holder',
        attrs: { 'data-kind': row.kind, 'data-id': row.id }
      },
      name,
      h(
        'div',
        { className: 'jp-GpuDevbox-holder-gpus' },
        ...row.gpus.map(text => h('div', { text }))
      ),
      h('div', {
        className: 'jp-GpuDevbox-holder-state',
        text: details.join(' · ')
      })
    );
    const actions: Action[] =
      row.kind === 'kernel'
        ? ['interrupt', 'restart', 'shutdown']
        : row.kind === 'terminal'
          ? ['shutdown']
          : [];
    if (actions.length > 0) {
      item.append(
        h(
          'div',
          {
            className: 'jp-GpuDevbox-holder-actions',
            attrs: { role: 'group', 'aria-label': `Actions on ${row.label}` }
          },
          ...actions.map(action => this._button(row, action))
        )
      );
    }
    return item;
  }

  private _button(row: IHolderRow, action: Action): HTMLElement {
    const label = ACTION_LABELS[action];
    const button = h('button', {
      className: 'jp-Button jp-mod-styled jp-mod-small',
      text: label,
      attrs: {
        type: 'button',
        'data-action': action,
        'aria-label': `${label} ${row.label}`
      }
    });
    button.addEventListener('click', () => void this._act(row, action));
    return button;
  }

  private async _act(row: IHolderRow, action: Action): Promise<void> {
    const what =
      row.kind === 'kernel' ? `the kernel of ${row.label}` : row.label;
    const consequence =
      action === 'interrupt'
        ? 'The cell it is running stops; its variables and GPU memory stay.'
        : action === 'restart'
          ? 'Its variables are lost and its GPU memory is freed.'
          : 'It stops, its variables are lost and its GPU memory is freed.';
    const ok = await this._actions.confirm(
      `${ACTION_LABELS[action]} ${what}?`,
      `${row.gpus.join('; ')}. ${consequence}`,
      ACTION_LABELS[action]
    );
    if (!ok) {
      return;
    }
    try {
      if (row.kind === 'terminal') {
        await this._actions.shutdownTerminal(row.id);
      } else if (action === 'interrupt') {
        await this._actions.interrupt(row.id);
      } else if (action === 'restart') {
        await this._actions.restart(row.id);
      } else {
        await this._actions.shutdownKernel(row.id);
      }
    } catch (error) {
      setText(
        this._error,
        `${ACTION_LABELS[action]} failed: ${(error as Error).message}`
      );
      setHidden(this._error, false);
      return;
    }
    await this._model.load();
  }

  private _summary: HTMLElement;
  private _error: HTMLElement;
  private _list: HTMLElement;
}
