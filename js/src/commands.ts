// The command palette's labloom entries: open the Flows panel, open a run by id, cancel the
// selected run, run a flow with parameters. "Selected" is the run tab in front, else the run
// last focused in the panel.
import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  Notification,
  WidgetTracker
} from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';

import { requestAPI } from './api';
import { FlowsPanel } from './panel';
import { RunView } from './runview';

export const CommandIDs = {
  openPanel: 'labloom:open-panel',
  openRun: 'labloom:open-run',
  cancelRun: 'labloom:cancel-run',
  launch: 'labloom:launch'
};

export function selectedRun(
  app: JupyterFrontEnd,
  tracker: WidgetTracker<MainAreaWidget<RunView>>,
  panel: FlowsPanel
): string | null {
  const tab = tracker.currentWidget;
  if (tab && app.shell.currentWidget === tab) {
    return tab.content.runId;
  }
  return panel.selectedRun;
}

export function addCommands(
  app: JupyterFrontEnd,
  tracker: WidgetTracker<MainAreaWidget<RunView>>,
  panel: FlowsPanel,
  trans: TranslationBundle,
  palette: ICommandPalette | null
): void {
  const category = trans.__('labloom');
  app.commands.addCommand(CommandIDs.openPanel, {
    label: trans.__('Open the Flows panel'),
    caption: trans.__('Runs and schedules of labloom flows'),
    execute: () => app.shell.activateById(panel.id)
  });
  app.commands.addCommand(CommandIDs.launch, {
    label: trans.__('Run a flow with parameters…'),
    execute: async () => {
      app.shell.activateById(panel.id);
      await panel.launch.open();
    }
  });
  app.commands.addCommand(CommandIDs.cancelRun, {
    label: trans.__('Cancel the selected run'),
    caption: trans.__('The run tab in front, else the run last selected in the Flows panel'),
    isEnabled: () => selectedRun(app, tracker, panel) !== null,
    execute: async () => {
      const id = selectedRun(app, tracker, panel);
      if (!id) {
        return;
      }
      try {
        await requestAPI(`runs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
        Notification.info(trans.__('Cancelling run %1', id), { autoClose: 3000 });
      } catch (error: any) {
        Notification.error(
          trans.__('[labloom] cannot cancel run %1: %2', id, error.message || error)
        );
      }
    }
  });
  // openRun itself is added by index.ts (it makes the tab); this asks for an id when none is
  // given, which is how the palette calls it.
  if (palette) {
    for (const command of [CommandIDs.openPanel, CommandIDs.launch, CommandIDs.cancelRun]) {
      palette.addItem({ command, category });
    }
    palette.addItem({ command: CommandIDs.openRun, category, args: {} });
  }
}

export async function askRunId(trans: TranslationBundle): Promise<string | null> {
  const answer = await InputDialog.getText({
    title: trans.__('Open a labloom run'),
    label: trans.__('Run id'),
    placeholder: 'e.g. 3f2a9c1b'
  });
  const id = (answer.value || '').trim();
  return answer.button.accept && id ? id : null;
}
