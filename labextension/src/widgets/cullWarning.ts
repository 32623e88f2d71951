/**
 * The idle-stop warning at the top of the GPU panel ("GPU idle for 1 h 45 min — this server
 * stops at 16:30 unless the GPU is used", with "Keep running"), and the JupyterLab notification
 * raised once when the warning starts.
 */
import { Widget } from '@lumino/widgets';

import { CullModel } from '../cull';
import { h, setHidden, setText } from '../dom';

/** The panel's warning; hidden while there is nothing to warn about. */
export class CullWarningBar extends Widget {
  constructor(private _model: CullModel) {
    super();
    this.addClass('jp-GpuDevbox-cull');
    this.node.setAttribute('role', 'alert');
    this._text = h('span', { className: 'jp-GpuDevbox-cull-text' });
    this._note = h('p', { className: 'jp-GpuDevbox-cull-note' });
    this._error = h('p', { className: 'jp-GpuDevbox-cull-error' });
    this._button = h('button', {
      className:
        'jp-Button jp-mod-styled jp-mod-warn jp-GpuDevbox-keep-running',
      text: 'Keep running'
    });
    this._button.addEventListener(
      'click',
      () => void this._model.keepRunning()
    );
    this.node.append(
      h(
        'div',
        { className: 'jp-GpuDevbox-cull-title' },
        h('span', {
          className: 'jp-GpuDevbox-cull-icon',
          text: '▲',
          attrs: { role: 'img', 'aria-label': 'Warning' }
        }),
        this._text
      ),
      this._note,
      this._error,
      this._button
    );
    _model.changed.connect(() => this.render(), this);
    this.render();
  }

  /** Redraw; the idle time is kept current every second while the warning shows. */
  render(): void {
    const warning = this._model.warning;
    const shown = warning !== null;
    setHidden(this.node, !shown);
    if (shown) {
      setText(this._text, warning.text);
      setText(this._note, warning.note);
      setHidden(this._button, warning.keepRunningLeft === 0);
      this._button.disabled = this._model.pending;
    }
    const error = this._model.error;
    setText(this._error, error);
    setHidden(this._error, !shown || !error);
    if (shown && this._ticker === null) {
      this._ticker = setInterval(() => this.render(), 1000);
    } else if (!shown && this._ticker !== null) {
      clearInterval(this._ticker);
      this._ticker = null;
    }
  }

  dispose(): void {
    if (this._ticker !== null) {
      clearInterval(this._ticker);
      this._ticker = null;
    }
    super.dispose();
  }

  private _text: HTMLElement;
  private _note: HTMLElement;
  private _error: HTMLElement;
  private _button: HTMLButtonElement;
  private _ticker: ReturnType<typeof setInterval> | null = null;
}

/** The part of JupyterLab's `Notification` the notifier uses (a fake in tests). */
export interface INotifications {
  warning(
    message: string,
    options: {
      autoClose: false;
      actions: { label: string; caption?: string; callback: () => void }[];
    }
  ): string;
  dismiss(id: string): void;
}

/**
 * Raise a notification once each time the warning starts, and withdraw it when the warning ends
 * (the GPU was used, or "Keep running" was pressed). Returns what stops it.
 */
export function notifyCullWarnings(
  model: CullModel,
  notifications: INotifications,
  openPanel: () => void
): () => void {
  let id: string | null = null;
  const dismiss = (): void => {
    if (id !== null) {
      notifications.dismiss(id);
      id = null;
    }
  };
  const onWarning = (_: CullModel, warned: boolean): void => {
    dismiss();
    const warning = model.warning;
    if (!warned || !warning) {
      return;
    }
    const actions: { label: string; caption?: string; callback: () => void }[] =
      [];
    if (warning.keepRunningLeft > 0) {
      actions.push({
        label: 'Keep running',
        caption: warning.note,
        callback: () => void model.keepRunning()
      });
    }
    actions.push({ label: 'Open GPU panel', callback: openPanel });
    id = notifications.warning(warning.text, { autoClose: false, actions });
  };
  model.warningChanged.connect(onWarning);
  if (model.warned) {
    onWarning(model, true);
  }
  return () => {
    model.warningChanged.disconnect(onWarning);
    dismiss();
  };
}
