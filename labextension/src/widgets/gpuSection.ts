/**
 * The "GPUs" section: the driver line, then a card per visible GPU, or — when NVML is unusable —
 * the server's reason and remedy instead of an empty panel.
 */
import { PanelWithToolbar } from '@jupyterlab/ui-components';

import { DevboxConnection } from '../connection';
import { h, setHidden, setText, uniqueId } from '../dom';
import { IPanelSettings } from '../settings';
import { IStatus } from '../tokens';
import { GpuCard, IWindow } from './gpuCard';

export class GpuSection extends PanelWithToolbar {
  constructor() {
    super();
    this.addClass('jp-GpuDevbox-section');
    this.addClass('jp-GpuDevbox-gpus');
    this.title.label = 'GPUs';
    this._driver = h('div', { className: 'jp-GpuDevbox-driver' });
    const titleId = uniqueId('notice');
    this._reasonTitle = h('div', {
      className: 'jp-GpuDevbox-notice-title',
      attrs: { id: titleId }
    });
    this._reason = h('p', { className: 'jp-GpuDevbox-reason' });
    this._remedy = h('p', { className: 'jp-GpuDevbox-remedy' });
    this._code = h('p', { className: 'jp-GpuDevbox-muted' });
    this._notice = h(
      'div',
      {
        className: 'jp-GpuDevbox-notice jp-GpuDevbox-nogpu',
        attrs: { role: 'status', 'aria-labelledby': titleId }
      },
      this._reasonTitle,
      this._reason,
      this._remedy,
      this._code
    );
    this._cardsBox = h('div', { className: 'jp-GpuDevbox-cards' });
    const body = h(
      'div',
      { className: 'jp-GpuDevbox-body' },
      this._driver,
      this._notice,
      this._cardsBox
    );
    this.node.append(body);
    setHidden(this._notice, true);
  }

  /** Redraw from the connection's status and store; returns how many GPU cards were drawn. */
  render(connection: DevboxConnection, settings: IPanelSettings): number {
    const status = connection.status;
    setText(this._driver, status ? driverLine(status) : '');
    const latest = connection.store.latest;
    const gpus = latest?.gpus ?? [];
    const reason =
      status && (!status.nvml.available || gpus.length === 0) ? status : null;
    this._showReason(reason, latest !== null);

    const seen = new Set<string>();
    const tEnd = latest?.timestamp ?? 0;
    const step = Math.max(status?.interval ?? 1, connection.effectiveInterval);
    const window: IWindow = {
      tStart: tEnd - settings.historyMinutes * 60,
      tEnd,
      gap: 3 * step + 1
    };
    let previous: HTMLElement | null = null;
    for (const gpu of gpus) {
      seen.add(gpu.uuid);
      let card = this._cards.get(gpu.uuid);
      if (!card) {
        card = new GpuCard();
        this._cards.set(gpu.uuid, card);
      }
      // keep the server's order without re-inserting cards that are already in place
      const expected: Element | null = previous
        ? previous.nextElementSibling
        : this._cardsBox.firstElementChild;
      if (expected !== card.node) {
        if (previous) {
          previous.after(card.node);
        } else {
          this._cardsBox.prepend(card.node);
        }
      }
      card.update(gpu, connection.store.ring(gpu.uuid), window, settings);
      previous = card.node;
    }
    this._cards.forEach((card, uuid) => {
      if (!seen.has(uuid)) {
        card.dispose();
        card.node.remove();
        this._cards.delete(uuid);
      }
    });
    return gpus.length;
  }

  /** How many points the charts traced in their last draw (0 while not laid out). */
  get chartPoints(): number {
    let points = 0;
    this._cards.forEach(card => (points += card.chartPoints));
    return points;
  }

  dispose(): void {
    this._cards.forEach(card => card.dispose());
    this._cards.clear();
    super.dispose();
  }

  private _showReason(status: IStatus | null, sampled: boolean): void {
    setHidden(this._notice, status === null || !sampled);
    if (!status) {
      return;
    }
    const nvml = status.nvml;
    setText(
      this._reasonTitle,
      nvml.available
        ? 'No GPU is visible to this server'
        : 'No GPU: NVML is not usable'
    );
    setText(
      this._reason,
      nvml.reason ?? 'The server reports no GPU for this session.'
    );
    setText(this._remedy, nvml.remedy ? `What to do: ${nvml.remedy}` : '');
    setHidden(this._remedy, !nvml.remedy);
    const code = [
      nvml.reason_code ? `reason: ${nvml.reason_code}` : '',
      nvml.nvml_error !== null ? `NVML error ${nvml.nvml_error}` : '',
      status.visible_devices ? `visible devices: ${status.visible_devices}` : ''
    ]
      .filter(Boolean)
      .join(' · ');
    setText(this._code, code);
  }

  private _driver: HTMLElement;
  private _notice: HTMLElement;
  private _reasonTitle: HTMLElement;
  private _reason: HTMLElement;
  private _remedy: HTMLElement;
  private _code: HTMLElement;
  private _cardsBox: HTMLElement;
  private _cards = new Map<string, GpuCard>();
}

function driverLine(status: IStatus): string {
  const nvml = status.nvml;
  const parts: string[] = [];
  if (nvml.driver_version) {
    parts.push(`Driver ${nvml.driver_version}`);
  }
  if (nvml.cuda_driver_version) {
    parts.push(`CUDA ${nvml.cuda_driver_version}`);
  }
  if (status.visible_gpu_count !== status.gpu_count) {
    parts.push(
      `${status.visible_gpu_count} of ${status.gpu_count} GPUs visible`
    );
  }
  return parts.join(' · ');
}
