import { LiveRuns, SafetyNet, SCHEMA_ID } from '../live';

describe('the safety-net poll the views share', () => {
  it('polls at the view`s pace until the server pushes, then slowly', async () => {
    const live = new LiveRuns(null);
    let ticks = 0;
    let every = 2000;
    const net = new SafetyNet(live, {
      factory: async () => {
        ticks++;
      },
      pushed: 15000,
      polled: () => every,
      standby: () => false,
      name: 'labloom:test'
    });
    expect(net.poll.frequency).toEqual({ interval: 2000, backoff: true, max: 60000 });
    every = 500; // the panel's setting changed
    net.pace();
    expect(net.poll.frequency.interval).toBe(500);
    live.listed({ runs: [], next: null, running: 0, now: 0, events: SCHEMA_ID });
    net.pace();
    expect(net.poll.frequency).toEqual({ interval: 15000, backoff: true, max: 60000 });
    await net.refresh(); // a view catching up ticks at once
    await net.poll.tick;
    expect(ticks).toBeGreaterThan(0);
    net.dispose();
    live.dispose();
    expect(net.poll.isDisposed).toBe(true);
  });

  it('stands by when the view says so, else while the page is hidden', () => {
    const live = new LiveRuns(null);
    let hidden = false;
    const net = new SafetyNet(live, {
      factory: async () => undefined,
      pushed: 10000,
      standby: () => hidden,
      name: 'labloom:test'
    });
    expect(net.interval()).toBe(1000); // a run tab's pace until the server pushes
    const standby = net.poll.standby as () => boolean | string;
    expect(standby()).toBe('when-hidden');
    hidden = true;
    expect(standby()).toBe(true);
    net.dispose();
    live.dispose();
  });
});
