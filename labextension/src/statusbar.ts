/**
 * The status bar item: `GPU 45% · 12.3/80 GiB` over the visible GPUs, in the warning colour when
 * memory is nearly full, greyed when the data is stale; `GPU idle · stops 16:30` in the warning
 * colour while the server is about to be stopped for GPU idleness; a click opens the panel.
 */
import { Widget } from '@lumino/widgets';

import { DevboxConnection } from './connection';
import { CullModel, ICullWarning } from './cull';
import { h, setAttr, setHidden, setText, toggleClass } from './dom';
import {
  aggregate,
  formatMemoryPair,
  formatPercent,
  statusBarText
} from './format';
import { kernelsHoldingMemory } from './kernels';
import { IPanelSettings } from './settings';

/** The item's text and tooltip for the connection's current state (pure, for tests). */
export function statusItemContent(
  connection: DevboxConnection,
  settings: IPanelSettings,
  cull: ICullWarning | null = null
): { text: string; tooltip: string; warning: boolean; stale: boolean } {
  const status = connection.status;
  const latest = connection.store.latest;
  const stale = connection.link !== 'open';
  if (connection.serverState === 'missing') {
    return {
      text: 'GPU n/a',
      tooltip:
        'The gpu-devbox server extension is not running: click for details.',
      warning: false,
      stale: true
    };
  }
  if (!status || !latest) {
    return {
      text: 'GPU …',
      tooltip: connection.error || 'Connecting to the GPU service…',
      warning: false,
      stale: true
    };
  }
  if (!status.nvml.available || latest.gpus.length === 0) {
    return {
      text: 'No GPU',
      tooltip: status.nvml.reason ?? 'No GPU is visible to this server.',
      warning: false,
      stale
    };
  }
  const agg = aggregate(latest.gpus);
  const lines = latest.gpus.map(
    gpu =>
      `GPU ${gpu.index} ${gpu.name}: ${formatPercent(gpu.utilization.gpu)}, ` +
      formatMemoryPair(gpu.memory.used, gpu.memory.total)
  );
  const kernels = kernelsHoldingMemory(latest.gpus);
  if (kernels > 0) {
    lines.push(
      `${kernels} kernel${kernels === 1 ? ' holds' : 's hold'} GPU memory (see Kernels on GPU).`
    );
  }
  if (status.simulated) {
    lines.push('(simulated GPUs)');
  }
  if (stale) {
    lines.push('Live updates interrupted: these values may be out of date.');
  }
  lines.push('Click to open the GPU panel.');
  if (cull) {
    // the idle stop outranks the usual figures: it is what the user must act on
    return {
      text: cull.shortText,
      tooltip: [`${cull.text}.`, cull.note, ...lines].join('\n'),
      warning: true,
      stale
    };
  }
  return {
    text:
      statusBarText(agg) +
      (kernels > 0 ? ` · ${kernels} kernel${kernels === 1 ? '' : 's'}` : ''),
    tooltip: lines.join('\n'),
    warning:
      agg.memoryFraction !== null &&
      agg.memoryFraction >= settings.memoryWarning,
    stale
  };
}

export class GpuStatusItem extends Widget {
  constructor(
    private _connection: DevboxConnection,
    private _settings: () => IPanelSettings,
    onClick: () => void,
    private _cull: CullModel | null = null
  ) {
    super({ node: document.createElement('button') });
    this.addClass('jp-GpuDevbox-status');
    this.addClass('jp-StatusBar-TextItem');
    this.node.setAttribute('type', 'button');
    this._text = h('span', { className: 'jp-GpuDevbox-status-text' });
    this._sim = h('span', {
      className: 'jp-GpuDevbox-status-sim',
      text: 'sim',
      title: 'Simulated GPUs'
    });
    this.node.append(this._text, this._sim);
    this.node.addEventListener('click', onClick);
    _connection.changed.connect(this.render, this);
    _connection.sampled.connect(this.render, this);
    _cull?.changed.connect(this.render, this);
    this.render();
  }

  render(): void {
    if (!this.isVisible && this.isAttached) {
      return;
    }
    const content = statusItemContent(
      this._connection,
      this._settings(),
      this._cull?.warning ?? null
    );
    setText(this._text, content.text);
    const simulated = !!this._connection.status?.simulated;
    setAttr(this.node, 'title', content.tooltip);
    // the visible text, prefixed so the button says what it is; the tooltip describes it
    setAttr(
      this.node,
      'aria-label',
      `GPU status: ${content.text}${simulated ? ' (simulated GPUs)' : ''}`
    );
    toggleClass(this.node, 'jp-mod-warning', content.warning);
    toggleClass(this.node, 'jp-mod-stale', content.stale);
    setHidden(this._sim, !simulated);
  }

  protected onAfterShow(): void {
    this.render();
  }

  private _text: HTMLElement;
  private _sim: HTMLElement;
}
