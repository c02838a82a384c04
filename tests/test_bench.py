"""The benchmark's machinery (own processes, contention, printed lines), the thread plan, and the
performance appendix's figures against the committed benchmark outputs. Nothing here times anything."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.core.runner import default_inductor_options
from iql_tutorial.data.transitions import synthetic_transitions
from iql_tutorial.utils import threads
from iql_tutorial.utils.threads import ThreadPlan, decide_threads, parse_spec

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


@pytest.fixture()
def no_plan(monkeypatch):
    """Whatever a test applies, the process has no plan and its thread count afterwards."""
    n = torch.get_num_threads()
    monkeypatch.setattr(threads, "_APPLIED", None)
    yield
    torch.set_num_threads(n)


def test_smoke_run_in_own_processes_prints_every_figure():
    """Tiny shapes, a few updates: every line the book and the issue rely on is printed and parses."""
    cmd = [sys.executable, "-m", "iql_tutorial", "bench", "--smoke", "--package-mode", "eager", "--variant", "1"]
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMP_WAIT_POLICY", "IQL_THREADS")}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout

    def one(pattern: str) -> float:
        found = re.findall(pattern, text, flags=re.M)
        assert len(found) == 1, (pattern, text)
        return float(found[0])

    assert one(rf"^ratio package/plain: {NUMBER}$") > 0
    assert one(rf"^ratio package/plain under contention: {NUMBER}$") > 0
    assert one(rf"^package under contention: {NUMBER}% of its idle rate$") > 0
    assert one(rf"^plain under contention: {NUMBER}% of its idle rate$") > 0
    assert one(rf"^ratio package \[IQL_THREADS=1\]/plain: {NUMBER}$") > 0
    for phase in ("idle", "contended"):
        for name in ("plain", "package", r"package \[IQL_THREADS=1\]"):
            assert one(rf"^{phase}: {name}: +{NUMBER} updates/s \(median of 2 rounds") > 0
        assert one(rf"^{phase}: other processes' load during the rounds: mean {NUMBER} cores") >= 0
    assert re.search(r"^contended: a busy process \(python -c 'while True: pass', pid \d+\)", text, re.M)
    assert "(yours; the benchmark sets none)" in text
    assert one(rf"^benchmark wall time: {NUMBER} s, of which compilation") > 0
    # each contender in a process of its own, none of them the benchmark's
    pids = [int(p) for p in re.findall(r"; started in .* \(pid (\d+)\)$", text, flags=re.M)]
    assert len(pids) == 3 and len(set(pids)) == 3
    assert re.search(r"^package: threads \[auto\] on cpu: ", text, re.M)  # the plan, as the trainer logs it
    assert re.search(r"^package \[IQL_THREADS=1\]: threads \[IQL_THREADS=1\] on cpu: 1 thread:", text, re.M)


def test_thread_plan_is_decided_visibly_and_overridable():
    auto = decide_threads("cpu", environ={})
    assert auto.adaptive and auto.threads is None and auto.env() == {} and auto.source == "auto"
    assert "\n" not in auto.describe() and "IQL_THREADS" in auto.describe()
    assert decide_threads("cuda:0", environ={}) == ThreadPlan("cuda:0", reason="not a CPU: nothing to decide")
    assert decide_threads("cpu", environ={"IQL_THREADS": "torch"}).describe().count("defaults") == 1
    one = decide_threads("cpu", environ={"IQL_THREADS": "1"})
    assert one.threads == 1 and not one.adaptive and one.source == "IQL_THREADS=1"
    spin = parse_spec("2,spin=1000,elementwise=1", "cpu")
    assert (spin.threads, spin.spin_count, spin.elementwise) == (2, 1000, "one")
    assert spin.env() == {"GOMP_SPINCOUNT": "1000"}
    assert parse_spec("adapt", "cpu").adaptive
    for bad in ("0", "two", "spin=-1", "elementwise=2", "threads=x"):
        with pytest.raises(ValueError, match="IQL_THREADS"):
            parse_spec(bad, "cpu")


def test_spin_count_reads_the_environment_as_openmp_does():
    assert threads.spin_count({}) == 300_000
    assert threads.spin_count({"OMP_WAIT_POLICY": "passive"}) == 0
    assert threads.spin_count({"OMP_WAIT_POLICY": "ACTIVE"}) == 3e10
    assert threads.spin_count({"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "5000"}) == 5000
    assert threads.spin_count({"GOMP_SPINCOUNT": "infinite"}) == float("inf")


def test_adaptive_plan_gives_up_a_thread_while_another_process_is_busy(monkeypatch, no_plan):
    """Other processes' load = the machine's busy time less this process's own CPU time."""
    clock = {"t": 0.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(threads.time, "perf_counter", lambda: clock["t"])
    monkeypatch.setattr(threads.time, "process_time", lambda: clock["own"])
    monkeypatch.setattr(threads, "machine_busy", lambda: clock["busy"])
    monkeypatch.setattr(threads, "cores", lambda: 2)
    plan = ThreadPlan("cpu", threads=2, adaptive=True)
    plan.apply()

    def tick(own: float, others: float, dt: float = 1.0) -> int | None:
        clock["t"] += dt
        clock["own"] += own * dt
        clock["busy"] += (own + others) * dt
        return plan.adjust()

    assert tick(own=2.0, others=0.0) == 2
    assert tick(own=1.5, others=1.0) == 1 and torch.get_num_threads() == 1
    assert tick(own=1.0, others=0.4) == 1  # between the thresholds: keep
    assert tick(own=1.0, others=0.0) == 2 and torch.get_num_threads() == 2
    assert tick(own=1.0, others=1.0, dt=0.01) == 2  # looked too recently: keep
    assert ThreadPlan("cpu", threads=2).adjust() is None
    torch.set_num_threads(1)  # a thread count set before the plan is the most it goes back to
    ThreadPlan("cpu", adaptive=True).apply()
    assert tick(own=1.0, others=0.0) == 1 and torch.get_num_threads() == 1


def test_compiled_step_under_the_default_plan_equals_eager(no_plan):
    """The plan's Inductor options (kernels follow the thread count at run time) change no number,
    also when the thread count changes between calls (tolerance as in test_update.py)."""
    plan = decide_threads("cpu", environ={})
    plan.apply()
    opts = default_inductor_options(torch.device("cpu"))
    assert opts.get("cpp.dynamic_threads") is True
    cfg = IQLConfig(hidden_dims=(16, 16), batch_size=32)
    t = synthetic_transitions(500, "cpu", obs_dim=6, act_dim=2, terminal_rate=0.1)
    torch.manual_seed(0)
    eager = IQLAgent(6, 2, cfg)
    comp = IQLAgent(6, 2, cfg, mode="compile")
    comp.load_state_dict(eager.state_dict())
    sampler = torch.Generator().manual_seed(1)
    for n in (2, 1, 2):
        torch.set_num_threads(n)
        comp.run_updates(t, 2, sampler)
    eager.run_updates(t, 6, torch.Generator().manual_seed(1))
    for (name, x), y in zip(eager.state_dict().items(), comp.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4, msg=name)


# ------------------------------------------------------------------ the performance pages' figures
# The book's appendix (the speed table, how to run the benchmark, the GPU path) and the full
# protocol kept in the repository (docs/performance.md, outside the book); each with the fewest
# figures it must report, so an empty page cannot pass.
PAGE = ROOT / "book" / "performance.md"
PAGES = {PAGE: 8, ROOT / "docs" / "performance.md": 20}


def _page_figures(page: Path = PAGE) -> list[str]:
    """Every decimal number and percentage of the page's prose and tables, except code blocks,
    HTML comments and the predictions (written before measuring, between <!-- predictions -->
    and <!-- /predictions -->)."""
    text = page.read_text()
    text = re.sub(r"<!-- predictions -->.*?<!-- /predictions -->", " ", text, flags=re.S)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)  # inline code: commands, settings
    text = re.sub(r"\[[^\]]*\]\([^)]*\)", " ", text)  # link targets
    decimals = re.findall(r"(?<![\w.])(\d+\.\d+|\d+%)", text)
    with_units = re.findall(r"(?<![\w.,])(\d[\d,]*(?:\.\d+)? (?:updates/s|GFLOP/s|MFLOP|MB|min|s))(?![\w/])", text)
    return decimals + with_units


def _missing_from_outputs(figures: list[str]) -> list[str]:
    outputs = " ".join(p.read_text() for p in sorted((ROOT / "data" / "results").glob("bench-*.txt")))
    return sorted({f for f in figures if not re.search(rf"(?<![\d.]){re.escape(f)}(?![\d])", outputs)})


@pytest.mark.parametrize("page", list(PAGES), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_figure_on_the_performance_page_is_in_a_committed_bench_output(page):
    figures = _page_figures(page)
    assert len(figures) >= PAGES[page], f"{page.name} reports only {figures}"
    missing = _missing_from_outputs(figures)
    assert not missing, f"figures on {page.relative_to(ROOT)} found in no data/results/bench-*.txt: {missing}"


def test_the_figure_check_fails_a_figure_typed_from_nowhere(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text("The package ran at 364.8 updates/s, 2.05 times the plain update (97% idle; 123.4 updates/s).\n")
    figures = _page_figures(page)
    assert {"364.8", "2.05", "97%", "123.4"} <= set(figures), figures
    assert _missing_from_outputs(figures) == ["123.4", "123.4 updates/s", "97%"]


def test_the_book_points_at_the_full_protocol():
    text = PAGE.read_text()
    assert "docs/performance.md" in text and (ROOT / "docs" / "performance.md").is_file()
    assert "## The GPU path" in text and "python -m iql_tutorial bench" in text
