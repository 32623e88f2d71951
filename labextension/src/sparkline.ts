/**
 * Tiny SVG sparklines. A chart is one `<svg>` with a fixed viewBox, stretched to its box by
 * CSS; each update only rewrites the `d` attribute of one or two paths. Points are bucketed per
 * horizontal unit (min and max kept, so spikes stay visible) and the line breaks where samples
 * are missing (a gap longer than `gap` seconds, or a value the GPU did not report).
 */
import { Channel, Ring } from './store';

const SVG_NS = 'http://www.w3.org/2000/svg';

/** The viewBox width: the number of horizontal buckets. */
export const SPARK_WIDTH = 120;
/** The viewBox height. */
export const SPARK_HEIGHT = 28;

/** Where and how a series is drawn. */
export interface IScale {
  /** Unix seconds at the left and right edges. */
  tStart: number;
  tEnd: number;
  /** Values mapped to the bottom and top edges. */
  min: number;
  max: number;
  /** A time step longer than this (seconds) breaks the line. */
  gap: number;
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

/**
 * The SVG path of one channel of a ring, within the scale's time window.
 * Returns '' when nothing is visible.
 */
export function sparklinePath(
  ring: Ring,
  channel: Channel,
  scale: IScale
): string {
  const span = scale.tEnd - scale.tStart;
  const range = scale.max - scale.min;
  if (ring.length === 0 || span <= 0 || !(range > 0)) {
    return '';
  }
  const values = ring.columns[channel];
  const xPer = SPARK_WIDTH / span;
  const yPer = SPARK_HEIGHT / range;
  let d = '';
  let penDown = false;
  let lastT = -Infinity;
  let column = -1;
  let lo = 0;
  let hi = 0;
  let first = 0;
  let last = 0;

  const flush = (): void => {
    if (column < 0) {
      return;
    }
    const x = round1(column);
    const points = lo === hi ? [first] : first <= last ? [lo, hi] : [hi, lo];
    for (const v of points) {
      const clamped = v < scale.min ? scale.min : v > scale.max ? scale.max : v;
      const y = round1(SPARK_HEIGHT - (clamped - scale.min) * yPer);
      d += `${penDown ? 'L' : 'M'}${x} ${y}`;
      penDown = true;
    }
    column = -1;
  };

  for (let i = 0; i < ring.length; i++) {
    const p = ring.index(i);
    const t = ring.time[p];
    if (t < scale.tStart) {
      lastT = t;
      continue;
    }
    const v = values[p];
    if (Number.isNaN(v) || t - lastT > scale.gap) {
      flush();
      penDown = false;
    }
    lastT = t;
    if (Number.isNaN(v)) {
      continue;
    }
    const col = Math.min(Math.floor((t - scale.tStart) * xPer), SPARK_WIDTH);
    if (col !== column) {
      flush();
      column = col;
      lo = hi = first = last = v;
    } else {
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
      last = v;
    }
  }
  flush();
  return d;
}

/** The largest value of a channel within the window (NaN when none). */
export function windowMax(
  ring: Ring,
  channel: Channel,
  tStart: number
): number {
  const values = ring.columns[channel];
  let max = NaN;
  for (let i = ring.length - 1; i >= 0; i--) {
    const p = ring.index(i);
    if (ring.time[p] < tStart) {
      break;
    }
    const v = values[p];
    if (!Number.isNaN(v) && (Number.isNaN(max) || v > max)) {
      max = v;
    }
  }
  return max;
}

/** An SVG sparkline with one line per channel. */
export class Sparkline {
  readonly node: SVGSVGElement;
  private _paths: SVGPathElement[] = [];
  private _last: string[] = [];

  constructor(lines: number, label: string) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', `0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
    svg.classList.add('jp-GpuDevbox-spark');
    for (let i = 0; i < lines; i++) {
      const path = document.createElementNS(SVG_NS, 'path');
      path.classList.add(`jp-GpuDevbox-spark-line${i}`);
      svg.appendChild(path);
      this._paths.push(path);
      this._last.push('');
    }
    this.node = svg;
  }

  /** Redraw line `i` (only touches the DOM when the path changed). */
  draw(i: number, d: string): void {
    if (this._last[i] !== d) {
      this._last[i] = d;
      this._paths[i].setAttribute('d', d);
    }
  }
}
