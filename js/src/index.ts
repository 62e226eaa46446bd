// labloom's JupyterLab extension: the Flows side panel, the "N flows running" status-bar item
// and a main-area tab per run, all reading labloom's REST API (labloom/api/).
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { LiveRuns } from './live';
import { CompareView } from './compareview';
import { FlowsPanel } from './panel';
import { RunView } from './runview';
import { RunningStatus } from './status';

import iconSvg from '../style/icon.svg';

const OPEN_RUN = 'labloom:open-run';
const OPEN_PANEL = 'labloom:open-panel';

export const labloomIcon = new LabIcon({ name: 'labloom:icon', svgstr: iconSvg });

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'labloom:plugin',
  description: 'The Flows panel, run views and status of labloom runs.',
  autoStart: true,
  optional: [ILayoutRestorer, IStatusBar, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    statusBar: IStatusBar | null
  ) => {
    const tracker = new WidgetTracker<MainAreaWidget<RunView>>({ namespace: 'labloom-run' });
    // The one listener of the server's pushed deltas, shared by every view.
    const live = new LiveRuns(app.serviceManager.events ?? null);

    app.commands.addCommand(OPEN_RUN, {
      label: args => `Open labloom run ${args.id ?? ''}`,
      execute: args => {
        const id = String(args.id);
        const open = tracker.find(w => w.content.runId === id);
        if (open) {
          app.shell.activateById(open.id);
          return open;
        }
        const content = new RunView(id, app.commands, live);
        const widget = new MainAreaWidget({ content });
        widget.id = `labloom-run-tab-${id}`;
        widget.title.icon = labloomIcon;
        content.title.changed.connect(() => {
          widget.title.label = content.title.label;
        });
        widget.title.label = content.title.label;
        void tracker.add(widget);
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        return widget;
      }
    });

    const openRun = (id: string) => void app.commands.execute(OPEN_RUN, { id });
    const compare = (ids: string[], flow: string) => {
      const widget = new MainAreaWidget({ content: new CompareView(ids, flow, openRun) });
      widget.id = `labloom-compare-tab-${ids.join('-')}`;
      widget.title.icon = labloomIcon;
      widget.title.label = widget.content.title.label;
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    };
    const panel = new FlowsPanel(openRun, live, compare);
    panel.title.icon = labloomIcon;
    app.shell.add(panel, 'left', { rank: 600 });

    app.commands.addCommand(OPEN_PANEL, {
      label: 'Show the labloom Flows panel',
      execute: () => app.shell.activateById(panel.id)
    });

    if (restorer) {
      restorer.add(panel, 'labloom-flows');
      void restorer.restore(tracker, {
        command: OPEN_RUN,
        args: w => ({ id: w.content.runId }),
        name: w => w.content.runId
      });
    }

    if (statusBar) {
      const status = new RunningStatus(live, () => void app.commands.execute(OPEN_PANEL));
      statusBar.registerStatusItem('labloom:running', {
        item: status,
        align: 'left',
        rank: 5
      });
    }
  }
};

export default plugin;
