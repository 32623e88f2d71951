/**
 * The user settings (schema/plugin.json), read defensively: a value of the wrong type or out of
 * range falls back to its default or is clamped, so a hand-edited setting cannot break the panel.
 */

/** The metrics that can have a sparkline. */
export const CHART_METRICS = [
  'utilization',
  'memory',
  'temperature',
  'power',
  'pcie'
] as const;

export type ChartMetric = (typeof CHART_METRICS)[number];

export interface IPanelSettings {
  /** Seconds between updates asked of the server (it never goes below its sampling interval). */
  refreshInterval: number;
  /** Minutes of history the sparklines show. */
  historyMinutes: number;
  /** Show the status bar item. */
  showStatusBar: boolean;
  /** Which metrics get a sparkline. */
  charts: ChartMetric[];
  /** Memory used fraction (0..1) from which memory is shown in the warning colour. */
  memoryWarning: number;
  /** Which side of the window the panel lives in (takes effect after a reload). */
  area: 'left' | 'right';
  /** Show, in each notebook's toolbar, the GPU memory its kernel holds. */
  showNotebookGpuMemory: boolean;
}

export const DEFAULT_SETTINGS: IPanelSettings = {
  refreshInterval: 1,
  historyMinutes: 5,
  showStatusBar: true,
  charts: [...CHART_METRICS],
  memoryWarning: 0.9,
  area: 'right',
  showNotebookGpuMemory: true
};

function clamp(
  value: unknown,
  min: number,
  max: number,
  fallback: number
): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return fallback;
  }
  return Math.min(max, Math.max(min, value));
}

/** Turn the setting registry's composite object into checked settings. */
export function readSettings(
  composite: Record<string, unknown>
): IPanelSettings {
  const d = DEFAULT_SETTINGS;
  const charts = Array.isArray(composite.charts)
    ? CHART_METRICS.filter(m => (composite.charts as unknown[]).includes(m))
    : d.charts;
  return {
    refreshInterval: clamp(
      composite.refreshInterval,
      0.1,
      3600,
      d.refreshInterval
    ),
    historyMinutes: clamp(
      composite.historyMinutes,
      0.5,
      1440,
      d.historyMinutes
    ),
    showStatusBar:
      typeof composite.showStatusBar === 'boolean'
        ? composite.showStatusBar
        : d.showStatusBar,
    charts,
    memoryWarning: clamp(composite.memoryWarning, 0.05, 1, d.memoryWarning),
    area:
      composite.area === 'left'
        ? 'left'
        : composite.area === 'right'
          ? 'right'
          : d.area,
    showNotebookGpuMemory:
      typeof composite.showNotebookGpuMemory === 'boolean'
        ? composite.showNotebookGpuMemory
        : d.showNotebookGpuMemory
  };
}
