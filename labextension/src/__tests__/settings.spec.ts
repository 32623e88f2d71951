import { DEFAULT_SETTINGS, readSettings } from '../settings';

describe('readSettings', () => {
  it('uses the defaults for an empty composite', () => {
    expect(readSettings({})).toEqual(DEFAULT_SETTINGS);
  });

  it('clamps numbers and drops unknown chart names', () => {
    const s = readSettings({
      refreshInterval: 0,
      historyMinutes: 1e9,
      charts: ['power', 'fan', 'utilization'],
      memoryWarning: 'high',
      area: 'left',
      showStatusBar: false
    });
    expect(s.refreshInterval).toBe(0.1);
    expect(s.historyMinutes).toBe(1440);
    expect(s.charts).toEqual(['utilization', 'power']);
    expect(s.memoryWarning).toBe(DEFAULT_SETTINGS.memoryWarning);
    expect(s.area).toBe('left');
    expect(s.showStatusBar).toBe(false);
  });
});
