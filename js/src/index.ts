// labloom's JupyterLab (and Notebook 7) extension: the Flows panel, the "N flows running"
// status-bar item, a main-area tab per run and the palette's commands, all reading labloom's
// REST API (labloom/api/). In Notebook 7 the panel is a tab of the file browser page (/tree)
// and a side panel of the notebook view; Notebook 7 has no status bar, so there the tab's
// label carries the running count, and a run opens in its bottom panel.
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';
import { INotebookTree } from '@jupyter-notebook/tree';

import { cellRunFactory } from './cellrun';
import { LiveRuns } from './live';
import { CompareView } from './compareview';
import { addCommands, askRunId, CommandIDs } from './commands';
import { FlowsPanel } from './panel';
import { RunView } from './runview';
import { panelSettings } from './settings';
import { RunningStatus } from './status';

import iconSvg from '../style/icon.svg';

const PLUGIN_ID = 'labloom:plugin';

export const labloomIcon = new LabIcon({ name: 'labloom:icon', svgstr: iconSvg });

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The Flows panel, run views and status of labloom runs.',
  autoStart: true,
  optional: [
    ILayoutRestorer,
    IStatusBar,
    ILabShell,
    ISettingRegistry,
    ICommandPalette,
    ITranslator,
    INotebookTree,
    IRenderMimeRegistry
  ],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    statusBar: IStatusBar | null,
    labShell: ILabShell | null,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    translator: ITranslator | null,
    notebookTree: INotebookTree | null,
    rendermime: IRenderMimeRegistry | null
  ) => {
    const trans = (translator || nullTranslator).load('labloom');
    const tracker = new WidgetTracker<MainAreaWidget<RunView>>({ namespace: 'labloom-run' });
    // The one listener of the server's pushed deltas, shared by every view.
    const live = new LiveRuns(app.serviceManager.events ?? null);

    app.commands.addCommand(CommandIDs.openRun, {
      label: args =>
        args.id ? trans.__('Open labloom run %1', String(args.id)) : trans.__('Open a run by id…'),
      execute: async args => {
        const id = args.id ? String(args.id) : await askRunId(trans);
        if (!id) {
          return null;
        }
        // A compare tab's row: that task run's logs and traceback in the run's panel.
        const taskRun = args.task_run ? String(args.task_run) : null;
        const open = tracker.find(w => w.content.runId === id);
        if (open) {
          app.shell.activateById(open.id);
          if (taskRun) {
            open.content.showTaskRun(taskRun);
          }
          return open;
        }
        const content = new RunView(id, app.commands, live, trans);
        const widget = new MainAreaWidget({ content });
        widget.id = `labloom-run-tab-${id}`;
        widget.addClass('labloom-RunTab');
        widget.title.icon = labloomIcon;
        content.title.changed.connect(() => {
          widget.title.label = content.title.label;
        });
        widget.title.label = content.title.label;
        void tracker.add(widget);
        // Notebook 7's main area holds its one notebook or file browser: a run opens in its
        // bottom panel there (as its log console does), in a main-area tab in Lab.
        if (!labShell) {
          // its bottom panel is sized by its widgets' minimum height
          content.node.style.minHeight = '45vh';
        }
        app.shell.add(widget, labShell ? 'main' : 'down');
        app.shell.activateById(widget.id);
        if (taskRun) {
          content.showTaskRun(taskRun);
        }
        return widget;
      }
    });

    const openRun = (id: string, taskRun?: string) =>
      void app.commands.execute(CommandIDs.openRun, taskRun ? { id, task_run: taskRun } : { id });
    // One compare tab per set of runs: a second click on Compare (or the same runs ticked in
    // another order) brings it to the front; it opened a twin tab of the same id.
    const compareTabs = new Map<string, MainAreaWidget<CompareView>>();
    const compare = (ids: string[], flow: string) => {
      const key = [...ids].sort().join('-');
      const open = compareTabs.get(key);
      if (open) {
        app.shell.activateById(open.id);
        return;
      }
      const widget = new MainAreaWidget({ content: new CompareView(ids, flow, openRun) });
      widget.id = `labloom-compare-tab-${key}`;
      compareTabs.set(key, widget);
      widget.disposed.connect(() => compareTabs.delete(key));
      widget.title.icon = labloomIcon;
      widget.title.label = widget.content.title.label;
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    };
    if (rendermime) {
      // A %%flow cell's output: its live widget, or its run from the store once the kernel that
      // drew it is gone (notebooks clone this registry as they open).
      const { factory, rank } = cellRunFactory(app.commands, live, trans, id => openRun(id));
      rendermime.addFactory(factory, rank);
    }
    const panel = new FlowsPanel(openRun, live, trans, compare);
    panel.runsDeleted.connect((_, ids) => {
      tracker.forEach(tab => {
        if (ids.includes(tab.content.runId)) {
          tab.content.markDeleted();
        }
      });
    });
    panel.title.icon = labloomIcon;
    if (notebookTree) {
      // Notebook 7's file browser page: a tab beside Files and Running.
      panel.title.label = trans.__('Flows');
      notebookTree.addWidget(panel);
      live.runningChanged.connect((_, running) => {
        panel.title.label = running
          ? trans._n('Flows (%1 running)', 'Flows (%1 running)', running)
          : trans.__('Flows');
      });
    } else {
      // JupyterLab's left sidebar; in Notebook 7's notebook view, its left side panel (View >
      // Left Sidebar, or the palette's "Open the Flows panel").
      app.shell.add(panel, 'left', { rank: 600 });
    }

    addCommands(app, tracker, panel, trans, palette);

    if (restorer && !notebookTree) {
      restorer.add(panel, 'labloom-flows');
      void restorer.restore(tracker, {
        command: CommandIDs.openRun,
        args: w => ({ id: w.content.runId }),
        name: w => w.content.runId
      });
    }

    if (settingRegistry) {
      void Promise.all([settingRegistry.load(PLUGIN_ID), app.restored])
        .then(([settings]) => {
          const apply = () => panel.configure(panelSettings(settings.composite as any));
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => console.warn('[labloom] cannot read its settings:', reason));
    }

    if (statusBar) {
      const status = new RunningStatus(
        live,
        () => void app.commands.execute(CommandIDs.openPanel),
        trans
      );
      statusBar.registerStatusItem('labloom:running', {
        item: status,
        align: 'left',
        rank: 5
      });
    }
  }
};

export default plugin;
