/**
 * The one object the plugins share: the REST client, the live connection, the checks, the
 * benchmark runner, the settings, and who currently needs live data. The connection streams
 * only while someone needs it (the panel is visible, or the status bar item is on).
 */
import { ServerConnection } from '@jupyterlab/services';
import { Token } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import { DevboxApi } from './api';
import { BenchModel } from './bench';
import { ChecksModel } from './checks';
import { DevboxConnection, ISocketLike } from './connection';
import { CullModel } from './cull';
import { DEFAULT_SETTINGS, IPanelSettings } from './settings';
import { GpuStore } from './store';

/** The token other plugins (the status bar item) use to reach the shared service. */
export const IGpuDevbox = new Token<IGpuDevbox>(
  'gpu-devbox:IGpuDevbox',
  'The gpu-devbox client: live GPU data, checks and benchmarks.'
);

export interface IGpuDevbox {
  readonly api: DevboxApi;
  readonly connection: DevboxConnection;
  readonly checks: ChecksModel;
  readonly bench: BenchModel;
  /** The idle-stop warning and "Keep running". */
  readonly cull: CullModel;
  readonly settings: IPanelSettings;
  readonly settingsChanged: ISignal<IGpuDevbox, IPanelSettings>;
  /** Say whether `who` needs live data; the stream runs while anyone does. */
  demand(who: string, needed: boolean): void;
  /** Open the panel (set by the panel plugin). */
  openPanel(): void;
}

export class GpuDevboxService implements IGpuDevbox {
  constructor(serverSettings?: ServerConnection.ISettings) {
    const settings = serverSettings ?? ServerConnection.makeSettings();
    this.api = new DevboxApi(settings);
    this.connection = new DevboxConnection({
      api: this.api,
      createSocket: url =>
        new settings.WebSocket(url) as unknown as ISocketLike,
      store: new GpuStore(),
      interval: DEFAULT_SETTINGS.refreshInterval
    });
    this.checks = new ChecksModel(refresh => this.api.getChecks(refresh));
    this.bench = new BenchModel(this.api);
    this.cull = new CullModel({ connection: this.connection, api: this.api });
    this.connection.event.connect((_, message) => {
      if (message.type === 'benchmark') {
        this.bench.handleEvent(message.data);
      }
    });
  }

  readonly api: DevboxApi;
  readonly connection: DevboxConnection;
  readonly checks: ChecksModel;
  readonly bench: BenchModel;
  readonly cull: CullModel;

  get settings(): IPanelSettings {
    return this._settings;
  }

  get settingsChanged(): ISignal<this, IPanelSettings> {
    return this._settingsChanged;
  }

  /** Apply new settings (from the setting registry). */
  updateSettings(settings: IPanelSettings): void {
    this._settings = settings;
    this.connection.setInterval(settings.refreshInterval);
    this._settingsChanged.emit(settings);
  }

  demand(who: string, needed: boolean): void {
    if (needed) {
      this._demand.add(who);
    } else {
      this._demand.delete(who);
    }
    if (this._demand.size > 0) {
      this.connection.start();
    } else {
      this.connection.stop();
    }
  }

  /** Who needs live data now (for tests and the debugging console). */
  get demanders(): string[] {
    return [...this._demand];
  }

  openPanel(): void {
    this._open();
  }

  /** Set what {@link openPanel} does. */
  setOpener(open: () => void): void {
    this._open = open;
  }

  private _settings: IPanelSettings = DEFAULT_SETTINGS;
  private _settingsChanged = new Signal<this, IPanelSettings>(this);
  private _demand = new Set<string>();
  private _open: () => void = () => undefined;
}
