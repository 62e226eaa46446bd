// "2 flows running" in the status bar; a click opens the Flows panel. It polls every 2 s while
// runs are running and every 10 s otherwise, and not at all while the browser tab is hidden.
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { IRunList, Poller, requestAPI } from './api';

export class RunningStatus extends Widget {
  constructor(
    onClick: () => void,
    private trans: TranslationBundle = nullTranslator.load('labloom')
  ) {
    super();
    this.addClass('labloom-StatusItem');
    this.node.title = trans.__('labloom: open the Flows panel');
    this.node.addEventListener('click', onClick);
    this.poller = new Poller(
      () => this.poll(),
      () => (this.running ? 2000 : 10000),
      () => true
    );
  }

  protected onAfterAttach(): void {
    this.poller.wake();
  }

  dispose(): void {
    this.poller.dispose();
    super.dispose();
  }

  /** Also fed by the panel's own polls, so the two agree. */
  setRunning(running: number): void {
    this.running = running;
    this.node.textContent =
      running === 0
        ? this.trans.__('no flows running')
        : this.trans._n('%1 flow running', '%1 flows running', running);
    this.node.setAttribute('data-running', String(running));
  }

  private async poll(): Promise<void> {
    const list = await requestAPI<IRunList>('runs?limit=0');
    this.setRunning(list.running);
  }

  private poller: Poller;
  private running = 0;
}
