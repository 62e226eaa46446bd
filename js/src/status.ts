// "2 flows running" in the status bar; a click opens the Flows panel. The count is LiveRuns'
// (pushed by the server, shared with the panel); one REST read at start, then a slow poll as a
// safety net (backs off, stands by while the browser tab is hidden).
import { Poll } from '@lumino/polling';
import { Signal } from '@lumino/signaling';
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { IRunList, requestAPI } from './api';
import { LiveRuns } from './live';

export class RunningStatus extends Widget {
  constructor(
    live: LiveRuns,
    onClick: () => void,
    private trans: TranslationBundle = nullTranslator.load('labloom')
  ) {
    super();
    this.addClass('labloom-StatusItem');
    this.node.title = trans.__('labloom: open the Flows panel');
    this.node.addEventListener('click', onClick);
    live.runningChanged.connect((_, running) => this.showCount(running), this);
    this.showCount(live.running);
    this.poll = new Poll({
      factory: async () => {
        const list = await requestAPI<IRunList>('runs?limit=0');
        live.listed(list);
      },
      // Pushed counts make this a safety net; without push (no events yet) it is the source.
      frequency: { interval: 10000, backoff: true, max: 120000 },
      standby: 'when-hidden',
      name: 'labloom:running'
    });
  }

  dispose(): void {
    this.poll.dispose();
    Signal.disconnectReceiver(this);
    super.dispose();
  }

  private showCount(running: number): void {
    // In JupyterLab's own text item (its line height and font, as the kernel's status
    // beside it): bare text sat 4 px above the bar's other texts.
    const text = document.createElement('span');
    text.className = 'jp-StatusBar-TextItem';
    text.textContent =
      running === 0
        ? this.trans.__('no flows running')
        : this.trans._n('%1 flow running', '%1 flows running', running);
    this.node.replaceChildren(text);
    this.node.setAttribute('data-running', String(running));
  }

  private poll: Poll;
}
