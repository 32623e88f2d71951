/**
 * The GPU side panel: a `SidePanel` with a header (badge, connection banner) and accordion
 * sections (GPUs, Health, Benchmark). It redraws only while visible; a hidden panel marks
 * itself dirty and catches up when shown.
 */
import { LabIcon, SidePanel } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { AccordionPanel, Panel, Widget } from '@lumino/widgets';

import { DevboxConnection } from '../connection';
import { IPanelSettings } from '../settings';
import { Banner } from './banner';
import { GpuSection } from './gpuSection';

/** Below this fraction of the panel's height an open section counts as having no room. */
const MIN_SHARE = 0.05;

export interface IGpuPanelOptions {
  connection: DevboxConnection;
  settings: () => IPanelSettings;
  version: string;
  icon: LabIcon;
  /** Further sections (Health, Benchmark), in order. */
  sections: Widget[];
}

export class GpuPanel extends SidePanel {
  constructor(options: IGpuPanelOptions) {
    super({ header: new Panel() });
    this.id = 'gpu-devbox-panel';
    this.addClass('jp-GpuDevbox-panel');
    this.title.icon = options.icon;
    this.title.caption = 'GPUs';
    this.connection = options.connection;
    this._settings = options.settings;
    this._banner = new Banner(options.connection, options.version);
    // a landmark named by the panel's heading ("GPU Devbox")
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-labelledby', this._banner.headingId);
    this.header.addWidget(this._banner);
    this.gpuSection = new GpuSection();
    this.addWidget(this.gpuSection);
    for (const section of options.sections) {
      this.addWidget(section);
    }
    // The GPUs get the panel's height; the other sections open on demand (or by their command).
    const accordion = this.content as AccordionPanel;
    options.sections.forEach((_, i) => accordion.collapse(i + 1));
    // A section opened later gets a fair share of the height, not the sliver left over.
    accordion.expansionToggled.connect(() => this._shareHeight());
    this.connection.changed.connect(this._onChanged, this);
    this.connection.sampled.connect(this._onSampled, this);
  }

  readonly connection: DevboxConnection;
  readonly gpuSection: GpuSection;

  /** Emitted when the panel is shown (true) or hidden (false). */
  get visibilityChanged(): ISignal<this, boolean> {
    return this._visibilityChanged;
  }

  /** Duration (ms) of the last GPU render, for the render benchmark. */
  get lastRenderMs(): number {
    return this._lastRenderMs;
  }

  /**
   * Give the open sections a fair share of the height again if one of them has none. JupyterLab
   * restores a side panel's sections as open with the sizes it saved, which can leave an open
   * section 0 px high after a reload; call this once the layout is restored.
   */
  fitOpenSections(): void {
    const accordion = this.content as AccordionPanel;
    const sizes = accordion.relativeSizes();
    const starved = accordion.widgets.some(
      (widget, i) => !widget.isHidden && (sizes[i] ?? 0) < MIN_SHARE
    );
    if (starved) {
      this._shareHeight();
    }
  }

  /** Redraw everything now. */
  refresh(): void {
    this._renderHeader();
    this.renderGpus();
  }

  /** Redraw the GPU cards; returns how many were drawn. */
  renderGpus(): number {
    const start = performance.now();
    const count = this.gpuSection.render(this.connection, this._settings());
    this._lastRenderMs = performance.now() - start;
    this._dirty = false;
    return count;
  }

  dispose(): void {
    this._stopTicker();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.refresh();
    this._visibilityChanged.emit(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._stopTicker();
    this._visibilityChanged.emit(false);
  }

  private _shareHeight(): void {
    const accordion = this.content as AccordionPanel;
    const open = accordion.widgets.map(w => (w.isHidden ? 0 : 1));
    if (open.some(Boolean)) {
      accordion.setRelativeSizes(open);
    }
  }

  private _onChanged(): void {
    if (this.isVisible) {
      this.refresh();
    } else {
      this._dirty = true;
    }
  }

  private _onSampled(): void {
    if (this.isVisible) {
      this.renderGpus();
    } else {
      this._dirty = true;
    }
  }

  private _renderHeader(): void {
    const ticking = this._banner.render();
    if (ticking && this._ticker === null) {
      // a countdown and a data age to keep current, only while something is wrong
      this._ticker = setInterval(() => {
        if (!this._banner.render()) {
          this._stopTicker();
        }
      }, 1000);
    } else if (!ticking) {
      this._stopTicker();
    }
  }

  private _stopTicker(): void {
    if (this._ticker !== null) {
      clearInterval(this._ticker);
      this._ticker = null;
    }
  }

  /** True when samples arrived while hidden. */
  get dirty(): boolean {
    return this._dirty;
  }

  private _settings: () => IPanelSettings;
  private _banner: Banner;
  private _dirty = false;
  private _lastRenderMs = 0;
  private _ticker: ReturnType<typeof setInterval> | null = null;
  private _visibilityChanged = new Signal<this, boolean>(this);
}
