/**
 * The "Benchmark" section: suite and device pickers, Run and Cancel, per-step progress, the
 * results as measured vs datasheet peak with percent bars, and the history of past runs.
 */
import {
  caretDownEmptyIcon,
  PanelWithToolbar,
  refreshIcon,
  ToolbarButton
} from '@jupyterlab/ui-components';

import {
  BenchModel,
  devicesFor,
  formatBenchValue,
  progressText
} from '../bench';
import { DevboxConnection } from '../connection';
import { h, setAttr, setHidden, setText, uniqueId } from '../dom';
import { formatDuration, formatPercent } from '../format';
import {
  IBenchmarkDevice,
  IBenchmarkMeasurement,
  IBenchmarkRun
} from '../tokens';

const STATE_LABELS: Record<string, string> = {
  running: 'Running',
  succeeded: 'Finished',
  failed: 'Failed',
  cancelled: 'Cancelled'
};

export class BenchSection extends PanelWithToolbar {
  constructor(
    private _model: BenchModel,
    private _connection: DevboxConnection
  ) {
    super();
    this.addClass('jp-GpuDevbox-section');
    this.addClass('jp-GpuDevbox-bench');
    this.title.label = 'Benchmark';
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: 'Reload the benchmark history',
        onClick: () => void this._model.refresh()
      })
    );
    this._suite = h('select', {
      className: 'jp-mod-styled',
      attrs: { name: 'suite' }
    });
    this._device = h('select', {
      className: 'jp-mod-styled',
      attrs: { name: 'device' }
    });
    for (const select of [this._suite, this._device]) {
      select.addEventListener('change', () => describeChoice(select));
    }
    this._run = h('button', {
      className: 'jp-Button jp-mod-styled jp-mod-accept',
      text: 'Run'
    });
    this._cancel = h('button', {
      className: 'jp-Button jp-mod-styled jp-mod-warn',
      text: 'Cancel'
    });
    this._run.addEventListener('click', () => void this.run());
    this._cancel.addEventListener('click', () => void this._model.cancel());
    this._note = h('p', { className: 'jp-GpuDevbox-muted' });
    this._error = h('div', {
      className: 'jp-GpuDevbox-error',
      attrs: { role: 'alert' }
    });
    this._progressFill = h('div', { className: 'jp-GpuDevbox-bar-fill' });
    this._progressBar = h(
      'div',
      {
        className: 'jp-GpuDevbox-bar',
        attrs: {
          role: 'progressbar',
          'aria-label': 'Benchmark progress',
          'aria-valuemin': '0',
          'aria-valuemax': '100'
        }
      },
      this._progressFill
    );
    this._progressText = h('div', { className: 'jp-GpuDevbox-progress-text' });
    this._progress = h(
      'div',
      { className: 'jp-GpuDevbox-progress' },
      this._progressBar,
      this._progressText
    );
    // the run's state is a live region: "Running", then "Finished" is announced
    this._runState = h('span', {
      className: 'jp-GpuDevbox-run-state',
      attrs: { role: 'status' }
    });
    this._runMeta = h('span', { className: 'jp-GpuDevbox-muted' });
    this._runHead = h(
      'div',
      { className: 'jp-GpuDevbox-run-head' },
      this._runState,
      this._runMeta
    );
    this._result = h('div', { className: 'jp-GpuDevbox-result' });
    this._history = h('details', { className: 'jp-GpuDevbox-history' });
    this.node.append(
      h(
        'div',
        { className: 'jp-GpuDevbox-body' },
        h(
          'div',
          { className: 'jp-GpuDevbox-controls' },
          field('Suite', this._suite),
          field('Device', this._device),
          h(
            'div',
            { className: 'jp-GpuDevbox-buttons' },
            this._run,
            this._cancel
          )
        ),
        this._note,
        this._error,
        this._progress,
        this._runHead,
        this._result,
        this._history
      )
    );
    _model.changed.connect(this.render, this);
    _connection.changed.connect(this._renderControls, this);
    this.render();
  }

  /** Start a run with what the pickers say (or the given suite). */
  async run(suite?: string): Promise<void> {
    const visible = this._connection.store.latest?.gpus.map(g => g.index) ?? [];
    await this._model.start(
      suite ?? (this._suite.value || 'quick'),
      devicesFor(this._device.value || 'cpu', visible)
    );
  }

  render(): void {
    const model = this._model;
    this._renderControls();
    setText(this._error, model.error);
    setHidden(this._error, !model.error);
    const run = model.current;
    const running = run?.state === 'running';
    setHidden(this._progress, !running);
    if (run && running) {
      const percent = (100 * run.progress.fraction).toFixed(1);
      const text = `${progressText(run.progress)} · ${formatDuration(run.duration)}`;
      this._progressFill.style.width = `${percent}%`;
      setAttr(this._progressBar, 'aria-valuenow', percent);
      setAttr(this._progressBar, 'aria-valuetext', text);
      setText(this._progressText, text);
    }
    this._renderHead(run);
    const key = run ? JSON.stringify(run) : '';
    if (key !== this._resultKey) {
      this._resultKey = key;
      this._result.replaceChildren(...(run ? renderRun(run) : []));
    }
    this._renderHistory();
  }

  private _renderHead(run: IBenchmarkRun | null): void {
    setHidden(this._runHead, !run);
    if (!run) {
      return;
    }
    setAttr(this._runHead, 'data-state', run.state);
    setText(this._runState, STATE_LABELS[run.state] ?? run.state);
    const env = run.environment;
    const versions =
      env.backend && env.versions[env.backend]
        ? ` ${env.versions[env.backend]}`
        : '';
    setText(
      this._runMeta,
      [
        `${run.suite} suite`,
        env.backend ? `${env.backend}${versions}` : '',
        formatDuration(run.duration)
      ]
        .filter(Boolean)
        .join(' · ')
    );
  }

  private _renderControls(): void {
    const model = this._model;
    const list = model.list;
    const suites = list ? Object.keys(list.suites) : ['quick', 'full'];
    syncOptions(
      this._suite,
      suites.map(name => [name, name, list?.suites[name]?.description ?? ''])
    );
    const status = this._connection.status;
    const gpus = this._connection.store.latest?.gpus ?? [];
    const simulated = !!status?.simulated;
    const options: Array<[string, string, string]> = [];
    if (!simulated) {
      for (const gpu of gpus) {
        options.push([
          String(gpu.index),
          `GPU ${gpu.index} · ${shortGpuName(gpu.name)}`,
          `GPU ${gpu.index} · ${gpu.name} · ${gpu.uuid}`
        ]);
      }
      if (gpus.length > 1) {
        options.push([
          'all',
          'All GPUs (one by one)',
          'Every GPU shown above, one after the other'
        ]);
      }
    }
    options.push([
      'cpu',
      'CPU (NumPy)',
      'Measures the host CPU: for machines without a GPU'
    ]);
    syncOptions(this._device, options);
    const running = model.running;
    const enabled = !list || list.enabled;
    this._run.disabled = running || !enabled || model.unavailable;
    setHidden(this._cancel, !running);
    this._suite.disabled = running;
    this._device.disabled = running;
    let note = '';
    if (list && !list.enabled) {
      note =
        'Benchmarks are disabled on this server (c.GPUDevbox.benchmarks_enabled).';
    } else if (simulated) {
      note =
        'The GPUs are simulated, so the benchmark measures the CPU instead.';
    }
    setText(this._note, note);
    setHidden(this._note, !note);
  }

  private _renderHistory(): void {
    const runs = this._model.list?.runs ?? [];
    const key = runs.map(r => `${r.id}:${r.state}`).join(',');
    if (key === this._historyKey) {
      return;
    }
    this._historyKey = key;
    const items = runs.map(run => {
      const item = h(
        'li',
        {
          attrs: { 'data-run': run.id, role: 'button', tabindex: '0' },
          title: 'Show this run'
        },
        h('span', {
          text: `${when(run.created)} · ${run.suite} · ${deviceNames(run)}`
        }),
        h('span', {
          className: 'jp-GpuDevbox-chip',
          text: run.flagged
            ? `${run.flagged} below expected`
            : (STATE_LABELS[run.state] ?? run.state)
        })
      );
      item.addEventListener('click', () => this._model.show(run));
      item.addEventListener('keydown', event => {
        if (event.key === 'Enter' || event.key === ' ') {
          this._model.show(run);
        }
      });
      return item;
    });
    this._history.replaceChildren(
      h('summary', {
        text: `History (${runs.length} run${runs.length === 1 ? '' : 's'})`
      }),
      runs.length
        ? h('ul', { className: 'jp-GpuDevbox-history-list' }, ...items)
        : h('p', {
            className: 'jp-GpuDevbox-muted',
            text: 'No runs recorded yet.'
          })
    );
  }

  private _suite: HTMLSelectElement;
  private _device: HTMLSelectElement;
  private _run: HTMLButtonElement;
  private _cancel: HTMLButtonElement;
  private _note: HTMLElement;
  private _error: HTMLElement;
  private _progress: HTMLElement;
  private _progressBar: HTMLElement;
  private _progressFill: HTMLElement;
  private _runHead: HTMLElement;
  private _runState: HTMLElement;
  private _runMeta: HTMLElement;
  private _progressText: HTMLElement;
  private _result: HTMLElement;
  private _history: HTMLDetailsElement;
  private _resultKey = '';
  private _historyKey: string | null = null;
}

/** Replace a select's options when they changed, keeping the user's choice when it still exists. */
function syncOptions(
  select: HTMLSelectElement,
  options: Array<[string, string, string]>
): void {
  const key = options.map(o => o.join('|')).join('\n');
  if (select.dataset.key === key) {
    return;
  }
  select.dataset.key = key;
  const previous = select.value;
  select.replaceChildren(
    ...options.map(([value, label, title]) =>
      h('option', { text: label, title, attrs: { value } })
    )
  );
  if (options.some(([value]) => value === previous)) {
    select.value = previous;
  }
  describeChoice(select);
}

/** A select's tooltip: the chosen option in full (its label may be shortened to fit). */
function describeChoice(select: HTMLSelectElement): void {
  const option = select.selectedOptions[0];
  setAttr(select, 'title', option ? option.title || option.text : '');
}

/** A picker and its visible label (which also names the picker for assistive technology). */
function field(label: string, select: HTMLSelectElement): HTMLElement {
  return h(
    'label',
    { className: 'jp-GpuDevbox-field' },
    h('span', { className: 'jp-GpuDevbox-label', text: label }),
    h(
      'span',
      { className: 'jp-GpuDevbox-select' },
      select,
      caretDownEmptyIcon.element({
        tag: 'span',
        className: 'jp-GpuDevbox-select-caret'
      })
    )
  );
}

/**
 * A GPU's name for the device picker, which must fit a side bar: without the vendor every GPU
 * here shares ("NVIDIA H100 80GB HBM3" is "H100 80GB HBM3"); the option's tooltip has it all.
 */
export function shortGpuName(name: string): string {
  return name.replace(/^NVIDIA\s+/, '') || name;
}

function when(unixSeconds: number): string {
  const date = new Date(unixSeconds * 1000);
  return date.toLocaleString(undefined, {
    dateStyle: 'short',
    timeStyle: 'short'
  });
}

function deviceNames(run: IBenchmarkRun): string {
  if (run.devices.length === 0) {
    return run.request.devices.length
      ? run.request.devices.map(i => `GPU ${i}`).join(', ')
      : 'CPU';
  }
  return run.devices
    .map(d => (d.index === null ? 'CPU' : `GPU ${d.index}`))
    .join(', ');
}

function renderRun(run: IBenchmarkRun): HTMLElement[] {
  const parts: HTMLElement[] = [];
  if (run.error) {
    parts.push(
      h('p', {
        className: 'jp-GpuDevbox-error',
        text: `${run.error.message} (${run.error.code})`
      })
    );
  }
  for (const device of run.devices) {
    parts.push(renderDevice(device));
  }
  return parts;
}

function renderDevice(device: IBenchmarkDevice): HTMLElement {
  const title =
    device.index === null
      ? `CPU · ${device.name ?? ''}`
      : `GPU ${device.index} · ${device.name ?? ''}`;
  const sheet = device.datasheet.model
    ? `Datasheet: ${device.datasheet.model}`
    : `No datasheet peak${device.datasheet.reason ? `: ${device.datasheet.reason}` : ''}`;
  const table = h('div', { className: 'jp-GpuDevbox-measures' });
  for (const m of device.measurements) {
    table.append(renderMeasurement(m));
  }
  return h(
    'div',
    { className: 'jp-GpuDevbox-run-device' },
    h('h4', { className: 'jp-GpuDevbox-card-name', text: title.trim() }),
    h('div', {
      className: 'jp-GpuDevbox-muted',
      text: sheet,
      title: device.datasheet.source ?? ''
    }),
    table
  );
}

function renderMeasurement(m: IBenchmarkMeasurement): HTMLElement {
  const labelId = uniqueId('measure');
  const row = h('div', {
    className: 'jp-GpuDevbox-measure',
    attrs: {
      'data-measurement': m.id,
      'data-status': m.status,
      role: 'group',
      'aria-labelledby': labelId,
      ...(m.flag ? { 'data-flag': m.flag } : {})
    }
  });
  row.append(
    h('span', {
      className: 'jp-GpuDevbox-measure-label',
      text: m.label,
      attrs: { id: labelId }
    })
  );
  if (m.status !== 'ok') {
    row.append(
      h('span', {
        className: 'jp-GpuDevbox-muted',
        text: m.reason ? `not measured: ${m.reason}` : 'not measured'
      })
    );
    return row;
  }
  const spread = m.spread
    ? `spread ${formatBenchValue(m.spread.min, m.unit)} – ${formatBenchValue(m.spread.max, m.unit)}`
    : '';
  row.append(
    h('span', {
      className: 'jp-GpuDevbox-measure-value',
      text: formatBenchValue(m.value, m.unit),
      title: spread
    })
  );
  if (m.peak !== null && m.percent_of_peak !== null) {
    const fill = h('div', { className: 'jp-GpuDevbox-bar-fill' });
    fill.style.width = `${Math.min(100, Math.max(0, m.percent_of_peak)).toFixed(1)}%`;
    row.append(
      h(
        'div',
        {
          className: 'jp-GpuDevbox-bar',
          attrs: {
            role: 'meter',
            'aria-label': `${m.label}: percent of peak`,
            'aria-valuenow': String(Math.round(m.percent_of_peak))
          }
        },
        fill
      ),
      h('span', {
        className: 'jp-GpuDevbox-measure-peak',
        text: `${formatPercent(m.percent_of_peak)} of ${formatBenchValue(m.peak, m.unit)}`,
        title: m.flag
          ? `Below what this GPU model normally reaches (${formatBenchValue(m.expected, m.unit)})`
          : 'Datasheet peak'
      })
    );
  } else {
    row.append(
      h('span', {
        className: 'jp-GpuDevbox-muted jp-GpuDevbox-measure-peak',
        text: 'no datasheet peak'
      })
    );
  }
  return row;
}
