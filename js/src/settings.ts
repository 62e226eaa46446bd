// What a user may tune in Settings > labloom (schema/plugin.json), read into the panel's terms.
// The settings registry validates against the schema; this still clamps, so a value typed into
// the JSON editor past a bound (or an older schema's) never makes the panel poll in a loop.

export const RUN_STATES = ['', 'Running', 'Completed', 'Failed', 'Cancelled', 'Crashed'];

export interface IPanelSettings {
  refreshMs: number; // how often the panel reads runs while visible
  runsShown: number; // the first page's size; "Show older runs" adds as many
  defaultState: string; // a RUN_STATES entry
  defaultFilter: string;
}

export const DEFAULT_SETTINGS: IPanelSettings = {
  refreshMs: 1000,
  runsShown: 100,
  defaultState: '',
  defaultFilter: ''
};

function clamp(value: unknown, low: number, high: number, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value)
    ? Math.min(high, Math.max(low, value))
    : fallback;
}

/** The composite settings (as ISettingRegistry.ISettings.composite gives them) for the panel. */
export function panelSettings(raw: Record<string, unknown> | null | undefined): IPanelSettings {
  const given = raw || {};
  const state = given.defaultState;
  return {
    refreshMs: Math.round(clamp(given.refreshInterval, 0.5, 60, 1) * 1000),
    runsShown: Math.round(clamp(given.runsShown, 10, 500, DEFAULT_SETTINGS.runsShown)),
    defaultState: typeof state === 'string' && RUN_STATES.includes(state) ? state : '',
    defaultFilter: typeof given.defaultFilter === 'string' ? given.defaultFilter : ''
  };
}
