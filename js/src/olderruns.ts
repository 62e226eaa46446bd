// The Flows panel's runs older than the page it polls (the newest MAX_PAGE): read a page per
// click by the API's `before`, then kept, not polled (they have ended, most of them), and read
// again with each read of the page so none is missed or kept past its deletion.
import { IRunList, IRunSummary, requestAPI } from './api';

export const MAX_PAGE = 500; // the API's largest page

export class OlderRuns {
  /** The older runs read so far, newest first. */
  runs: IRunSummary[] = [];
  /** Whether runs older than those are left. */
  next = true;
  /** The state filter they were read with. */
  state = '';

  /** A read of the page with `state` as its filter: the kept runs go when it changed. */
  readingFor(state: string): void {
    if (state !== this.state) {
      this.runs = [];
      this.next = true;
      this.state = state;
    }
  }

  /** The next `size` runs older than the oldest read (or than the polled `page`'s). */
  async readMore(page: IRunSummary[], size: number, state: string): Promise<void> {
    const read = this.runs.length ? this.runs : page;
    const oldest = read[read.length - 1];
    if (!oldest) {
      return;
    }
    const answer = await requestAPI<IRunList>(
      `runs?limit=${size}&before=${oldest.id}` + (state ? `&state=${state}` : '')
    );
    if (state === this.state) {
      this.runs = this.runs.concat(answer.runs);
      this.next = answer.next !== null;
    }
  }

  /** The older runs read so far, read again with each read of the page, from the page's
   * oldest run down to the oldest of them: new runs push the page's oldest ones out of it
   * (listed with these, none falls between), and what pushes do not say reaches them too (a
   * run deleted by another process, by `labloom delete --older-than` most often). */
  async readAgain(page: IRunSummary[], state: string): Promise<void> {
    const last = page[page.length - 1];
    const oldest = this.runs[this.runs.length - 1];
    if (!oldest || !last) {
      return;
    }
    const fresh: IRunSummary[] = [];
    for (let before: string | null = last.id; before !== null; ) {
      const between: IRunList = await requestAPI<IRunList>(
        `runs?limit=${MAX_PAGE}&before=${before}` + (state ? `&state=${state}` : '')
      );
      const reached = between.runs.findIndex(
        run => run.id === oldest.id || (run.created || 0) < (oldest.created || 0)
      );
      const through = reached >= 0 && between.runs[reached].id === oldest.id ? reached + 1 : reached;
      fresh.push(...(reached >= 0 ? between.runs.slice(0, through) : between.runs));
      before = reached >= 0 ? null : between.next;
    }
    if (state === this.state && this.runs[this.runs.length - 1] === oldest) {
      const listed = new Set(page.map(run => run.id));
      this.runs = fresh.filter(run => !listed.has(run.id));
    }
  }
}
