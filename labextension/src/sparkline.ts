/**
 * Tiny sparklines drawn on a canvas. Samples are bucketed horizontally (a bucket's min and max
 * are kept, so spikes stay visible) into integer coordinates of a fixed 1000 x 280 plane, and the
 * line breaks where samples are missing (a gap longer than `gap` seconds, or a value the GPU did
 * not report). The same tracing also produces an SVG path string (`sparklinePath`), which is how
 * the tests read a chart.
 *
 * A canvas, not SVG: an SVG path's `d` is a style property, so redrawing 40 charts per update
 * would restyle and lay out 40 elements; a canvas only repaints.
 */
import { Channel, Ring } from './store';

/** Horizontal buckets: at most two points (min and max) are drawn per bucket. */
export const SPARK_BUCKETS = 100;
/** The plane's width: integer coordinates, 10 units per bucket. */
export const SPARK_WIDTH = SPARK_BUCKETS * 10;
/** The plane's height (0 at the top). */
export const SPARK_HEIGHT = 280;
/** Min and max of a bucket closer than this (viewBox units, 1% of the height) draw one point. */
const FLAT = 3;

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

/** The index (0 = oldest) of the first sample at or after `t`, by binary search. */
export function firstAtOrAfter(ring: Ring, t: number): number {
  let lo = 0;
  let hi = ring.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ring.time[ring.index(mid)] < t) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

/** Where a traced line goes: a canvas context, or a path-string builder. */
export interface IPen {
  moveTo(x: number, y: number): void;
  lineTo(x: number, y: number): void;
}

/**
 * Trace one channel of a ring, within the scale's time window, onto a pen in plane coordinates.
 * Returns how many points were drawn.
 *
 * This runs for every chart on every update (40 charts with 8 GPUs), so it is one tight loop:
 * no closures, no allocation per point.
 */
export function traceSparkline(
  ring: Ring,
  channel: Channel,
  scale: IScale,
  pen: IPen
): number {
  const span = scale.tEnd - scale.tStart;
  const range = scale.max - scale.min;
  const length = ring.length;
  if (length === 0 || span <= 0 || !(range > 0)) {
    return 0;
  }
  const values = ring.columns[channel];
  const times = ring.time;
  const capacity = ring.capacity;
  const bucketsPer = SPARK_BUCKETS / span;
  const yPer = SPARK_HEIGHT / range;
  const min = scale.min;
  const max = scale.max;
  const tStart = scale.tStart;
  const gap = scale.gap;

  let points = 0;
  let down = false; // false: the next point starts a line (at the start, after a gap)
  let bucket = -1;
  let lo = 0;
  let hi = 0;
  let first = 0;
  let last = 0;

  const startIndex = firstAtOrAfter(ring, tStart);
  let p = (ring.start + startIndex) % capacity;
  let lastT = startIndex > 0 ? times[(p - 1 + capacity) % capacity] : -Infinity;
  for (let i = startIndex; i <= length; i++) {
    let t = 0;
    let v = NaN;
    let breakLine = true; // past the end: flush the last bucket
    let next = -1;
    if (i < length) {
      t = times[p];
      v = values[p];
      breakLine = v !== v || t - lastT > gap;
      lastT = t;
      if (v === v) {
        next = Math.floor((t - tStart) * bucketsPer);
        if (next > SPARK_BUCKETS) {
          next = SPARK_BUCKETS;
        }
      }
      p = p + 1 === capacity ? 0 : p + 1;
    }
    if (bucket >= 0 && (breakLine || next !== bucket)) {
      // flush the bucket: one point, or its min and max in time order
      const x = bucket * 10;
      const cLo = lo < min ? min : lo > max ? max : lo;
      const cHi = hi < min ? min : hi > max ? max : hi;
      const yLo = Math.round(SPARK_HEIGHT - (cLo - min) * yPer);
      const yHi = Math.round(SPARK_HEIGHT - (cHi - min) * yPer);
      let ya: number;
      let yb = -1;
      if (yLo - yHi <= FLAT) {
        const cFirst = first < min ? min : first > max ? max : first;
        ya = Math.round(SPARK_HEIGHT - (cFirst - min) * yPer);
      } else if (first <= last) {
        ya = yLo;
        yb = yHi;
      } else {
        ya = yHi;
        yb = yLo;
      }
      if (down) {
        pen.lineTo(x, ya);
      } else {
        pen.moveTo(x, ya);
        down = true;
      }
      points++;
      if (yb >= 0) {
        pen.lineTo(x, yb);
        points++;
      }
      bucket = -1;
    }
    if (breakLine) {
      down = false;
    }
    if (next >= 0) {
      if (next !== bucket) {
        bucket = next;
        lo = hi = first = last = v;
      } else {
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        last = v;
      }
    }
  }
  return points;
}

/** Builds an SVG path string (`M0 280L10 140...`). */
class PathPen implements IPen {
  d = '';
  moveTo(x: number, y: number): void {
    this.d += 'M' + x + ' ' + y;
  }
  lineTo(x: number, y: number): void {
    this.d += 'L' + x + ' ' + y;
  }
}

/** The SVG path (in plane coordinates) of one channel within the window; '' when empty. */
export function sparklinePath(
  ring: Ring,
  channel: Channel,
  scale: IScale
): string {
  const pen = new PathPen();
  traceSparkline(ring, channel, scale, pen);
  return pen.d;
}

/** The largest value of a channel within the window (NaN when none). */
export function windowMax(
  ring: Ring,
  channel: Channel,
  tStart: number
): number {
  const values = ring.columns[channel];
  let max = NaN;
  for (let i = firstAtOrAfter(ring, tStart); i < ring.length; i++) {
    const v = values[ring.index(i)];
    if (v === v && (max !== max || v > max)) {
      max = v;
    }
  }
  return max;
}

/** One line of a chart: which channel of which ring, on which scale. */
export interface ISeries {
  ring: Ring;
  channel: Channel;
  scale: IScale;
}

/** The CSS variables the lines are drawn in (line 0, line 1), read once per theme. */
const LINE_COLORS = ['--jp-brand-color1', '--jp-accent-color1'];

let themeKey: string | null = null;
let themeColors: string[] = [];

function colors(node: Element): string[] {
  const key = document.body.dataset.jpThemeName ?? '';
  if (key !== themeKey || themeColors.length === 0) {
    const style = getComputedStyle(node);
    themeColors = LINE_COLORS.map(
      name => style.getPropertyValue(name).trim() || '#1976d2'
    );
    themeKey = key;
  }
  return themeColors;
}

/** Which sparklines are on screen: one IntersectionObserver shared by all of them. */
const onScreen = new WeakMap<Element, Sparkline>();
let visibility: IntersectionObserver | null = null;

function watchVisibility(spark: Sparkline): void {
  if (typeof IntersectionObserver === 'undefined') {
    spark.setVisible(true); // no observer (tests): always draw
    return;
  }
  if (!visibility) {
    visibility = new IntersectionObserver(
      entries => {
        for (const entry of entries) {
          onScreen.get(entry.target)?.setVisible(entry.isIntersecting);
        }
      },
      { rootMargin: '200px 0px' }
    );
  }
  onScreen.set(spark.node, spark);
  visibility.observe(spark.node);
}

/**
 * A canvas sparkline. Its backing store follows the element's size through a ResizeObserver, so
 * drawing never reads layout; a chart that is not laid out yet (hidden) or scrolled out of view
 * keeps its lines and draws them when it appears.
 */
export class Sparkline {
  readonly node: HTMLCanvasElement;

  constructor(label: string) {
    const canvas = document.createElement('canvas');
    canvas.className = 'jp-GpuDevbox-spark';
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', label);
    // no backing store (a canvas defaults to 300 x 150) until the layout says how big it is
    canvas.width = 0;
    canvas.height = 0;
    this.node = canvas;
    if (typeof ResizeObserver !== 'undefined') {
      this._observer = new ResizeObserver(entries => {
        const box = entries[entries.length - 1].contentRect;
        this._resize(box.width, box.height);
      });
      this._observer.observe(canvas);
    }
    watchVisibility(this);
  }

  /** How many points the last draw traced (for tests and benchmarks). */
  get points(): number {
    return this._points;
  }

  /** Draw these lines (replacing what was drawn); deferred while the chart is off screen. */
  draw(series: ISeries[]): void {
    this._series = series;
    if (this._visible) {
      this._paint();
    } else {
      this._stale = true;
    }
  }

  /** Called by the visibility observer. */
  setVisible(visible: boolean): void {
    this._visible = visible;
    if (visible && this._stale) {
      this._paint();
    }
  }

  dispose(): void {
    this._observer?.disconnect();
    this._observer = null;
    visibility?.unobserve(this.node);
    onScreen.delete(this.node);
  }

  private _resize(width: number, height: number): void {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.round(width * ratio);
    const h = Math.round(height * ratio);
    if (w !== this.node.width || h !== this.node.height) {
      this.node.width = w;
      this.node.height = h;
      this._context = null;
    }
    this._paint();
  }

  private _paint(): void {
    const canvas = this.node;
    this._points = 0;
    this._stale = false;
    if (
      canvas.width === 0 ||
      canvas.height === 0 ||
      this._series.length === 0
    ) {
      return;
    }
    let ctx = this._context;
    if (!ctx) {
      ctx = canvas.getContext('2d');
      if (!ctx) {
        return;
      }
      this._context = ctx;
    }
    const ratio = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    // plane -> pixels, with half the line width kept clear at the top and bottom
    const pad = ratio;
    const sx = canvas.width / SPARK_WIDTH;
    const sy = (canvas.height - 2 * pad) / SPARK_HEIGHT;
    ctx.setTransform(sx, 0, 0, sy, 0, pad);
    ctx.lineWidth = 1.5 * ratio;
    ctx.lineJoin = 'round';
    const palette = colors(canvas);
    this._series.forEach((series, i) => {
      ctx!.beginPath();
      this._points += traceSparkline(
        series.ring,
        series.channel,
        series.scale,
        ctx!
      );
      ctx!.strokeStyle = palette[i % palette.length];
      // stroke in pixel space so the line width does not stretch with the plane
      ctx!.setTransform(1, 0, 0, 1, 0, 0);
      ctx!.stroke();
      ctx!.setTransform(sx, 0, 0, sy, 0, pad);
    });
  }

  private _series: ISeries[] = [];
  private _visible = false;
  private _stale = false;
  private _points = 0;
  private _context: CanvasRenderingContext2D | null = null;
  private _observer: ResizeObserver | null = null;
}
