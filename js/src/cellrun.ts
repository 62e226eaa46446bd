// A `%%flow` cell's output in Lab, also once its kernel is gone. The cell widget's bundle carries,
// beside the widget view and its HTML summary, `application/vnd.labloom.run+json`: the run's id.
// Once the run is over (in Lab with this extension, once it draws the live widget: it tells
// the kernel), the output holds no widget view, and the widget's model id moves into labloom's
// type: a notebook saved with its widgets' state would otherwise export (nbconvert,
// nbviewer) as a widget view drawn by a manager fetched from a CDN, nothing at all offline,
// where without the view the summary shows (notebook/widget/anywidget.py, finished_bundle).
// This renderer takes that type before jupyterlab-manager's widget view and shows
//  - the live widget, drawn by jupyterlab-manager's own renderer, whenever the notebook's widget
//    manager holds its model (a cell that just ran; a notebook reopened on its running kernel);
//  - otherwise the run from the store as its run tab draws it (one renderer, dag.js), with a
//    button that opens the tab: a saved notebook opened with a new kernel, the next morning;
//  - the summary saved with the notebook under a line saying why, when the store lacks the run.
// Without this, jupyterlab-manager's renderer (rank -10, before text/html) would say "Error
// displaying widget: model not found" there, as soon as its manager is restored.
//
// Why a mime type of our own rather than our factory for the widget view's type: jupyterlab-
// manager replaces the widget view's factory in every notebook's registry when it binds the
// notebook's manager (rendermime.removeMimeType, then addFactory at rank -10), so a factory of
// ours for that type would be gone in exactly the notebooks it is for. A type of ours is left
// alone; it sits before -10, and falls back to the widget view's renderer as it stands. Nothing
// here writes to the notebook's model: opening it leaves it unmodified. nbconvert and GitHub
// do not know the type and show the HTML summary, as before; so does Lab without labloom's
// extension, or for an untrusted notebook (the factory is unsafe like the widget view's).
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { MimeModel, RenderedHTML } from '@jupyterlab/rendermime';
import { TranslationBundle } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { ISignal } from '@lumino/signaling';
import { Panel, Widget } from '@lumino/widgets';

import { el, requestAPI } from './api';
import { noStoredRun, notARunId } from './cellrunnotice';
import { LiveRuns } from './live';
import { RunView } from './runview';

export const RUN_MIME = 'application/vnd.labloom.run+json';
const WIDGET_MIME = 'application/vnd.jupyter.widget-view+json';
const RANK = -20; // before jupyterlab-manager's widget view (-10)
// A cell that just ran has its model in the manager already: the first look finds it. Past
// this, the store's drawing shows while the manager restores (then swaps to the live widget).
const FIRST_LOOK_MS = 200;
// A notebook's manager is bound once its kernel is ready: looked for this often, this long.
const MANAGER_POLL_MS = 500;
const MANAGER_WAIT_MS = 120000;

/** What this renderer asks of jupyterlab-manager's per-notebook widget manager (its public
 * ManagerBase / LabWidgetManager API). */
interface IWidgetManager {
  has_model(modelId: string): boolean;
  get_model(modelId: string): Promise<IWidgetModel> | undefined;
  readonly restoredStatus: boolean;
  readonly restored: ISignal<any, void>;
}

/** The widget's model (a Backbone model): `comm_live` turns false when its kernel restarts;
 * `send` reaches the kernel's widget (a custom message). */
interface IWidgetModel {
  readonly comm_live: boolean;
  send(content: { event: string }): void;
  on(event: string, callback: () => void): void;
  off(event: string, callback: () => void): void;
}

/** jupyterlab-manager's renderer for the widget, and the model it draws when known. */
interface ILive {
  renderer: IRenderMime.IRenderer;
  widgetModel: IWidgetModel | null;
}

interface IRegistry {
  createRenderer(mimeType: string): IRenderMime.IRenderer;
  getFactory(mimeType: string): IRenderMime.IRendererFactory | undefined;
}

export function cellRunFactory(
  commands: CommandRegistry,
  live: LiveRuns,
  trans: TranslationBundle,
  openRun: (id: string) => void
): { factory: IRenderMime.IRendererFactory; rank: number } {
  return {
    factory: {
      safe: false,
      mimeTypes: [RUN_MIME],
      createRenderer: options => new CellRun(options, commands, live, trans, openRun)
    },
    rank: RANK
  };
}

class CellRun extends Panel implements IRenderMime.IRenderer {
  constructor(
    private options: IRenderMime.IRendererOptions,
    private commands: CommandRegistry,
    private live: LiveRuns,
    private trans: TranslationBundle,
    private openRun: (id: string) => void
  ) {
    super();
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const modelId = widgetModelId(model);
    this.latest = model;
    // The live widget's own output refreshed (its summary while it runs, its end): the live
    // widget stays drawn, and the user's open view with it, not drawn again.
    if (this.liveShown !== 0 && this.liveShown === this.shown && modelId === this.liveModel) {
      return;
    }
    this.shown += 1; // an updated output (the run's end) renders again into this renderer
    const turn = this.shown;
    const runId = String((model.data[RUN_MIME] as any)?.run_id || '');
    const registry = modelId ? await this.notebookRegistry() : null;
    if (registry && registry.getFactory(WIDGET_MIME)) {
      const live = this.liveWidget(registry, modelId, turn);
      const first = await Promise.race([live, sleep(FIRST_LOOK_MS).then(() => undefined)]);
      if (turn !== this.shown) {
        return;
      }
      if (first) {
        return this.showWidget(first, model, runId, turn);
      }
      if (first === undefined) {
        void live.then(found => {
          if (found && turn === this.shown && !this.isDisposed) {
            void this.showWidget(found, model, runId, turn);
          } else {
            found?.renderer.dispose();
          }
        });
      }
    }
    await this.showStored(runId, model, turn);
  }

  /** The registry of the notebook (or console) this output is in. The output area adds this
   * renderer to its cell just after calling renderModel: a few turns of the event loop. */
  private async notebookRegistry(): Promise<IRegistry | null> {
    for (let attempt = 0; attempt < 3 && !this.parent; attempt++) {
      await sleep(0);
    }
    for (let parent = this.parent; parent; parent = parent.parent) {
      const registry = (parent as any).rendermime;
      if (registry && typeof registry.createRenderer === 'function') {
        return registry as IRegistry;
      }
    }
    return null;
  }

  /**
   * jupyterlab-manager's renderer for the widget, once its manager holds the model from the
   * kernel; null when the manager has restored the kernel's widgets without it (a new kernel). A renderer made
   * before the notebook's manager is bound (its kernel starting) never gets it: then ask the
   * registry again, until the bound factory has replaced the placeholder. The manager is read
   * from the renderer's `_manager`, the one private name used; a jupyterlab-manager without it
   * gets its own renderer, as without labloom.
   */
  private async liveWidget(
    registry: IRegistry,
    modelId: string,
    turn: number
  ): Promise<ILive | null> {
    const deadline = Date.now() + MANAGER_WAIT_MS;
    while (turn === this.shown && !this.isDisposed && Date.now() < deadline) {
      const inner = registry.createRenderer(WIDGET_MIME);
      const pending: Promise<IWidgetManager> | undefined = (inner as any)._manager?.promise;
      if (!pending) {
        return { renderer: inner, widgetModel: null };
      }
      const manager = await Promise.race([pending, sleep(MANAGER_POLL_MS).then(() => null)]);
      if (manager) {
        const widgetModel = (await modelOnceRestored(manager, modelId))
          ? await manager.get_model(modelId)!
          : null;
        // Made again from the widget state saved in the notebook (Settings > Save Widget State
        // Automatically), it has no kernel behind it: a drawing whose clicks nobody answers.
        if (widgetModel && widgetModel.comm_live) {
          return { renderer: inner, widgetModel };
        }
        inner.dispose();
        return null;
      }
      inner.dispose();
    }
    return null;
  }

  private async showWidget(
    live: ILive,
    model: IRenderMime.IMimeModel,
    runId: string,
    turn: number
  ): Promise<void> {
    const { renderer: inner, widgetModel } = live;
    this.liveShown = turn;
    this.liveModel = widgetModelId(model);
    this.clear();
    this.addWidget(inner);
    await inner.renderModel(withWidgetView(model));
    // Drawn here from labloom's type, the output needs no widget view: the kernel drops it
    // now, not only at the run's end, and keeps the summary current for a notebook saved
    // meanwhile (notebook/widget/anywidget.py). A widget view saved exports blank offline.
    if (widgetModel && widgetModel.comm_live && typeof widgetModel.send === 'function') {
      widgetModel.send({ event: 'hosted' });
    }
    // The widget's kernel restarted (its model no longer live: the view stays, drawn, but no
    // click is answered) or the widget was closed (jupyterlab-manager hides the output): the
    // run from the store instead, whose clicks the server answers.
    const gone = () => {
      if (!inner.isDisposed && turn === this.shown && !this.isDisposed) {
        this.liveShown = 0;
        // The output as it stands: a retry from the widget names another run since.
        const now = this.latest ?? model;
        void this.showStored(String((now.data[RUN_MIME] as any)?.run_id || runId), now, turn);
      }
    };
    const notLive = () => {
      if (widgetModel && !widgetModel.comm_live) {
        gone();
      }
    };
    widgetModel?.on('comm_live_update', notLive);
    inner.disposed.connect(() => widgetModel?.off('comm_live_update', notLive));
    const drawn: Widget | undefined = (inner as unknown as Panel).widgets?.[0];
    drawn?.disposed.connect(gone);
  }

  private async showStored(
    runId: string,
    model: IRenderMime.IMimeModel,
    turn: number
  ): Promise<void> {
    const trans = this.trans;
    const box = new Panel();
    box.addClass('labloom-CellRun');
    box.node.setAttribute('data-run-id', runId);
    let problem = notARunId(runId, trans);
    if (problem === null) {
      try {
        await requestAPI<any>(`runs/${runId}?tasks=0`);
      } catch (error) {
        problem = noStoredRun(error, runId, trans);
      }
    }
    // The live widget, found while the store answered (a loaded machine: after the first look),
    // stays: the store's drawing would replace it, and the user's open view with it.
    if (turn !== this.shown || this.isDisposed || this.liveShown === turn) {
      return;
    }
    this.clear();
    this.addWidget(box);
    if (problem !== null) {
      box.addWidget(line('labloom-CellRun-missing', problem));
      if (model.data['text/html']) {
        const summary = new RenderedHTML({ ...this.options, mimeType: 'text/html' });
        box.addWidget(summary);
        await summary.renderModel(model);
      }
      return;
    }
    const bar = line('labloom-CellRun-bar', trans.__('labloom run %1, read from the store', runId));
    const open = el(
      'button',
      { class: 'labloom-CellRun-open', type: 'button' },
      trans.__('Open in a tab')
    );
    open.addEventListener('click', () => this.openRun(runId));
    bar.node.append(' ', open);
    box.addWidget(bar);
    const view = new RunView(runId, this.commands, this.live, trans);
    view.node.removeAttribute('id'); // the run tab's: one element per id in the page
    box.addWidget(view);
  }

  private clear(): void {
    for (const child of [...this.widgets]) {
      child.dispose();
    }
  }

  private shown = 0;
  private liveShown = 0; // the turn whose live widget is shown
  private liveModel = ''; // its widget model's id
  private latest: IRenderMime.IMimeModel | null = null; // the output as last given
}

/** The widget's model id: the widget view's while the run goes on, labloom's type's after. */
function widgetModelId(model: IRenderMime.IMimeModel): string {
  const view = model.data[WIDGET_MIME] as any;
  return String(view?.model_id || (model.data[RUN_MIME] as any)?.model_id || '');
}

/** The output as jupyterlab-manager's renderer reads it: with the widget view it draws. */
function withWidgetView(model: IRenderMime.IMimeModel): IRenderMime.IMimeModel {
  if (model.data[WIDGET_MIME]) {
    return model;
  }
  const view = { version_major: 2, version_minor: 1, model_id: widgetModelId(model) };
  return new MimeModel({
    data: { ...model.data, [WIDGET_MIME]: view },
    metadata: model.metadata,
    trusted: model.trusted
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/** Whether the manager holds the model once it has restored the kernel's widgets. */
async function modelOnceRestored(manager: IWidgetManager, modelId: string): Promise<boolean> {
  if (!manager.has_model(modelId) && !manager.restoredStatus) {
    await new Promise<void>(resolve => {
      const done = () => {
        manager.restored.disconnect(done);
        resolve();
      };
      manager.restored.connect(done);
    });
  }
  return manager.has_model(modelId);
}

function line(className: string, text: string): Widget {
  return new Widget({ node: el('div', { class: className }, text) });
}
