/**
 * The panel's header: the simulated-backend badge and one banner that says what is wrong with
 * the link to the server (extension missing, forbidden, unreachable, stream lost and retrying,
 * versions out of step), with how old the shown data is.
 */
import { Widget } from '@lumino/widgets';

import { DevboxConnection } from '../connection';
import { h, setAttr, setHidden, setText, uniqueId } from '../dom';
import { formatAge } from '../format';

/** What the banner says: a level, a headline, details and whether "Retry now" makes sense. */
export interface IBannerContent {
  level: 'info' | 'warning' | 'error';
  title: string;
  lines: string[];
  retry: boolean;
}

/**
 * Decide the banner from the connection (pure: the tests call it directly).
 * Returns null when all is well.
 */
export function bannerContent(
  connection: DevboxConnection,
  frontendVersion: string,
  now: number
): IBannerContent | null {
  const retryIn =
    connection.retryAt !== null
      ? `Retrying in ${formatAge(Math.max(0, (connection.retryAt - now) / 1000))}.`
      : 'Retrying…';
  const age =
    connection.lastDataAt !== null
      ? `The data shown is ${formatAge((now - connection.lastDataAt) / 1000)} old.`
      : '';
  switch (connection.serverState) {
    case 'loading':
      return connection.link === 'waiting'
        ? {
            level: 'warning',
            title: 'Cannot reach the GPU service',
            lines: [connection.error, retryIn].filter(Boolean),
            retry: true
          }
        : {
            level: 'info',
            title: 'Connecting to the GPU service…',
            lines: [],
            retry: false
          };
    case 'missing':
      return {
        level: 'error',
        title: 'The gpu-devbox server extension is not running',
        lines: [
          'This JupyterLab has the gpu-devbox panel, but the Jupyter server it talks to does not answer gpu-devbox/api/status (404).',
          'Install it in the Python environment that runs the Jupyter server: pip install gpu-devbox',
          'Then check that `jupyter server extension list` shows "gpu_devbox enabled OK" and restart the server (on JupyterHub: stop and start your server).',
          retryIn
        ],
        retry: true
      };
    case 'forbidden':
      return {
        level: 'error',
        title: 'Not allowed to read GPU data',
        lines: [
          'The server refused access to the gpu-devbox resource (403). Ask your administrator to grant it, or log in again.',
          retryIn
        ],
        retry: true
      };
    case 'unreachable':
    case 'error':
      return {
        level: 'warning',
        title:
          connection.serverState === 'unreachable'
            ? 'Connection to the Jupyter server lost'
            : 'The GPU service answered with an error',
        lines: [connection.error, age, retryIn].filter(Boolean),
        retry: true
      };
    case 'ok':
      break;
  }
  if (connection.link === 'waiting') {
    return {
      level: 'warning',
      title: 'Live updates interrupted',
      lines: [connection.error, age, retryIn].filter(Boolean),
      retry: true
    };
  }
  const serverVersion = connection.status?.version;
  if (serverVersion && frontendVersion && serverVersion !== frontendVersion) {
    return {
      level: 'info',
      title: 'Panel and server versions differ',
      lines: [
        `This panel is gpu-devbox ${frontendVersion}, the server runs ${serverVersion}. Install the same version in both and reload the page.`
      ],
      retry: false
    };
  }
  return null;
}

/** The banner's icon per level, and what it says to assistive technology. */
const LEVELS: Record<IBannerContent['level'], [string, string]> = {
  info: ['ℹ', 'Information'],
  warning: ['▲', 'Warning'],
  error: ['✖', 'Error']
};

/** The header widget. */
export class Banner extends Widget {
  constructor(
    private _connection: DevboxConnection,
    private _version: string
  ) {
    super();
    this.addClass('jp-GpuDevbox-header');
    this._badge = h('span', {
      className: 'jp-GpuDevbox-badge',
      text: 'Simulated',
      title:
        'These GPUs are simulated (GPUDevbox.backend = "simulated"): the numbers are made up.'
    });
    const titleId = uniqueId('banner');
    this._icon = h('span', {
      className: 'jp-GpuDevbox-banner-icon',
      attrs: { role: 'img' }
    });
    this._title = h('span', { attrs: { id: titleId } });
    this._lines = h('div', { className: 'jp-GpuDevbox-banner-lines' });
    this._retry = h('button', {
      className: 'jp-Button jp-mod-styled jp-mod-reject jp-GpuDevbox-retry',
      text: 'Retry now'
    });
    this._retry.addEventListener('click', () => this._connection.retryNow());
    this._banner = h(
      'div',
      {
        className: 'jp-GpuDevbox-banner',
        attrs: { role: 'alert', 'aria-labelledby': titleId }
      },
      h(
        'div',
        { className: 'jp-GpuDevbox-banner-title' },
        this._icon,
        this._title
      ),
      this._lines,
      this._retry
    );
    this.node.append(
      h(
        'div',
        { className: 'jp-GpuDevbox-heading' },
        h('h2', { text: 'GPU Devbox', attrs: { id: this.headingId } }),
        this._badge
      ),
      this._banner
    );
  }

  /** Redraw; returns whether the banner shows a countdown or an age that needs ticking. */
  render(now = Date.now()): boolean {
    const status = this._connection.status;
    setHidden(this._badge, !status?.simulated);
    const content = bannerContent(this._connection, this._version, now);
    setHidden(this._banner, content === null);
    if (!content) {
      return false;
    }
    this._banner.dataset.level = content.level;
    const [icon, name] = LEVELS[content.level];
    setText(this._icon, icon);
    setAttr(this._icon, 'aria-label', name);
    setText(this._title, content.title);
    this._lines.replaceChildren(
      ...content.lines.map(line => h('p', { text: line }))
    );
    setHidden(this._retry, !content.retry);
    return content.retry;
  }

  /** The id of the panel's heading ("GPU Devbox"), which names the panel. */
  readonly headingId = uniqueId('heading');
  private _badge: HTMLElement;
  private _banner: HTMLElement;
  private _icon: HTMLElement;
  private _title: HTMLElement;
  private _lines: HTMLElement;
  private _retry: HTMLButtonElement;
}
