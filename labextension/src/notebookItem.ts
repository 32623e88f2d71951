/**
 * A notebook's toolbar item: the GPU memory its own kernel holds (`GPU 3.0 GiB`), read from the
 * owners in the samples the stream brings. Hidden while the kernel holds none, or when the
 * `showNotebookGpuMemory` setting is off.
 */
import { Widget } from '@lumino/widgets';

import { DevboxConnection } from './connection';
import { h, setAttr, setHidden, setText } from './dom';
import { formatBytes } from './format';
import { kernelMemory } from './kernels';

/** The item's text for a kernel in the latest sample; empty when it holds no GPU memory. */
export function notebookItemText(
  connection: DevboxConnection,
  kernelId: string | null
): string {
  const latest = connection.store.latest;
  if (!kernelId || !latest) {
    return '';
  }
  const memory = kernelMemory(latest.gpus, kernelId);
  return memory === null ? '' : `GPU ${formatBytes(memory)}`;
}

export class NotebookGpuItem extends Widget {
  constructor(
    private _connection: DevboxConnection,
    private _kernelId: () => string | null,
    private _enabled: () => boolean
  ) {
    super();
    this.addClass('jp-GpuDevbox-notebook-item');
    this._text = h('span', { className: 'jp-ToolbarButtonComponent-label' });
    this.node.append(this._text);
    _connection.sampled.connect(this.render, this);
    this.render();
  }

  render(): void {
    const text = this._enabled()
      ? notebookItemText(this._connection, this._kernelId())
      : '';
    setText(this._text, text);
    setAttr(
      this.node,
      'title',
      text ? `This notebook's kernel holds ${text.slice(4)} of GPU memory` : ''
    );
    setHidden(this.node, !text);
  }

  private _text: HTMLElement;
}
