"""Every failure is one line and leaves nothing half-made; every command says what it is doing.

The cases of issue 23: OSErrors (a read-only folder, a file-size limit) name the path and the
cause, Ctrl-C says where to resume, data import never crashes the interpreter, and each case
that used to print a traceback or an unclear message prints one clear line instead."""

import json
import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import REPO, TRAIN, env_for, minari_path, start_paused, train_config

from iql_tutorial import IQLConfig
from iql_tutorial.runs import finetune as finetune_module
from iql_tutorial.runs.folder import LOCK_NAME
from iql_tutorial.runs.train import TrainConfig, build_parser, compile_note, train
from iql_tutorial.runs.train import main as train_main

torch.set_num_threads(1)
DATA = "tests/pendulum/tiny-v0"
SMALL = ["--device", "cpu", "--mode", "eager", "--hidden-dims", "8", "8", "--batch-size", "8", "--eval-episodes",
         "1", "--eval-every", "10", "--log-every", "10", "--checkpoint-every", "10", "--steps", "20"]  # fmt: skip


def one_error_line(err: str) -> str:
    """The stderr of a failed command: exactly one line starting with 'error:', no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def small_run(out: Path, **kw) -> None:
    cfg = {"dataset": DATA, "steps": 20, "eval_every": 10, "eval_episodes": 1, "log_every": 10, "checkpoint_every": 10,
           "iql": IQLConfig(hidden_dims=(8, 8), batch_size=8), **kw}  # fmt: skip
    train(train_config(out, **cfg), progress=False)


# ---------------------------------------------------------------------------------- unclear cases
def test_broken_run_json_names_the_file(tiny_minari, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"dataset": ')
    assert train_main(["--dataset", DATA, *SMALL, "--out", str(out), "--resume"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{out / 'run.json'} cannot be parsed (JSONDecodeError" in line


def test_random_bytes_in_a_checkpoint_are_called_damaged(tiny_minari, tmp_path, capsys):
    out = tmp_path / "run"
    small_run(out, steps=30)
    (out / "checkpoint.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    assert train_main(["--dataset", DATA, *SMALL, "--steps", "30", "--out", str(out), "--resume"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "is not a file torch.save writes (not a zip archive" in line and "Python objects" not in line


def test_resume_refusal_names_the_field_and_a_finished_run_cannot_be_extended(tiny_minari, tmp_path, capsys):
    out = tmp_path / "run"
    small_run(out)
    assert train_main(["--dataset", DATA, *SMALL, "--out", str(out), "--resume", "--expectile", "0.8"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "iql.expectile: 0.7 in run.json, 0.8 now" in line
    assert train_main(["--dataset", DATA, *SMALL, "--steps", "40", "--out", str(out), "--resume"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "steps: 20 in run.json, 40 now" in line and "cannot be changed after it started" in line


def test_resume_without_a_run_says_it_starts_one_and_a_resume_says_its_step(tiny_minari, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(["--dataset", DATA, *SMALL, "--out", str(out), "--resume"]) == 0
    captured = capsys.readouterr()
    assert f"--resume: {out} holds no run yet, so a new one starts" in captured.err
    # done: a short table with units, not a raw dict
    assert "{'" not in captured.out and re.search(r"^done: .* \(20 steps, \d+ s\)$", captured.out, re.M)
    assert re.search(r"^  return \(sum of rewards\) +-?\d+\.\d \+- \d+\.\d$", captured.out, re.M), captured.out
    assert re.search(r"^  normalized score \(0 random, 100 reference\) +-?\d+\.\d", captured.out, re.M)
    assert train_main(["--dataset", DATA, *SMALL, "--out", str(out), "--resume"]) == 0
    assert f"resuming {out} from step 20" in capsys.readouterr().err


def test_a_short_dataset_name_gets_its_id_as_the_hint(tiny_minari, tmp_path, capsys):
    assert train_main(["--dataset", "pendulum-medium", *SMALL, "--out", str(tmp_path / "r")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "'pendulum-medium' is a short name" in line and "--dataset iqlbook/pendulum/medium-v0" in line
    assert train_main(["--dataset", "no such thing", *SMALL, "--out", str(tmp_path / "r")]) == 2
    assert "is not a dataset id (NAMESPACE/TASK/NAME-vN" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_two_dimensional_rewards_without_weights_say_which_flag(tmp_path, capsys):
    from iql_tutorial.data.importer import import_arrays

    rng = np.random.default_rng(0)
    n = 60
    with minari_path(tmp_path / "minari"):
        import_arrays({"observations": rng.normal(size=(n, 3)), "actions": rng.uniform(-1, 1, (n, 1)),
                       "rewards": rng.normal(size=(n, 2)), "terminals": np.zeros(n),
                       "timeouts": np.arange(n) % 20 == 19}, "me/two/rewards-v0", action_low=-1, action_high=1)  # fmt: skip
        args = ["--dataset", "me/two/rewards-v0", *SMALL, "--out", str(tmp_path / "r")]
        assert train_main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "has 2-dimensional rewards but the config expects 1" in line and "--reward-weights 1 1" in line
    assert "spread" not in line and not (tmp_path / "r").exists()


def test_help_shows_the_real_run_folder_name():
    text = " ".join(build_parser().format_help().split())
    real = TrainConfig(dataset="iqlbook/pendulum/medium-replay-v0", steps=10).out
    assert real == "runs/iqlbook_pendulum_medium-replay-v0-awr-seed0"
    assert real in text


def test_the_compile_line_says_how_long_and_how_often():
    assert compile_note("eager") is None
    note = compile_note("compile")
    assert note is not None and note.startswith("compiling the IQL update") and "once per process" in note
    assert re.search(r"about \d+ s", note)


def test_files_keep_the_umask_after_a_resume(tiny_minari, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        small_run(out, steps=30)
        small_run(out, steps=30, resume=True)  # a resume rewrites the logs (truncate_after)
        for name in ("run.json", "checkpoint.pt", "train_log.csv", "eval_log.csv"):
            assert (out / name).stat().st_mode & 0o777 == 0o644, name
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------------------- finetune
def test_finetune_refuses_a_finetuning_folder_and_an_unfinished_run(tiny_minari, tmp_path, capsys):
    offline, online = tmp_path / "offline", tmp_path / "online"
    small_run(offline)
    common = ["--online-steps", "10", "--device", "cpu", "--mode", "eager", "--eval-episodes", "0"]
    assert finetune_module.main(["--offline-run", str(offline), "--out", str(online), *common]) == 0
    capsys.readouterr()
    assert finetune_module.main(["--offline-run", str(online), "--out", str(tmp_path / "x"), *common]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "is a fine-tuning folder, not an offline run" in line and f"--offline-run {offline}" in line
    run = json.loads((offline / "run.json").read_text())
    (offline / "run.json").write_text(json.dumps({**run, "steps": 200}))  # as if killed at 20 of 200
    ckpt = torch.load(offline / "checkpoint.pt", weights_only=True)
    torch.save({**ckpt, "run": {**ckpt["run"], "steps": 200}}, offline / "checkpoint.pt")  # its checkpoint too
    assert finetune_module.main(["--offline-run", str(offline), "--out", str(tmp_path / "y"), *common]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "stopped at step 20 of 200" in line and "--allow-unfinished" in line
    args = ["--offline-run", str(offline), "--out", str(tmp_path / "y"), *common, "--allow-unfinished"]
    assert finetune_module.main(args) == 0
    assert "stopped at step 20 of 200" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_failed_finetune_leaves_no_stub_and_a_retry_shows_the_real_error(tiny_minari, tmp_path, monkeypatch):
    offline, online = tmp_path / "offline", tmp_path / "online"
    small_run(offline)

    def broken(*a, **k):
        raise RuntimeError("the environment cannot be made")

    monkeypatch.setattr(finetune_module, "evaluate", broken)
    cfg = finetune_module.FinetuneConfig(offline_run=str(offline), out=str(online), online_steps=10, device="cpu",
                                         mode="eager", eval_episodes=1)  # fmt: skip
    for _ in range(2):  # the retry fails the same way, not with "pass --resume"
        with pytest.raises(RuntimeError, match="cannot be made"):
            finetune_module.finetune(cfg, progress=False)
        assert not (online / LOCK_NAME).exists()
    monkeypatch.undo()
    finetune_module.finetune(cfg, progress=False)
    assert (online / "checkpoint.pt").exists()


# ------------------------------------------------------------------------------------------- sweeps
def test_a_sweep_never_reuses_a_run_with_other_settings(tiny_minari, tmp_path, capsys):
    from iql_tutorial.runs.sweep import main as sweep_main

    base = ["--datasets", DATA, "--seeds", "0", "--policies", "awr", "--runs", str(tmp_path / "runs"), "--results",
            str(tmp_path / "results"), "--device", "cpu", "--mode", "eager", "--eval-episodes", "1"]  # fmt: skip
    assert sweep_main([*base, "--steps", "20", "--eval-every", "10"]) == 0
    ckpt = tmp_path / "runs" / "tests_pendulum_tiny-v0-awr-seed0" / "checkpoint.pt"
    stamp = ckpt.stat().st_mtime_ns
    csv = (tmp_path / "results" / "sweep.csv").read_text()
    capsys.readouterr()
    assert sweep_main([*base, "--steps", "10", "--eval-every", "5"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "tests_pendulum_tiny-v0-awr-seed0" in line and "steps: 20 in run.json, 10 now" in line
    assert "eval_every: 10 in run.json, 5 now" in line
    assert ckpt.stat().st_mtime_ns == stamp and (tmp_path / "results" / "sweep.csv").read_text() == csv
    # an unknown dataset second in the list stops the sweep before its first run
    assert sweep_main([*base, "--runs", str(tmp_path / "r2"), "--steps", "20", "--datasets", DATA,
                       "tests/pendulum/nope-v0"]) == 2  # fmt: skip
    assert "Unknown dataset id 'tests/pendulum/nope-v0'" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r2").exists()


def test_the_sweep_writes_outside_the_source_tree_by_default():
    from iql_tutorial.runs.sweep import SweepConfig

    cfg = SweepConfig(steps=10)
    assert not Path(cfg.results).is_absolute() and Path(cfg.results).parts[0] == "runs"  # /runs/ is git-ignored
    ignored = subprocess.run(["git", "check-ignore", "-q", f"{cfg.results}/x.csv"], cwd=REPO)
    assert ignored.returncode == 0


# -------------------------------------------------------------------------------------------- data
def test_data_help_lists_import_and_list_says_where_it_looked(tmp_path, capsys):
    from iql_tutorial.data.importer import import_arrays
    from iql_tutorial.datasets.cli import main as data_main

    assert data_main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "import FILE --id" in text and "observations       [T, d]" in text and "terminals" in text
    with minari_path(tmp_path / "missing"):
        assert data_main(["list"]) == 0
    assert f"looked in {tmp_path / 'missing'} (MINARI_DATASETS_PATH): the folder does not exist" in (
        capsys.readouterr().out
    )
    rng = np.random.default_rng(0)
    with minari_path(tmp_path / "minari"):
        import_arrays({"observations": rng.normal(size=(20, 2)), "actions": rng.uniform(-1, 1, (20, 1)),
                       "rewards": rng.normal(size=20), "terminals": np.zeros(20), "timeouts": np.arange(20) % 10 == 9},
                      "me/mine/logged-v0", action_low=-1, action_high=1)  # fmt: skip
        assert data_main(["list"]) == 0
    out = capsys.readouterr().out
    assert f"looked in {tmp_path / 'minari'}" in out and "\n  me/mine/logged-v0" in out


def test_the_readme_import_example_works_as_written(tmp_path, monkeypatch, capsys):
    from iql_tutorial.datasets.cli import main as data_main

    line = next(x for x in (REPO / "README.md").read_text().splitlines() if " iql_tutorial data import " in x)
    args = line.split("#")[0].split("iql_tutorial data", 1)[1].split()
    rng = np.random.default_rng(0)
    monkeypatch.chdir(tmp_path)
    np.savez(args[1], observations=rng.normal(size=(40, 3)), actions=rng.uniform(-1, 1, (40, 1)),
             rewards=rng.normal(size=40), terminals=np.zeros(40), timeouts=np.arange(40) % 20 == 19)  # fmt: skip
    with minari_path(tmp_path / "minari"):
        assert data_main(args) == 0, capsys.readouterr().err


def test_bench_refuses_negative_rounds_at_once(capsys):
    from iql_tutorial.speed.bench import main as bench_main

    with pytest.raises(SystemExit) as e:
        bench_main(["--smoke", "--rounds", "-1"])
    assert e.value.code == 2
    assert one_error_line(capsys.readouterr().err) == "error: --rounds -1: must be a positive number."


# ------------------------------------------------------------------- processes: limits, users, signals
def limited(limit: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


# the trainer whose second checkpoint meets a file-size limit (set after its first checkpoint)
LIMITED_AFTER_FIRST = """
import resource, signal, sys
from iql_tutorial.runs import folder
save = folder.save_checkpoint
def save_then_limit(path, state):
    save(path, state)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
folder.save_checkpoint = save_then_limit
from iql_tutorial.runs.train import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_checkpoint_write_past_the_file_size_limit_is_one_line(tiny_datasets_path, tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-c", LIMITED_AFTER_FIRST, *TRAIN, "--out", str(out)],
                       env=env_for(tiny_datasets_path), capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert r.returncode == 2, r.stderr
    line = one_error_line(r.stderr)
    assert line == (
        f"error: cannot write checkpoint {out / 'checkpoint.pt'}: File too large; the file-size limit (ulimit -f) is "
        "too small for it; raise it (the previous checkpoint is intact)"
    )
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 20  # the first one, whole
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    assert not (out / LOCK_NAME).exists()


def test_ctrl_c_says_where_to_resume_and_exits_130(tiny_datasets_path, tmp_path):
    out = tmp_path / "run"
    proc, _, _ = start_paused(tmp_path, tiny_datasets_path, out, 30)  # checkpoint 20 written, row 30 too
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()  # never left paused
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1] == "interrupted at step 30 (last checkpoint at step 20); resume with --resume"
    assert not (out / LOCK_NAME).exists()


def test_data_import_past_the_file_size_limit_never_crashes_and_leaves_nothing(tmp_path):
    root = tmp_path / "minari"
    rng = np.random.default_rng(0)
    n = 4000
    np.savez(tmp_path / "logs.npz", observations=rng.normal(size=(n, 3)), actions=rng.uniform(-1, 1, (n, 1)),
             rewards=rng.normal(size=n), terminals=np.zeros(n), timeouts=np.arange(n) % 200 == 199)  # fmt: skip
    cmd = [sys.executable, "-m", "iql_tutorial", "data", "import", str(tmp_path / "logs.npz"), "--id", "me/task/kind-v0",
           "--action-low", "-1", "--action-high", "1"]  # fmt: skip
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root)}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in (root / "me/task/kind-v0").rglob("*") if p.is_file()}
    r = subprocess.run([*cmd, "--force"], env=env, capture_output=True, text=True, cwd=REPO, timeout=300,
                       preexec_fn=limited(50_000))  # fmt: skip
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])  # not -11 (a segmentation fault)
    line = one_error_line(r.stderr)
    assert line.startswith(f"error: cannot write dataset me/task/kind-v0 into {root}: File too large")
    assert len(r.stderr.strip().splitlines()) == 1
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no .import-* folder left
    after = {p: p.read_bytes() for p in (root / "me/task/kind-v0").rglob("*") if p.is_file()}
    assert after == before  # the dataset --force would have replaced is intact


def without_permission_override() -> tuple[list[str], Any]:
    """How to start a child that a read-only folder really stops: as is when not root; as root
    without the capabilities that let root ignore file permissions (``setpriv`` drops
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set); else as 'nobody'. Returns the
    command prefix and a ``preexec_fn`` (or None); skips, saying why, when none of these can run."""
    if os.geteuid() != 0:
        return [], None
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"], None
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root without setpriv and without a user 'nobody', so a read-only folder "
                    "would not stop the child")  # fmt: skip

    def as_nobody() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return [], as_nobody


def test_a_read_only_folder_is_one_line_for_train_and_import(tmp_path):
    prefix, preexec = without_permission_override()
    base = Path(tempfile.mkdtemp(prefix="iql-ro-", dir="/tmp"))  # readable by the child, unlike tmp_path
    try:
        os.chmod(base, 0o755)
        readonly, home = base / "readonly", base / "home"
        readonly.mkdir(mode=0o555)
        home.mkdir(mode=0o777)
        rng = np.random.default_rng(0)
        np.savez(base / "logs.npz", observations=rng.normal(size=(20, 2)), actions=rng.uniform(-1, 1, (20, 1)),
                 rewards=rng.normal(size=20), terminals=np.zeros(20), timeouts=np.arange(20) % 10 == 9)  # fmt: skip
        os.chmod(base / "logs.npz", 0o644)
        # the interpreter itself may live where 'nobody' cannot reach (pyenv under /root)
        try:
            probe = subprocess.run([*prefix, sys.executable, "-c", "import iql_tutorial"], capture_output=True,
                                   cwd=REPO, timeout=120, preexec_fn=preexec)  # fmt: skip
        except PermissionError as e:
            pytest.skip(f"the unprivileged child cannot run this Python ({e}), so the read-only case cannot run here")
        if probe.returncode != 0:
            pytest.skip("the unprivileged child cannot import the package with this Python, so the read-only case "
                        f"cannot run here: {probe.stderr.decode().strip().splitlines()[-1:]}")  # fmt: skip

        env = {**os.environ, "HOME": str(home), "MINARI_DATASETS_PATH": str(readonly), "IQL_THREADS": "1"}
        out = readonly / "runs" / "x"
        r = subprocess.run([*prefix, sys.executable, "-m", "iql_tutorial", "train", *TRAIN, "--out", str(out)], env=env,
                           capture_output=True, text=True, cwd=REPO, timeout=300, preexec_fn=preexec)  # fmt: skip
        assert r.returncode == 2, r.stderr
        line = one_error_line(r.stderr)
        assert line.startswith(f"error: cannot create the run folder {out}: Permission denied; choose a folder")
        r = subprocess.run([*prefix, sys.executable, "-m", "iql_tutorial", "data", "import", str(base / "logs.npz"), "--id",
                            "me/task/kind-v0", "--action-low", "-1", "--action-high", "1"], env=env,
                           capture_output=True, text=True, cwd=REPO, timeout=300, preexec_fn=preexec)  # fmt: skip
        assert r.returncode == 2, r.stderr
        line = one_error_line(r.stderr)
        assert line.startswith(f"error: cannot write dataset me/task/kind-v0 into {readonly}: Permission denied")
        assert list(readonly.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------- issue 30: a run knows its data, and more
def imported(dataset_id: str, seed: int = 0, scale: float = 1.0, n: int = 60) -> None:
    """A tiny imported dataset (no environment): ``n`` transitions in episodes of 20."""
    from iql_tutorial.data.importer import import_arrays

    rng = np.random.default_rng(seed)
    arrays = {"observations": rng.normal(size=(n, 3)) * scale, "actions": rng.uniform(-1, 1, (n, 1)),
              "rewards": rng.normal(size=n), "terminals": np.zeros(n), "timeouts": np.arange(n) % 20 == 19}  # fmt: skip
    import_arrays(arrays, dataset_id, action_low=-1, action_high=1, force=True)


def test_a_resume_on_changed_data_is_refused_naming_both_fingerprints(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--dataset", "me/t/data-v0", *SMALL, "--val-fraction", "0", "--out", str(out)]
    with minari_path(tmp_path / "minari"):
        imported("me/t/data-v0", seed=0)
        assert train_main(args) == 0
        run = json.loads((out / "run.json").read_text())
        assert run["data_fingerprint"]["transitions"] == 57  # 3 truncated episodes lose their last row
        # a run.json from before fingerprints were recorded: resumed, saying the data is not checked
        (out / "run.json").write_text(json.dumps({k: v for k, v in run.items() if k != "data_fingerprint"}))
        assert train_main([*args, "--resume"]) == 0
        assert "records no fingerprint of its dataset" in capsys.readouterr().err
        (out / "run.json").write_text(json.dumps(run))
        imported("me/t/data-v0", seed=1, n=80)  # data import --force of other arrays
        before = (out / "checkpoint.pt").read_bytes()
        assert train_main([*args, "--resume"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"Cannot resume {out}: dataset me/t/data-v0 is not the data this run trained on" in line
    assert "run.json: 57 transitions in 3 episodes" in line and "now: 76 transitions in 4 episodes" in line
    assert "another --out" in line
    assert (out / "checkpoint.pt").read_bytes() == before


def test_training_stops_at_the_first_non_finite_loss(tmp_path, capsys):
    out = tmp_path / "run"
    with minari_path(tmp_path / "minari"):
        imported("me/t/huge-v0", scale=1e30)  # finite in float32, but no network survives it
        code = train_main(["--dataset", "me/t/huge-v0", *SMALL, "--val-fraction", "0", "--out", str(out)])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert re.search(r"training diverged: \w+_loss (nan|inf).* at step 10; no checkpoint was written", line), line
    assert "the dataset's scale" in line and "learning rate" in line
    assert not (out / "checkpoint.pt").exists() and (out / "run.json").exists()


def copy_run(offline_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(offline_run, out)
    return out


@pytest.mark.parametrize(
    "entries, expected",
    [({"env_step": 300, "agent": {}}, "has no 'step' entry"), ({"step": 30}, "has no 'agent' entry")],
    ids=["a-finetuning-checkpoint", "no-agent"],
)
def test_a_checkpoint_of_another_kind_is_one_line_for_resume_and_finetune(
    tiny_minari, offline_run, tmp_path, capsys, entries, expected
):
    from iql_tutorial.runs.finetune import main as finetune_main
    from iql_tutorial.utils import save_checkpoint

    out = copy_run(offline_run, tmp_path)
    save_checkpoint(out / "checkpoint.pt", entries)
    cfg = train_config(out, dataset="tests/pendulum/short-v0", steps=30, eval_episodes=0, log_every=10,
                       iql=IQLConfig(hidden_dims=(16, 16), batch_size=16), resume=True)  # fmt: skip
    with pytest.raises(ValueError, match=f"{re.escape(str(out / 'checkpoint.pt'))} {expected}, so it is not"):
        train(cfg, progress=False)
    assert finetune_main(["--offline-run", str(out), "--out", str(tmp_path / "ft"), "--device", "cpu"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert expected in line and "stopped at step" not in line and not (tmp_path / "ft").exists()


def test_finetune_refuses_a_checkpoint_of_another_run_and_negative_eval_episodes(
    tiny_minari, offline_run, tmp_path, capsys
):
    from iql_tutorial.runs.finetune import main as finetune_main
    from iql_tutorial.utils import load_checkpoint, save_checkpoint

    out = copy_run(offline_run, tmp_path)
    ckpt = load_checkpoint(out / "checkpoint.pt")
    ckpt["run"]["seed"] = 7
    save_checkpoint(out / "checkpoint.pt", ckpt)
    assert finetune_main(["--offline-run", str(out), "--out", str(tmp_path / "ft"), "--device", "cpu"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "belongs to another run than" in line and "seed: 0 in run.json, 7 now" in line
    assert finetune_main(["--offline-run", str(offline_run), "--eval-episodes", "-1"]) == 2
    assert "eval_episodes=-1 must be >= 0" in one_error_line(capsys.readouterr().err)


def test_finetune_refuses_a_changed_dataset(tiny_minari, offline_run, tmp_path):
    import dataclasses

    from iql_tutorial.data import load_dataset
    from iql_tutorial.runs.finetune import finetune

    data = load_dataset("tests/pendulum/short-v0", reward_norm="locomotion")
    t = dataclasses.replace(data.transitions, rewards=data.transitions.rewards + 1.0)
    changed = dataclasses.replace(data, transitions=t, fingerprint=None)
    cfg = finetune_module.FinetuneConfig(offline_run=str(offline_run), out=str(tmp_path / "ft"), device="cpu")
    with pytest.raises(ValueError, match=f"Cannot fine-tune {re.escape(str(offline_run))}: dataset"):
        finetune(cfg, dataset=changed, progress=False)
    assert not (tmp_path / "ft").exists()


def test_a_run_lock_that_is_a_folder_is_one_line(tiny_minari, tmp_path, capsys):
    out = tmp_path / "run"
    (out / LOCK_NAME).mkdir(parents=True)
    assert train_main(["--dataset", DATA, *SMALL, "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"the lock {out / LOCK_NAME} cannot be read (a folder, not a lock file)" in line


# ------------------------------------------------------------ issue 30: every input checked where it enters
@pytest.mark.parametrize(
    "kw, error, words",
    [
        ({"expectile": "0.7"}, TypeError, "IQLConfig.expectile='0.7' (str) must be a number"),
        ({"max_weight": float("inf")}, ValueError, "IQLConfig.max_weight=inf is out of range"),
        ({"batch_size": 2.5}, TypeError, "IQLConfig.batch_size=2.5 (float) must be an integer"),
        ({"hidden_dims": (32.7, 32)}, TypeError, "IQLConfig.hidden_dims=(32.7, 32) (tuple) must be a sequence of integers"),
        ({"clip_actions": "no"}, TypeError, "IQLConfig.clip_actions='no' (str) must be True or False"),
    ],
)  # fmt: skip
def test_iqlconfig_checks_types_and_ranges_at_construction(kw, error, words):
    with pytest.raises(error) as e:
        IQLConfig(**kw)
    assert str(e.value).startswith(words) and "\n" not in str(e.value)
    assert IQLConfig(batch_size=np.int64(8), hidden_dims=[8, 8], beta=np.float32(3.0)).hidden_dims == (8, 8)


def test_environment_variables_are_parsed_strictly(monkeypatch):
    from iql_tutorial.utils import quick_mode
    from iql_tutorial.utils.threads import cores, decide_threads

    for off in ("", "0", "false", "No", "OFF"):
        monkeypatch.setenv("IQL_QUICK", off)
        assert quick_mode() is False, off
    for on in ("1", "true", "yes", "on"):
        monkeypatch.setenv("IQL_QUICK", on)
        assert quick_mode() is True, on
    monkeypatch.setenv("IQL_QUICK", "maybe")
    with pytest.raises(ValueError, match="IQL_QUICK='maybe' is not understood: set it to 1"):
        quick_mode()
    from iql_tutorial.__main__ import main as command_main

    assert command_main(["train", "--dataset", DATA, "--out", "never-made"]) == 2  # refused by every command
    assert not Path("never-made").exists()
    plan = decide_threads("cpu", {"IQL_THREADS": str(cores() + 997)})
    threads = torch.get_num_threads()
    try:
        notes = plan.apply()
    finally:
        torch.set_num_threads(threads)
    assert any(f"asks for {cores() + 997} threads but this process may use {cores()} core(s)" in n for n in notes)


def test_sweep_lists_lose_their_duplicates_and_name_is_a_plain_file_name(capsys):
    from iql_tutorial.runs.sweep import SweepConfig

    cfg = SweepConfig(datasets=[DATA, DATA], seeds=[0, 0], policies=["awr", "bc", "awr"], steps=10)
    assert (cfg.datasets, cfg.seeds, cfg.policies) == ([DATA], [0], ["awr", "bc"])
    err = capsys.readouterr().err
    assert f"note: --datasets lists {DATA} more than once; each runs once" in err and "--policies lists awr" in err
    for name in ("", "../../escaped", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="is not a plain file name"):
            SweepConfig(name=name, steps=10)


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--device", "banana"], "error: --device banana: device='banana' is not supported"),
        (["--variant", "junk"], "error: --variant junk: IQL_THREADS='junk': 'junk' is not understood"),
        (["--package-mode", "banana"], "error: --package-mode banana: choose one of auto"),
        (["--out", "/nonexistent-iql-folder/bench.txt"], "error: --out /nonexistent-iql-folder/bench.txt: the folder"),
    ],
)
def test_bench_flags_are_checked_before_any_work(capsys, flags, words):
    from iql_tutorial.speed.bench import main as bench_main

    with pytest.raises(SystemExit) as e:
        bench_main(["--smoke", *flags])
    assert e.value.code == 2
    assert one_error_line(capsys.readouterr().err).startswith(words)


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--env", "NoSuchEnv-v0", "--steps", "10"], "error: --env NoSuchEnv-v0: the environment cannot be made"),
        (["--env", "Pendulum-v1", "--steps", "-5"], "error: --steps -5: must be a positive integer."),
    ],
)
def test_sac_flags_are_checked_before_any_folder(tmp_path, capsys, flags, words):
    from iql_tutorial.datasets.sac import main as sac_main

    with pytest.raises(SystemExit) as e:
        sac_main([*flags, "--out", str(tmp_path / "sac")])
    assert e.value.code == 2
    assert one_error_line(capsys.readouterr().err).startswith(words)
    assert not (tmp_path / "sac").exists()


@pytest.mark.parametrize("flags", [["--batch-size", "200000000"], ["--hidden-dims", "60000", "60000"]])
def test_out_of_memory_is_one_line_with_the_size_and_leaves_no_folder(tiny_minari, tmp_path, capsys, flags):
    out = tmp_path / "run"
    assert train_main(["--dataset", DATA, *SMALL, "--out", str(out), *flags]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("error: out of memory: hidden_dims") and " GB available; lower --hidden-dims" in line
    assert not out.exists()


def test_a_book_dataset_that_is_not_built_says_how_to_build_it(tmp_path):
    from iql_tutorial.data import load_dataset

    with minari_path(tmp_path), pytest.raises(FileNotFoundError) as e:
        load_dataset("iqlbook/pendulum/medium-v0")
    assert "python -m iql_tutorial data build pendulum-medium" in str(e.value) and "minari[hf]" not in str(e.value)


# ------------------------------------------------------------------ the agent's own input (issue 31 item 8)
def _agent_error(make) -> str:
    """The message of the ``ValueError`` ``make()`` raises: one line."""
    with pytest.raises(ValueError) as e:
        make()
    message = str(e.value)
    assert "\n" not in message, message
    return message


def test_agent_dimensions_must_be_positive_integers():
    from iql_tutorial import IQLAgent

    for dims in ((3.7, 1), (0, 2), (True, 2), ("4", 2)):
        assert "must be positive integers" in _agent_error(lambda d=dims: IQLAgent(*d))


def test_agent_act_names_the_expected_shape_and_accepts_numpy():
    from iql_tutorial import IQLAgent

    agent = IQLAgent(4, 2, IQLConfig(hidden_dims=(8, 8)))
    assert "shape (3, 5)" in _agent_error(lambda: agent.act(torch.zeros(3, 5))) and "[batch, 4]" in _agent_error(
        lambda: agent.act(torch.zeros(3, 5))
    )
    assert agent.act(np.zeros((3, 4))).shape == (3, 2)  # numpy is converted (float32, the agent's device)
    assert agent.act(np.zeros(4, dtype=np.float32)).shape == (2,)  # one observation


def test_run_updates_refuses_a_negative_count_and_data_of_other_dimensions():
    from iql_tutorial import IQLAgent
    from iql_tutorial.data.transitions import synthetic_transitions

    data = synthetic_transitions(100, "cpu", obs_dim=5, act_dim=2)
    agent = IQLAgent(5, 2, IQLConfig(hidden_dims=(8, 8), batch_size=8))
    assert "count must be a whole number of updates >= 0, got -5" in _agent_error(lambda: agent.run_updates(data, -5))
    other = IQLAgent(4, 2, IQLConfig(hidden_dims=(8, 8), batch_size=8))
    message = _agent_error(lambda: other.run_updates(data, 1))
    assert "(100, 5)" in message and "(100, 2)" in message and "obs_dim=4, act_dim=2" in message
    batch = data.sample(8, torch.Generator().manual_seed(0))
    assert "obs_dim=4" in _agent_error(lambda: other.update(batch))
    assert agent.num_updates == other.num_updates == 0


def test_load_full_state_of_something_else_says_what_is_missing():
    from iql_tutorial import IQLAgent

    message = _agent_error(lambda: IQLAgent(4, 2).load_full_state({}))
    assert message.startswith("The checkpoint lacks networks, actor_opt") and "another dataset" not in message


def test_a_sweep_over_a_book_dataset_that_is_not_built_says_how_to_build_it(tmp_path, capsys):
    from iql_tutorial.runs.sweep import main as sweep_main

    with minari_path(tmp_path / "minari"):
        code = sweep_main(["--datasets", "iqlbook/pendulum/medium-v0", "--steps", "10", "--runs", str(tmp_path / "r"),
                           "--results", str(tmp_path / "res")])  # fmt: skip
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert "data build pendulum-medium" in line and "minari[hf]" not in line
    assert not (tmp_path / "r").exists()
