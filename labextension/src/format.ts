/**
 * How numbers are shown. A missing value (`null`, `NaN`) is shown as an en dash.
 *
 * Memory and byte rates follow one rule, the same as the `gpu-devbox` CLI's
 * (`gpu_devbox/cli/common.py`; both are tested on `tests/fixtures/memory_format_cases.json`):
 * binary units as nvidia-smi's MiB (B, KiB, MiB, GiB, TiB, the largest that keeps the number
 * below 1024), whole bytes, otherwise one decimal below 100 and whole numbers from 100 on, half
 * rounded up. An H100 reporting 81559 MiB has `79.6 GiB`; two of them `159 GiB`.
 */
import { IGpu } from './tokens';

/** What the panel shows for a value the GPU does not report. */
export const MISSING = '–';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

function isNumber(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/**
 * `bytes` in units of 1024^unit as the rule writes it: `79.6`, `159`, `17`. The rounding is
 * spelled out (not `toFixed`, which rounds ties the other way from Python's format) so that the
 * panel and the CLI print the same digits for the same bytes.
 */
function amount(bytes: number, unit: number): string {
  const value = Math.abs(bytes) / 1024 ** unit;
  const sign = bytes < 0 ? '-' : '';
  if (unit > 0) {
    const tenths = Math.floor(value * 10 + 0.5);
    if (tenths < 1000) {
      return `${sign}${Math.floor(tenths / 10)}.${tenths % 10}`;
    }
  }
  return `${sign}${Math.floor(value + 0.5)}`;
}

/** The unit `bytes` is written in: the largest whose rounded number stays below 1024. */
function unitOf(bytes: number): number {
  let unit = 0;
  while (
    unit < UNITS.length - 1 &&
    Math.floor(Math.abs(bytes) / 1024 ** unit + 0.5) >= 1024
  ) {
    unit++;
  }
  return unit;
}

/** `79.6 GiB`, `480 MiB`, `1.5 KiB`, `17 B`. */
export function formatBytes(bytes: number | null | undefined): string {
  if (!isNumber(bytes)) {
    return MISSING;
  }
  const unit = unitOf(bytes);
  return `${amount(bytes, unit)} ${UNITS[unit]}`;
}

/** `12.3/79.6 GiB`: used and total in one unit, the total's (the larger one's). */
export function formatMemoryPair(
  used: number | null | undefined,
  total: number | null | undefined
): string {
  if (!isNumber(used) || !isNumber(total)) {
    return `${formatBytes(used)} / ${formatBytes(total)}`;
  }
  const unit = unitOf(Math.max(Math.abs(used), Math.abs(total)));
  return `${amount(used, unit)}/${amount(total, unit)} ${UNITS[unit]}`;
}

/** `1.2 GiB/s`. */
export function formatRate(bytesPerSecond: number | null | undefined): string {
  const text = formatBytes(bytesPerSecond);
  return text === MISSING ? text : `${text}/s`;
}

/** `45%`. */
export function formatPercent(value: number | null | undefined): string {
  return isNumber(value) ? `${Math.round(value)}%` : MISSING;
}

/** `54 °C`. */
export function formatTemperature(celsius: number | null | undefined): string {
  return isNumber(celsius) ? `${Math.round(celsius)} °C` : MISSING;
}

/** `312 W`, or `312 / 700 W` with a limit. */
export function formatPower(
  watts: number | null | undefined,
  limit?: number | null
): string {
  if (!isNumber(watts)) {
    return MISSING;
  }
  return isNumber(limit)
    ? `${Math.round(watts)} / ${Math.round(limit)} W`
    : `${Math.round(watts)} W`;
}

/** `1980 MHz`. */
export function formatClock(mhz: number | null | undefined): string {
  return isNumber(mhz) ? `${Math.round(mhz)} MHz` : MISSING;
}

/** How old something is, for "updated … ago": `3 s`, `4 min`, `2 h`. */
export function formatAge(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) {
    return MISSING;
  }
  if (seconds < 60) {
    return `${Math.floor(seconds)} s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min`;
  }
  return `${Math.floor(seconds / 3600)} h`;
}

/** A duration in seconds with a sensible precision: `0.42 s`, `12 s`, `3 min 5 s`. */
export function formatDuration(seconds: number | null | undefined): string {
  if (!isNumber(seconds) || seconds < 0) {
    return MISSING;
  }
  if (seconds < 10) {
    return `${trimZero(seconds.toFixed(2))} s`;
  }
  if (seconds < 60) {
    return `${Math.round(seconds)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

/** A measured figure with its unit: `812 TFLOP/s`, `3.02 TB/s`, `4.1 µs`. */
export function formatMeasure(
  value: number | null | undefined,
  unit: string
): string {
  if (!isNumber(value)) {
    return MISSING;
  }
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${unit}`.trim();
}

function trimZero(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

/** The figures the status bar shows, summed or averaged over the visible GPUs. */
export interface IAggregate {
  count: number;
  /** Mean utilization of the GPUs that report it, or null. */
  utilization: number | null;
  used: number | null;
  total: number | null;
  /** used / total, 0..1, or null. */
  memoryFraction: number | null;
}

/**
 * Aggregate the visible GPUs. A GPU in MIG mode counts the memory of its listed instances
 * (with MIG the server lists only the instances this server may use).
 */
export function aggregate(gpus: readonly IGpu[]): IAggregate {
  let utilSum = 0;
  let utilCount = 0;
  let used = 0;
  let total = 0;
  let memoryKnown = false;
  for (const gpu of gpus) {
    if (isNumber(gpu.utilization.gpu)) {
      utilSum += gpu.utilization.gpu;
      utilCount++;
    }
    const parts =
      gpu.mig.enabled && gpu.mig.instances.length > 0
        ? gpu.mig.instances.map(i => i.memory)
        : [gpu.memory];
    for (const part of parts) {
      if (isNumber(part.used) && isNumber(part.total)) {
        used += part.used;
        total += part.total;
        memoryKnown = true;
      }
    }
  }
  return {
    count: gpus.length,
    utilization: utilCount > 0 ? utilSum / utilCount : null,
    used: memoryKnown ? used : null,
    total: memoryKnown ? total : null,
    memoryFraction: memoryKnown && total > 0 ? used / total : null
  };
}

/** The status bar text, e.g. `GPU 45% · 12.3/79.6 GiB` (the tooltip lists each GPU). */
export function statusBarText(agg: IAggregate): string {
  const parts = [`GPU ${formatPercent(agg.utilization)}`];
  if (agg.used !== null && agg.total !== null) {
    parts.push(formatMemoryPair(agg.used, agg.total));
  }
  return parts.join(' · ');
}
