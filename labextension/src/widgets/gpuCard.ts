/**
 * One GPU's card: name, compute capability, a memory bar, a row per metric (current value and
 * sparkline), clocks, processes, and one small card per MIG instance. Built once, then updated
 * in place on every sample. A GPU the server cannot read right now (lost, failing) shows why
 * and what to do instead of its empty values.
 */
import { h, setAttr, setHidden, setText, toggleClass, uniqueId } from '../dom';
import {
  formatBytes,
  formatClock,
  formatMemoryPair,
  formatPercent,
  formatPower,
  formatRate,
  formatTemperature,
  MISSING
} from '../format';
import { ownerLabel } from '../kernels';
import { ChartMetric, IPanelSettings } from '../settings';
import { Sparkline, windowMax } from '../sparkline';
import { Channel, Ring } from '../store';
import { IGpu, IGpuProcess, IGpuReason, IMigInstance } from '../tokens';

/** A process's tooltip: its PIDs and whose it is. */
function processTitle(proc: IGpuProcess): string {
  let title = `PID ${proc.pid}`;
  if (proc.local_pid !== null && proc.local_pid !== proc.pid) {
    title += ` (${proc.local_pid} in this server)`;
  }
  if (proc.owner) {
    title += ` · ${ownerLabel(proc.owner)}`;
  } else if (proc.local_pid === null) {
    title += ' · whose it is cannot be told for certain';
  }
  return title;
}

/** The time window and gap every chart of one update shares. */
export interface IWindow {
  tStart: number;
  tEnd: number;
  gap: number;
}

interface IRow {
  metric: ChartMetric;
  row: HTMLElement;
  value: HTMLElement;
  spark: Sparkline;
}

const LABELS: Record<ChartMetric, string> = {
  utilization: 'Utilization',
  memory: 'Memory',
  temperature: 'Temperature',
  power: 'Power',
  pcie: 'PCIe'
};

/** A memory bar: used / total with a warning colour past a threshold. */
export class MemoryBar {
  readonly node: HTMLElement;
  private _fill: HTMLElement;
  private _meter: HTMLElement;
  private _text: HTMLElement;

  constructor(label: string) {
    this._fill = h('div', { className: 'jp-GpuDevbox-bar-fill' });
    this._text = h('span', { className: 'jp-GpuDevbox-bar-text' });
    this._meter = h(
      'div',
      {
        className: 'jp-GpuDevbox-bar',
        attrs: {
          role: 'meter',
          'aria-label': `${label} used`,
          'aria-valuemin': '0',
          'aria-valuemax': '100'
        }
      },
      this._fill
    );
    this.node = h(
      'div',
      { className: 'jp-GpuDevbox-memory' },
      h('span', { className: 'jp-GpuDevbox-label', text: label }),
      this._meter,
      this._text
    );
  }

  update(used: number | null, total: number | null, warning: number): void {
    const fraction = used !== null && total ? used / total : null;
    const percent = fraction === null ? 0 : Math.min(100, fraction * 100);
    // a transform, not a width: the bar's animation then needs no layout
    const scale = `scaleX(${(percent / 100).toFixed(4)})`;
    if (this._fill.style.transform !== scale) {
      this._fill.style.transform = scale;
    }
    const text =
      fraction === null
        ? formatMemoryPair(used, total)
        : `${formatMemoryPair(used, total)} (${formatPercent(fraction * 100)})`;
    setAttr(this._meter, 'aria-valuenow', percent.toFixed(0));
    setAttr(this._meter, 'aria-valuetext', text);
    toggleClass(
      this.node,
      'jp-mod-warning',
      fraction !== null && fraction >= warning
    );
    setText(this._text, text);
  }
}

/** A MIG instance's card. */
class MigCard {
  readonly node: HTMLElement;
  private _bar = new MemoryBar('Memory');
  private _title: HTMLElement;

  constructor() {
    const id = uniqueId('mig');
    this._title = h('div', {
      className: 'jp-GpuDevbox-mig-title',
      attrs: { id }
    });
    this.node = h(
      'div',
      {
        className: 'jp-GpuDevbox-mig',
        attrs: { 'data-kind': 'mig', role: 'group', 'aria-labelledby': id }
      },
      this._title,
      this._bar.node
    );
  }

  update(instance: IMigInstance, warning: number): void {
    const ids = `GI ${instance.gpu_instance_id ?? MISSING} · CI ${instance.compute_instance_id ?? MISSING}`;
    setText(
      this._title,
      `MIG ${instance.profile ?? instance.name ?? ''} · ${ids}`
    );
    setAttr(this.node, 'title', instance.uuid ?? '');
    this._bar.update(instance.memory.used, instance.memory.total, warning);
  }
}

/** A GPU's card. */
export class GpuCard {
  readonly node: HTMLElement;
  private _index: HTMLElement;
  private _model: HTMLElement;
  private _cc: HTMLElement;
  private _memory = new MemoryBar('Memory');
  private _rows: IRow[] = [];
  private _clocks: HTMLElement;
  private _procs: HTMLElement;
  private _procKey = '';
  private _migBox: HTMLElement;
  private _migCards: MigCard[] = [];
  private _values: HTMLElement;
  private _fault: HTMLElement;
  private _faultTitle: HTMLElement;
  private _faultReason: HTMLElement;
  private _faultRemedy: HTMLElement;
  private _faultCode: HTMLElement;

  constructor() {
    // "GPU 0 · " then the model as one box: in a narrow panel the model moves to a line of
    // its own, whole, instead of being cut or broken in the middle
    this._index = h('span', { className: 'jp-GpuDevbox-card-index' });
    this._model = h('span', { className: 'jp-GpuDevbox-card-model' });
    const titleId = uniqueId('gpu');
    const title = h(
      'h4',
      { className: 'jp-GpuDevbox-card-name', attrs: { id: titleId } },
      this._index,
      this._model
    );
    this._cc = h('span', {
      className: 'jp-GpuDevbox-chip',
      title: 'CUDA compute capability'
    });
    const metrics = h('div', { className: 'jp-GpuDevbox-metrics' });
    for (const metric of Object.keys(LABELS) as ChartMetric[]) {
      const value = h('span', { className: 'jp-GpuDevbox-value' });
      const spark = new Sparkline(`${LABELS[metric]} history`);
      const labelId = uniqueId('metric');
      const row = h(
        'div',
        {
          className: 'jp-GpuDevbox-row',
          attrs: {
            'data-metric': metric,
            role: 'group',
            'aria-labelledby': labelId
          }
        },
        h('span', {
          className: 'jp-GpuDevbox-label',
          text: LABELS[metric],
          attrs: { id: labelId }
        }),
        value,
        spark.node
      );
      metrics.append(row);
      this._rows.push({ metric, row, value, spark });
    }
    this._clocks = h('div', { className: 'jp-GpuDevbox-clocks' });
    this._procs = h('div', { className: 'jp-GpuDevbox-procs' });
    this._migBox = h('div', { className: 'jp-GpuDevbox-migs' });
    this._values = h(
      'div',
      { className: 'jp-GpuDevbox-card-values' },
      this._memory.node,
      metrics,
      this._clocks,
      this._procs,
      this._migBox
    );
    const faultId = uniqueId('fault');
    this._faultTitle = h('div', {
      className: 'jp-GpuDevbox-notice-title',
      attrs: { id: faultId }
    });
    this._faultReason = h('p', { className: 'jp-GpuDevbox-reason' });
    this._faultRemedy = h('p', { className: 'jp-GpuDevbox-remedy' });
    this._faultCode = h('p', { className: 'jp-GpuDevbox-muted' });
    this._fault = h(
      'div',
      {
        className: 'jp-GpuDevbox-notice jp-GpuDevbox-gpu-fault',
        attrs: { role: 'status', 'aria-labelledby': faultId }
      },
      this._faultTitle,
      this._faultReason,
      this._faultRemedy,
      this._faultCode
    );
    setHidden(this._fault, true);
    this.node = h(
      'section',
      {
        className: 'jp-GpuDevbox-card',
        attrs: { 'data-kind': 'gpu', 'aria-labelledby': titleId }
      },
      h('header', { className: 'jp-GpuDevbox-card-header' }, this._cc, title),
      this._fault,
      this._values
    );
  }

  /** How many points the card's charts traced in their last draw. */
  get chartPoints(): number {
    return this._rows.reduce((sum, row) => sum + row.spark.points, 0);
  }

  /** Stop observing the charts' sizes (the card is going away). */
  dispose(): void {
    this._rows.forEach(row => row.spark.dispose());
  }

  /** Show the latest sample and redraw the charts over the window. */
  update(
    gpu: IGpu,
    ring: Ring | undefined,
    window: IWindow,
    settings: IPanelSettings
  ): void {
    setText(this._index, `GPU ${gpu.index} · `);
    setText(this._model, gpu.name);
    setAttr(
      this.node,
      'title',
      `${gpu.uuid}${gpu.pci_bus_id ? ` · PCI ${gpu.pci_bus_id}` : ''}`
    );
    setText(
      this._cc,
      gpu.compute_capability ? `sm ${gpu.compute_capability}` : 'sm ?'
    );
    this._showFault(gpu.reason);
    if (gpu.reason) {
      return; // its values are all null: the reason says why, not a card of dashes
    }
    this._memory.update(
      gpu.memory.used,
      gpu.memory.total,
      settings.memoryWarning
    );

    for (const row of this._rows) {
      setText(row.value, currentValue(row.metric, gpu));
      const charted =
        settings.charts.includes(row.metric) && ring !== undefined;
      toggleClass(row.row, 'jp-mod-nochart', !charted);
      if (charted && ring) {
        drawRow(row, gpu, ring, window);
      }
    }

    setText(
      this._clocks,
      `Clocks: SM ${formatClock(gpu.clocks.sm)} (max ${formatClock(gpu.clocks.sm_max)}) · ` +
        `memory ${formatClock(gpu.clocks.memory)}`
    );
    this._updateProcesses(gpu);
    this._updateMig(gpu, settings.memoryWarning);
  }

  /** Show why the GPU cannot be read (or nothing, when it can). */
  private _showFault(reason: IGpuReason | null): void {
    toggleClass(this.node, 'jp-mod-unreadable', reason !== null);
    setHidden(this._fault, reason === null);
    setHidden(this._values, reason !== null);
    if (!reason) {
      return;
    }
    setText(
      this._faultTitle,
      reason.code === 'gpu_lost'
        ? 'This GPU is lost'
        : 'This GPU cannot be read'
    );
    setText(this._faultReason, reason.message);
    setText(this._faultRemedy, `What to do: ${reason.remedy}`);
    setText(
      this._faultCode,
      [
        `reason: ${reason.code}`,
        reason.nvml_error !== null ? `NVML error ${reason.nvml_error}` : ''
      ]
        .filter(Boolean)
        .join(' · ')
    );
  }

  private _updateProcesses(gpu: IGpu): void {
    const procs = gpu.processes;
    const key =
      procs === null
        ? 'null'
        : procs
            .map(
              p =>
                `${p.pid}:${p.used_memory}:${p.owner ? ownerLabel(p.owner) : ''}`
            )
            .join(',');
    if (key === this._procKey) {
      return;
    }
    this._procKey = key;
    this._procs.replaceChildren();
    if (procs === null) {
      this._procs.append(
        h('span', {
          className: 'jp-GpuDevbox-muted',
          text: 'Processes: not reported'
        })
      );
      return;
    }
    if (procs.length === 0) {
      this._procs.append(
        h('span', {
          className: 'jp-GpuDevbox-muted',
          text: 'No processes on this GPU'
        })
      );
      return;
    }
    const labelId = uniqueId('procs');
    const list = h('ul', {
      className: 'jp-GpuDevbox-proc-list',
      attrs: { 'aria-labelledby': labelId }
    });
    for (const proc of procs) {
      list.append(
        h(
          'li',
          {},
          // whose it is, where it is this server's; the PID otherwise
          h('span', {
            text:
              proc.owner && proc.owner.type !== 'other'
                ? ownerLabel(proc.owner)
                : `PID ${proc.pid}`,
            title: processTitle(proc)
          }),
          h('span', { text: formatBytes(proc.used_memory) })
        )
      );
    }
    this._procs.append(
      h('span', {
        className: 'jp-GpuDevbox-label',
        text: 'Processes',
        attrs: { id: labelId }
      }),
      list
    );
  }

  private _updateMig(gpu: IGpu, warning: number): void {
    const instances = gpu.mig.enabled ? gpu.mig.instances : [];
    while (this._migCards.length > instances.length) {
      this._migCards.pop()!.node.remove();
    }
    while (this._migCards.length < instances.length) {
      const card = new MigCard();
      this._migCards.push(card);
      this._migBox.append(card.node);
    }
    instances.forEach((instance, i) =>
      this._migCards[i].update(instance, warning)
    );
    setHidden(this._migBox, instances.length === 0);
  }
}

function currentValue(metric: ChartMetric, gpu: IGpu): string {
  switch (metric) {
    case 'utilization':
      return `${formatPercent(gpu.utilization.gpu)} · mem ${formatPercent(gpu.utilization.memory)}`;
    case 'memory':
      return formatBytes(gpu.memory.used);
    case 'temperature':
      return formatTemperature(gpu.temperature.gpu);
    case 'power':
      return formatPower(gpu.power.usage, gpu.power.limit);
    case 'pcie':
      return `↑${formatRate(gpu.pcie.tx)} ↓${formatRate(gpu.pcie.rx)}`;
  }
}

function drawRow(row: IRow, gpu: IGpu, ring: Ring, window: IWindow): void {
  const scale = { ...window, min: 0, max: 100 };
  switch (row.metric) {
    case 'utilization':
      row.spark.draw([{ ring, channel: Channel.Utilization, scale }]);
      return;
    case 'memory':
      scale.max =
        gpu.memory.total ??
        headroom(windowMax(ring, Channel.MemoryUsed, window.tStart));
      row.spark.draw([{ ring, channel: Channel.MemoryUsed, scale }]);
      return;
    case 'temperature':
      // 0-100 °C: GPUs throttle well below 100, and the value beside the chart is exact
      row.spark.draw([{ ring, channel: Channel.Temperature, scale }]);
      return;
    case 'power':
      scale.max =
        gpu.power.limit ??
        headroom(windowMax(ring, Channel.Power, window.tStart));
      row.spark.draw([{ ring, channel: Channel.Power, scale }]);
      return;
    case 'pcie': {
      const tx = windowMax(ring, Channel.PcieTx, window.tStart);
      const rx = windowMax(ring, Channel.PcieRx, window.tStart);
      scale.max = Math.max(headroom(Math.max(tx || 0, rx || 0)), 1024 * 1024);
      row.spark.draw([
        { ring, channel: Channel.PcieTx, scale },
        { ring, channel: Channel.PcieRx, scale }
      ]);
      return;
    }
  }
}

/** A chart ceiling 10% above the largest value (1 when there is none). */
function headroom(max: number): number {
  return Number.isFinite(max) && max > 0 ? max * 1.1 : 1;
}
