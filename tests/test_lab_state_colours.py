"""Each task run state's colours in a run's Lab tab as the browser draws them, light and dark
theme, at rest, hovered and selected: a state said in text reads at 4.5:1 or more on what it
lies on, a state's line or bar (a DAG box's edge, a progress bar's part, a child chip's bar, the
timeline's bars and its key's swatches) at 3:1. Before, on the light theme, the boxes' edges
read 2.3 to 2.8:1 (Completed, Cached, UpstreamFailed), a node's state 4.4:1 on its tint, a
Completed chip's bar 2:1 on the chip, a progress bar's parts 1.2 to 1.6:1 on its track; on the
dark theme a Failed chip's bar 2.7:1. The timeline's Completed bars read 2.3:1 on the light
theme (its fixed colours, one for both themes), Cached 2.5:1, Retrying 2.2:1.

The run is made by the real `labloom` command twice (the second's `load` is Cached), with a map
whose child 2 fails and a task downstream of a failure (UpstreamFailed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, wait_for
from lab_helpers import flows_folder, open_lab, open_run, shot, stored_runs, use_dark_theme
from labloom.core.states import State
from labloom.notebook.widget.palette import light_marks

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

FLOWS = '''
from labloom import flow, log_metrics, log_params, task

@task(cache=True)
def load():
    return 1

@task
def check(x):
    log_params(x=x)
    log_metrics(auc=x / 10)
    if x == 2:
        raise ValueError("row 2 is malformed")
    return x

@task
def report(a, b):
    return a

@flow(executor="local")
def nightly(n: int = 3):
    check.map(range(n))
    return report(load(), check(2))
'''

# Every colour pair to check under `view` as drawn now: [what, foreground, background, least].
# A colour may be translucent (a box's tint, Lab's text): composed over what it lies on.
PAIRS = """view => {
  const painted = e => {
    for (; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const css = (e, p) => getComputedStyle(e)[p];
  const ground = painted(view.querySelector('.labloom-graph'));
  const out = [];
  for (const g of view.querySelectorAll('g.labloom-node')) {
    const box = g.querySelector('.labloom-node-box');
    // The box's fill, at its fill-opacity, over the tab.
    const [r, g_, b] = css(box, 'fill').match(/[0-9.]+/g);
    const tint = [`rgba(${r}, ${g_}, ${b}, ${css(box, 'fillOpacity')})`, ground];
    const what = `node ${g.dataset.state}${g.classList.contains('labloom-selected') ? ' selected' : ''}`;
    out.push([what + ' name', [css(g.querySelector('.labloom-node-name'), 'fill')], tint, 4.5]);
    out.push([what + ' state', [css(g.querySelector('.labloom-node-sub'), 'fill')], tint, 4.5]);
    out.push([what + ' edge', [css(box, 'stroke')], [ground], 3]);
    const track = g.querySelector('.labloom-progress-track');
    for (const part of g.querySelectorAll('.labloom-progress-part:not([display])'))
      out.push([`${what} bar ${part.dataset.state}`, [css(part, 'fill')], [css(track, 'fill'), ground], 3]);
  }
  const head = view.querySelector('.labloom-run-state');
  out.push([`header ${head.dataset.state}`, [css(head, 'color')], [painted(head)], 4.5]);
  for (const chip of view.querySelectorAll('.labloom-child')) {
    const what = `chip ${chip.dataset.state}${chip.matches(':hover') ? ' hovered' : ''}` +
      `${chip.classList.contains('labloom-child-current') ? ' current' : ''}`;
    out.push([what + ' text', [css(chip, 'color')], [painted(chip)], 4.5]);
    out.push([what + ' bar', [css(chip, 'borderLeftColor')], [painted(chip)], 3]);
    out.push([what + ' bar on the tab', [css(chip, 'borderLeftColor')], [painted(chip.parentElement)], 3]);
  }
  for (const bar of view.querySelectorAll('.labloom-timeline-chart rect[data-state]'))
    out.push([`timeline bar ${bar.dataset.state}`, [css(bar, 'fill')], [painted(bar)], 3]);
  for (const item of view.querySelectorAll('.labloom-timeline-key-item')) {
    const what = `timeline key ${item.dataset.state}`;
    out.push([what + ' swatch', [css(item.firstElementChild, 'backgroundColor')], [painted(item)], 3]);
    out.push([what + ' text', [css(item, 'color')], [painted(item)], 4.5]);
  }
  for (const row of view.querySelectorAll('.labloom-exp-row[data-state]')) {
    const cell = row.querySelector("[data-column='state']");
    const what = `row ${row.dataset.state}${row.matches(':hover') ? ' hovered' : ''}` +
      `${row.matches(':focus') ? ' selected' : ''}`;
    out.push([what, [css(cell, 'color')], [painted(cell)], 4.5]);
  }
  return out;
}"""


def rgba(colour: str) -> tuple[float, float, float, float]:
    if colour.startswith("#"):
        return (*(int(colour[i:i + 2], 16) for i in (1, 3, 5)), 1.0)  # type: ignore[return-value]
    parts = [float(v) for v in colour[colour.index("(") + 1:-1].split(",")]
    return (parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0)


def compose(layers: list[str]) -> tuple[float, float, float]:
    """The colour seen of ``layers``, top first, each over those after it (the last opaque)."""
    seen = rgba(layers[-1])[:3]
    for layer in reversed(layers[:-1]):
        *rgb, alpha = rgba(layer)
        seen = tuple(alpha * c + (1 - alpha) * s for c, s in zip(rgb, seen, strict=True))
    return seen  # type: ignore[return-value]


def ratio(front: tuple[float, ...], back: tuple[float, ...]) -> float:
    """The WCAG ratio of two colours already composed (opaque)."""
    from test_lab_panel import contrast

    return contrast(f"rgb{tuple(front)}", f"rgb{tuple(back)}")


def too_faint(view: Any) -> dict[str, float]:
    """What reads under its least ratio, drawn as now, with its ratio."""
    low = {}
    for what, front, back, least in view.evaluate(PAIRS):
        under = compose(back)
        shown = ratio(compose([*front, f"rgb{under}"]), under)
        if shown < least:
            low[what] = round(shown, 2)
    return low


# Each state's colour in the timeline as drawn: {state: [bar fills, key swatch]}.
TIMELINE_FILLS = """view => {
  const out = {};
  const add = (state, colour) => (out[state] = out[state] || []).push(colour);
  for (const bar of view.querySelectorAll('.labloom-timeline-chart rect[data-state]'))
    add(bar.dataset.state, getComputedStyle(bar).fill);
  for (const item of view.querySelectorAll('.labloom-timeline-key-item'))
    add(item.dataset.state, getComputedStyle(item.firstElementChild).backgroundColor);
  return out;
}"""


def timeline_colours(view: Any) -> dict[str, set[str]]:
    """Each state's colours in the timeline's bars and key, as #rrggbb."""
    def hex_of(colour: str) -> str:
        return "#" + "".join(f"{round(c):02x}" for c in rgba(colour)[:3])

    return {state: {hex_of(c) for c in colours}
            for state, colours in view.evaluate(TIMELINE_FILLS).items()}


def show_timeline(view: Any) -> set[str]:
    """The Timeline button pressed, once its bars are drawn: the states they show."""
    view.locator("button.labloom-timeline-toggle").click()
    view.locator(".labloom-timeline-chart rect[data-state]").first.wait_for(timeout=30_000)
    return set(view.locator(".labloom-timeline-chart rect[data-state]").evaluate_all(
        "bars => bars.map(b => b.dataset.state)"))


def check_everything_drawn(page: Any, view: Any, theme: str) -> set[str]:
    """At rest, each child chip and Experiments row hovered, the failed row clicked (it keeps
    the focus): nothing too faint. The states seen hovered."""
    page.mouse.move(0, 0)
    low = too_faint(view)
    hovered = set()
    for kind, selector in (("chip", ".labloom-child"), ("row", ".labloom-exp-row[data-state]")):
        for i in range(view.locator(selector).count()):
            item = view.locator(selector).nth(i)
            item.hover()
            hovered.add(f"{kind} {item.get_attribute('data-state')}")
            low.update(too_faint(view))
    failed = view.locator(".labloom-exp-row[data-state='Failed']")
    failed.click()
    failed.hover()
    low.update(too_faint(view))
    assert "row Failed hovered selected" in {p[0] for p in view.evaluate(PAIRS)}
    shot(page, f"lab-state-colours-{theme}", view)
    assert low == {}, (theme, low)
    return hovered


def test_every_state_s_colours_read_in_the_run_tab_hovered_and_selected_on_both_themes(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    for _ in range(2):
        done = labloom(home, "run", "flows.py:nightly", cwd=work, LABLOOM_PROGRESS="0")
        assert done.returncode == 1, done.stderr
    run = stored_runs(home, "nightly")[0]
    panel, _alerts = open_lab(page, url)
    view = open_run(page, panel, run.id)
    # The map's node selected (its chips shown), its Experiments view open, the failed child's
    # chip the current one.
    view.locator("g.labloom-node[data-kind='map']").click(timeout=60_000)
    view.locator("g.labloom-node.labloom-selected").wait_for(timeout=20_000)
    view.locator("button.labloom-experiments-open").click()
    view.locator(".labloom-exp-row[data-task-run-id]").nth(2).wait_for(timeout=30_000)
    view.locator('.labloom-child[data-state="Failed"]').click()
    view.locator('.labloom-child-current[data-state="Failed"]').wait_for(timeout=20_000)
    states = {g.get_attribute("data-state") for g in view.locator("g.labloom-node").all()}
    assert states == {"Failed", "Cached", "UpstreamFailed"}, states
    assert {"Completed", "Failed"} <= show_timeline(view)
    # The timeline's light shades are the palette the static summary reads (html.py).
    marks = light_marks()
    assert timeline_colours(view) == {s: {marks[State(s)]} for s in timeline_colours(view)}

    hovered = check_everything_drawn(page, view, "light")
    assert hovered == {"chip Completed", "chip Failed", "row Completed", "row Failed"}, hovered
    use_dark_theme(page)
    # The theme's stylesheet may come after the body's flag: wait for its background.
    wait_for(lambda: ratio(compose([view.evaluate("v => getComputedStyle(v).backgroundColor")]),
                           (255, 255, 255)) > 10, 20, "the dark theme's background")
    check_everything_drawn(page, view, "dark")
