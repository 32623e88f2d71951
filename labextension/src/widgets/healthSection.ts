/**
 * The "Health" section: the doctor's checks grouped by status, each with its detail, remedy and
 * the environment (kernel) it is about, and a refresh button that makes the server re-check.
 */
import {
  PanelWithToolbar,
  refreshIcon,
  ToolbarButton
} from '@jupyterlab/ui-components';

import {
  checksSummary,
  ChecksModel,
  groupChecks,
  STATUS_LABELS
} from '../checks';
import { h, setHidden, setText, toggleClass, uniqueId } from '../dom';
import { formatAge } from '../format';
import { ICheck } from '../tokens';

const ICONS: Record<ICheck['status'], string> = {
  fail: '✖',
  warn: '▲',
  pass: '✔',
  skip: '○'
};

/** What each icon says to assistive technology (the colour and shape say it to the eye). */
const ICON_NAMES: Record<ICheck['status'], string> = {
  fail: 'Failed',
  warn: 'Warning',
  pass: 'Passed',
  skip: 'Skipped'
};

export class HealthSection extends PanelWithToolbar {
  constructor(private _model: ChecksModel) {
    super();
    this.addClass('jp-GpuDevbox-section');
    this.addClass('jp-GpuDevbox-health');
    this.title.label = 'Health';
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: 'Check again (re-gathers driver, CUDA and framework facts)',
        onClick: () => void this._model.load(true)
      })
    );
    this._summary = h('div', {
      className: 'jp-GpuDevbox-summary',
      attrs: { role: 'status' }
    });
    this._error = h('div', { className: 'jp-GpuDevbox-error' });
    this._list = h('div', { className: 'jp-GpuDevbox-checks' });
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
    const model = this._model;
    const checks = model.checks;
    toggleClass(this.node, 'jp-mod-loading', model.loading);
    let summary: string;
    if (model.loading) {
      summary = checks ? 'Checking again…' : 'Checking the CUDA stack…';
    } else if (checks) {
      const at = model.gatheredAt ?? model.loadedAt;
      const age = at
        ? ` · facts gathered ${formatAge(Math.max(0, Date.now() - at) / 1000)} ago`
        : '';
      summary = checksSummary(checks) + age;
    } else {
      summary = model.error ? '' : 'Not checked yet.';
    }
    setText(this._summary, summary);
    setText(this._error, model.error);
    setHidden(this._error, !model.error);
    if (model.loading || !checks) {
      return;
    }
    const key = JSON.stringify(checks);
    if (key === this._key) {
      return;
    }
    this._key = key;
    this._list.replaceChildren(
      ...groupChecks(checks).map(group => {
        const summaryId = uniqueId('checks');
        const details = h(
          'details',
          {
            className: 'jp-GpuDevbox-group',
            attrs: {
              'data-status': group.status,
              'aria-labelledby': summaryId
            }
          },
          h('summary', {
            text: `${STATUS_LABELS[group.status]} (${group.checks.length})`,
            attrs: { id: summaryId }
          }),
          ...group.checks.map(renderCheck)
        );
        details.open = group.status === 'fail' || group.status === 'warn';
        return details;
      })
    );
  }

  private _summary: HTMLElement;
  private _error: HTMLElement;
  private _list: HTMLElement;
  private _key = '';
}

function renderCheck(check: ICheck): HTMLElement {
  const titleId = uniqueId('check');
  const head = h(
    'div',
    { className: 'jp-GpuDevbox-check-head' },
    h('span', {
      className: 'jp-GpuDevbox-check-icon',
      text: ICONS[check.status],
      attrs: { role: 'img', 'aria-label': ICON_NAMES[check.status] }
    }),
    h('span', {
      className: 'jp-GpuDevbox-check-title',
      text: check.title,
      attrs: { id: titleId }
    })
  );
  if (check.environment) {
    head.append(
      h('span', {
        className: 'jp-GpuDevbox-chip',
        text: check.environment,
        title: 'Python environment (kernel)'
      })
    );
  }
  const item = h(
    'div',
    {
      className: 'jp-GpuDevbox-check',
      attrs: {
        'data-status': check.status,
        'data-check': check.id,
        role: 'group',
        'aria-labelledby': titleId
      },
      title: check.source ? `Source: ${check.source}` : ''
    },
    head
  );
  if (check.detail) {
    item.append(
      h('p', { className: 'jp-GpuDevbox-check-detail', text: check.detail })
    );
  }
  if (check.remedy && check.status !== 'pass') {
    item.append(
      h('p', { className: 'jp-GpuDevbox-remedy', text: `Fix: ${check.remedy}` })
    );
  }
  return item;
}
