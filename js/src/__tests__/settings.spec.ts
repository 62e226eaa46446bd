import { DEFAULT_SETTINGS, panelSettings } from '../settings';

describe('panelSettings', () => {
  it('gives the defaults for no settings', () => {
    expect(panelSettings(null)).toEqual(DEFAULT_SETTINGS);
    expect(panelSettings({})).toEqual(DEFAULT_SETTINGS);
  });

  it('reads seconds as milliseconds and keeps the filters', () => {
    expect(
      panelSettings({
        refreshInterval: 2.5,
        runsShown: 250,
        defaultState: 'Failed',
        defaultFilter: 'nightly'
      })
    ).toEqual({ refreshMs: 2500, runsShown: 250, defaultState: 'Failed', defaultFilter: 'nightly' });
  });

  it('clamps what the JSON editor lets past the schema', () => {
    const odd = panelSettings({
      refreshInterval: 0,
      runsShown: 100000,
      defaultState: 'Exploded',
      defaultFilter: 3
    });
    expect(odd.refreshMs).toBe(500); // never a tight polling loop
    expect(odd.runsShown).toBe(500); // the API's largest page
    expect(odd.defaultState).toBe('');
    expect(odd.defaultFilter).toBe('');
    expect(panelSettings({ refreshInterval: 'soon', runsShown: NaN }).refreshMs).toBe(1000);
  });
});
