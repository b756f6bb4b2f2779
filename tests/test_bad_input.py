"""Bad input never passes silently: the library's contract for wrong arguments, in one place.

Every row of ``CASES`` is ``(callable, kwargs, exception type, message regex)``; the regex
names the argument and what was expected, so a row fails when a message stops saying
either. The behaviours that are not a raised exception (a check that reports, a cache that
warns, a training run that stops and restores its weights, a subprocess) have their own
tests below. Which cases are tested where:

==========================  ===========================================================  ======================================================
area                        here                                                          also (older, narrower tests)
==========================  ===========================================================  ======================================================
seeds (one rule)            CASES "seed …": train, dataset, split, make, evaluate,        test_report.py::test_setup_* (seed=-1)
                            collect_demos, episode_seeds, env.reset, setup, run,
                            cache.store, blahut_arimoto, train_batched
devices, env variables      CASES "MBC_DEVICE …", "MBC_THREADS …";                        test_train.py::test_device_selection
                            test_cli_run_refuses_an_unavailable_device
training arguments          CASES "train …"; test_training_stops_on_a_non_finite_loss_*;  test_train.py::test_training_rejects_bad_input,
                            test_train_leaves_the_global_generator_alone                  test_batched.py::test_rejects_what_it_cannot_batch
checkpoints                 CASES "checkpoint …"; test_checkpoint_bare_filename_*,        test_train.py::test_checkpoint_round_trip
                            test_checkpoint_failed_write_keeps_the_old_file
policies (config, obs,      CASES "config …", "sample …", "loss …"                        test_policies.py::test_config_validation,
batch)                                                                                    test_policies.py::test_unknown_options_and_families_are_rejected,
                                                                                          test_train.py::test_policy_factory_rejects_bad_input
data                        CASES "dataset …", "chunk_trajectories …"                     test_data.py::test_bad_data_is_rejected_clearly
tasks                       CASES "task …"                                                test_tasks.py::test_bad_task_config_is_rejected_clearly,
                                                                                          test_tasks.py::test_assign_rejects_mismatched_shapes
control                     CASES "ensemble_weights …", "executor …"                      test_control.py::test_executor_validation
theory                      CASES "theory …"                                              test_theory.py::test_bad_inputs_raise_value_error
diagnostics                 CASES "mode_coverage …"                                       test_diag_modes.py, test_diag_lipschitz.py::test_bad_inputs
robot envs                  CASES "env …"; test_envs_import_and_doctor_without_osmesa     test_envs.py::test_bad_input_raises_clear_errors,
                                                                                          test_envs.py::test_evaluate_rejects_bad_policies
results cache               CASES "cache …"; test_run_keeps_its_rows_when_the_cache_*,    test_experiment_cache.py::test_failed_store_leaves_nothing_behind
                            test_cache_load_returns_none_for_a_malformed_file
exercise checks             test_grading_never_accepts_the_wrong_kind_of_answer           test_grading*.py
experiments                 —                                                             test_experiment_*.py::test_bad_* (each experiment's own arguments)
==========================  ===========================================================  ======================================================
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

import mbc_lib
from mbc_lib import data as data_mod
from mbc_lib import experiments, grading, policies, tasks, theory
from mbc_lib.control import ChunkExecutor, ensemble_weights
from mbc_lib.diagnostics import modes as diag_modes
from mbc_lib.experiments import cache
from mbc_lib.train import NonFiniteLossError, load_checkpoint, save_checkpoint, train

FAMILIES = policies.families()  # every registered family follows the same input contract
NAN, INF = float("nan"), float("inf")
#: a device that does not exist on this machine (CUDA-less CI: "cuda"; a GPU machine: a 100th GPU)
BAD_DEVICE = "cuda:99" if torch.cuda.is_available() else "cuda"
SEED = r"seed must be a non-negative integer below 2\*\*63"
CORRUPT = r"corrupt or truncated checkpoint"


# -- small builders (cheap: every case fails before any real work) ---------------------------------
def _data(n: int = 64):
    return tasks.make("fork", chunk_len=4).dataset(n, seed=0)


def _policy(family: str = "regression", **config: Any):
    return policies.make(family, **{"obs_dim": 1, "action_dim": 1, "chunk_len": 4, "width": 8, "depth": 1, "seed": 0,
                                    **config})


def _train(**kwargs: Any):
    return train(_policy(), _data(), **{"steps": 2, "progress": False, **kwargs})


def _sample(family: str, obs: Any):
    return _policy(family).sample(obs, 2)


def _loss(family: str, chunk: Any):
    return _policy(family).loss({"obs": torch.zeros(len(chunk), 1), "chunk": torch.as_tensor(chunk)})


def _nan_chunk():
    chunk = torch.zeros(3, 4, 1)
    chunk[1, 2, 0] = NAN
    return chunk


def _checkpoint_bytes(data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.pt"
        path.write_bytes(data)
        return load_checkpoint(path)


def _saved_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return save_checkpoint(_policy(), Path(tmp) / "policy.pt").read_bytes()


def _checkpoint_payload(edit: Callable[[dict], Any]):
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(_policy(), Path(tmp) / "policy.pt")
        payload = torch.load(path, weights_only=True)
        torch.save(edit(payload), path)
        return load_checkpoint(path)


def _with_nan_weight(payload: dict) -> dict:
    name = next(k for k in payload["state_dict"] if k.startswith("net."))
    payload["state_dict"][name] = payload["state_dict"][name] * NAN
    return payload


def _save_under_a_file():
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "afile").write_text("not a directory")
        return save_checkpoint(_policy(), Path(tmp) / "afile" / "policy.pt")


def _env(**kwargs: Any):
    from mbc_lib import envs

    return envs.make("mbc/PathGaps-v0", **kwargs)


def _env_step(action: Any):
    env = _env()
    env.reset(seed=0)
    return env.step(action)


def _evaluate(**kwargs: Any):
    from mbc_lib import envs

    return envs.evaluate(lambda obs: torch.zeros(len(obs), 4, 2), "mbc/PathGaps-v0",
                         **{"n_episodes": 1, "executor": ChunkExecutor(4), "progress": False, **kwargs})


def _collect(**kwargs: Any):
    from mbc_lib import envs

    return envs.collect_demos("mbc/PathGaps-v0", **{"n_episodes": 1, "progress": False, **kwargs})


def _episode_seeds(seed: Any):
    from mbc_lib import envs

    return envs.episode_seeds(seed, 3)


def _train_batched(**kwargs: Any):
    from mbc_lib.batched import train_batched

    pols = [_policy("cvae"), _policy("cvae")]
    return train_batched(pols, _data(), **{"steps": 2, "progress": False, **kwargs})


def _blahut(**kwargs: Any):
    return theory.blahut_arimoto([-2.0, 2.0], [0.5, 0.5], 1.0, 1.0, **kwargs)


class Case(NamedTuple):
    id: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    exc: type[BaseException]
    match: str
    env: dict[str, str] | None = None  # environment variables set for the call


CASES: list[Case] = [
    # -- seeds: one rule everywhere --------------------------------------------------------------
    Case("seed train -1", _train, dict(seed=-1), ValueError, SEED),
    Case("seed train True", _train, dict(seed=True), TypeError, SEED),
    Case("seed train 1.5", _train, dict(seed=1.5), TypeError, SEED),
    Case("seed dataset -1", lambda **kw: tasks.make("fork").dataset(4, **kw), dict(seed=-1), ValueError, SEED),
    Case("seed dataset 2**70", lambda **kw: tasks.make("fork").dataset(4, **kw), dict(seed=2**70), ValueError, SEED),
    Case("seed split -1", lambda **kw: _data().split(**kw), dict(seed=-1), ValueError, SEED),
    Case("seed policies.make -1", lambda **kw: policies.make("regression", **kw), dict(seed=-1), ValueError, SEED),
    Case("seed setup -1", lambda **kw: mbc_lib.setup(quiet=True, **kw), dict(seed=-1), ValueError, SEED),
    Case("seed experiments.run -1", lambda **kw: experiments.run("averaging", profile="fast", **kw), dict(seed=-1),
         ValueError, SEED),
    Case("seed cache.store -1", lambda **kw: cache.store("demo", [{"x": 1}], "fast", **kw), dict(seed=-1),
         ValueError, SEED),
    Case("seed blahut_arimoto -1", _blahut, dict(seed=-1), ValueError, SEED),
    Case("seed train_batched -1", _train_batched, dict(seed=[0, -1]), ValueError, SEED),
    Case("seed episode_seeds -1", _episode_seeds, dict(seed=-1), ValueError, SEED),
    Case("seed evaluate -1", _evaluate, dict(seed=-1), ValueError, SEED),
    Case("seed collect_demos -1", _collect, dict(seed=-1), ValueError, SEED),
    Case("seed env.reset -1", lambda **kw: _env().reset(**kw), dict(seed=-1), ValueError, SEED),
    # -- devices and environment variables: one rule at every entry point ------------------------
    Case("MBC_DEVICE train", _train, {}, ValueError, r"MBC_DEVICE='cuda.*' asks for CUDA", {"MBC_DEVICE": BAD_DEVICE}),
    Case("MBC_DEVICE setup", lambda: mbc_lib.setup(quiet=True), {}, ValueError, r"MBC_DEVICE='cuda.*' asks for CUDA",
         {"MBC_DEVICE": BAD_DEVICE}),
    Case("MBC_DEVICE run averaging", lambda: experiments.run("averaging", profile="fast"), {}, ValueError,
         r"MBC_DEVICE='cuda.*' asks for CUDA", {"MBC_DEVICE": BAD_DEVICE}),
    Case("MBC_DEVICE train(device='cpu')", _train, dict(device="cpu"), ValueError, r"MBC_DEVICE='cuda.*' asks for CUDA",
         {"MBC_DEVICE": BAD_DEVICE}),
    Case("MBC_DEVICE evaluate", _evaluate, {}, ValueError, r"MBC_DEVICE='cuda.*' asks for CUDA",
         {"MBC_DEVICE": BAD_DEVICE}),
    Case("MBC_DEVICE not a device", _train, {}, ValueError, r"MBC_DEVICE='gpu' is not a device name; expected 'cpu'",
         {"MBC_DEVICE": "gpu"}),
    Case("device= not available", _train, dict(device=BAD_DEVICE), ValueError, r"device='cuda.*' asks for CUDA",
         {"MBC_DEVICE": ""}),
    Case("MBC_THREADS train", _train, {}, ValueError, r"MBC_THREADS must be a whole number of CPU threads .*got 'abc'",
         {"MBC_THREADS": "abc"}),
    Case("MBC_THREADS setup", lambda: mbc_lib.setup(quiet=True), {}, ValueError, r"MBC_THREADS must be a whole number",
         {"MBC_THREADS": "-2"}),
    # -- training arguments -----------------------------------------------------------------------
    Case("train grad_clip=-1", _train, dict(grad_clip=-1), ValueError, r"grad_clip must be > 0 \(a finite number"),
    Case("train grad_clip=0", _train, dict(grad_clip=0), ValueError, r"grad_clip must be > 0 .*or None for no clipping"),
    Case("train grad_clip=nan", _train, dict(grad_clip=NAN), ValueError, r"grad_clip must be > 0 \(a finite number"),
    Case("train lr=inf", _train, dict(lr=INF), ValueError, r"lr must be > 0 \(a finite number; learning rate\), got inf"),
    Case("train lr=nan", _train, dict(lr=NAN), ValueError, r"lr must be > 0 \(a finite number"),
    Case("train lr=0", _train, dict(lr=0), ValueError, r"lr must be > 0"),
    Case("train steps=2.5", _train, dict(steps=2.5), TypeError, r"steps must be an integer >= 1 .*got float 2\.5"),
    Case("train steps=0", _train, dict(steps=0), ValueError, r"steps must be an integer >= 1"),
    Case("train batch_size=0", _train, dict(batch_size=0), ValueError, r"batch_size must be an integer >= 1"),
    Case("train weight_decay=nan", _train, dict(weight_decay=NAN), ValueError, r"weight_decay must be >= 0 \(a finite"),
    Case("train ema_decay=1.5", _train, dict(ema_decay=1.5), ValueError, r"ema_decay must be >= 0 and < 1"),
    Case("train warmup=2.5", _train, dict(warmup=2.5), TypeError, r"warmup must be an integer >= 0"),
    Case("train log_every=0", _train, dict(log_every=0), ValueError, r"log_every must be an integer >= 1"),
    Case("train_batched lr=inf", _train_batched, dict(lr=INF), ValueError, r"lr must be > 0 \(a finite number"),
    # -- checkpoints ------------------------------------------------------------------------------
    Case("checkpoint empty file", _checkpoint_bytes, dict(data=b""), ValueError, CORRUPT),
    Case("checkpoint random bytes", _checkpoint_bytes, dict(data=np.random.default_rng(0).bytes(4096)), ValueError, CORRUPT),
    Case("checkpoint truncated", lambda: _checkpoint_bytes(_saved_bytes()[:300]), {}, ValueError, CORRUPT),
    Case("checkpoint holding a list", _checkpoint_payload, dict(edit=lambda p: [1, 2]), ValueError,
         r"is not an mbc_lib checkpoint: expected a dict with keys \['family', 'config', 'state_dict'\], got a list"),
    Case("checkpoint family/config mismatch", _checkpoint_payload, dict(edit=lambda p: {**p, "family": "cvae"}),
         ValueError, r"its config does not fit policy family 'cvae'"),
    Case("checkpoint unknown family", _checkpoint_payload, dict(edit=lambda p: {**p, "family": "gan"}),
         ValueError, r"unknown policy family 'gan'; known families: .*cvae, .*regression"),
    Case("checkpoint NaN weights", _checkpoint_payload, dict(edit=_with_nan_weight), ValueError,
         r"\(family 'regression'\) holds NaN or inf weights \(net\..*retrain"),
    Case("checkpoint parent is a file", _save_under_a_file, {}, NotADirectoryError,
         r"cannot save the checkpoint .*afile is a file, not a directory"),
    Case("checkpoint arguments swapped", lambda: save_checkpoint("policy.pt", _policy()), {}, TypeError,
         r"policy must be an mbc_lib Policy, got str"),
    Case("checkpoint missing file", lambda: load_checkpoint("/nonexistent/policy.pt"), {}, FileNotFoundError,
         r"no checkpoint at /nonexistent/policy\.pt"),
    # -- policy configs, observations and batches -------------------------------------------------
    Case("config width=2.5", lambda: _policy(width=2.5), {}, ValueError, r"width \(backbone\) must be an integer >= 1"),
    Case("config depth=1.5", lambda: policies.make("flow", depth=1.5), {}, ValueError,
         r"depth \(backbone\) must be an integer >= 0, got 1\.5"),
    Case("config mixture min_std=inf", lambda: _policy("mixture", min_std=INF), {}, ValueError,
         r"min_std must be a finite number > 0"),
    Case("config mixture std_scale=nan", lambda: _policy("mixture", std_scale=NAN), {}, ValueError,
         r"std_scale must be a finite number >= 0"),
    *[Case(f"sample {f} NaN obs", _sample, dict(family=f, obs=torch.tensor([[0.0], [NAN]])), ValueError,
           r"obs contains 1 non-finite value\(s\) \(NaN or inf\)") for f in FAMILIES],
    *[Case(f"sample {f} inf obs", _sample, dict(family=f, obs=[[INF]]), ValueError,
           r"obs contains 1 non-finite value") for f in FAMILIES],
    *[Case(f"loss {f} NaN chunk", _loss, dict(family=f, chunk=_nan_chunk()), ValueError,
           r"batch\['chunk'\] contains 1 non-finite value\(s\) \(NaN or inf\).*finite numbers") for f in FAMILIES],
    Case("sample n=True", lambda: _policy().sample(torch.zeros(1, 1), True), {}, ValueError,
         r"n \(samples per observation\) must be an integer >= 1"),
    # -- data -------------------------------------------------------------------------------------
    Case("dataset modes=[0.7, 1.9]", data_mod.ChunkDataset, dict(obs=torch.zeros(2, 1), chunks=torch.zeros(2, 4, 1),
         modes=[0.7, 1.9]), ValueError, r"modes must be integer labels >= -1 .*got 0\.7"),
    Case("dataset modes=-3", data_mod.ChunkDataset, dict(obs=torch.zeros(2, 1), chunks=torch.zeros(2, 4, 1),
         modes=torch.tensor([0, -3])), ValueError, r"modes must be integer labels >= -1"),
    Case("chunk_trajectories empty trajectory, pad", data_mod.chunk_trajectories,
         dict(observations=[torch.zeros(0, 1)], actions=[torch.zeros(0, 1)], chunk_len=4, pad=True), ValueError,
         r"trajectory 0 is empty \(T=0 steps\)"),
    Case("chunk_trajectories fractional label", data_mod.chunk_trajectories,
         dict(observations=[torch.zeros(5, 1)], actions=[torch.zeros(5, 1)], chunk_len=2, modes=[0.5]), ValueError,
         r"modes must be integer labels"),
    Case("dataset split val_fraction=nan", lambda: _data().split(NAN), {}, ValueError,
         r"val_fraction must be > 0 and < 1"),
    # -- synthetic tasks --------------------------------------------------------------------------
    Case("task fork delta=inf", lambda: tasks.make("fork", delta=INF), {}, ValueError,
         r"fork: delta must be > 0 \(a finite number; branch separation\), got inf"),
    Case("task fork sigma='a'", lambda: tasks.make("fork", sigma="a"), {}, TypeError,
         r"fork: sigma must be >= 0 .*got str 'a'"),
    Case("task fork.modes NaN obs", lambda: tasks.make("fork").modes([[NAN]]), {}, ValueError,
         r"fork: obs contains 1 non-finite value"),
    Case("task ring ring_radius=inf", lambda: tasks.make("ring", ring_radius=INF), {}, ValueError,
         r"ring: ring_radius must be > 0 \(a finite number"),
    Case("task branching delta_max=nan", lambda: tasks.make("branching", delta_max=NAN), {}, ValueError,
         r"branching: delta_max must be > 0 \(a finite number"),
    Case("task dataset n=True", lambda: tasks.make("fork").dataset(True), {}, ValueError, r"n must be an integer >= 1"),
    # -- control ----------------------------------------------------------------------------------
    Case("ensemble_weights m=nan", ensemble_weights, dict(n=3, m=NAN), ValueError,
         r"m: the temporal-ensembling coefficient m must be >= 0 and finite"),
    Case("ensemble_weights m=-1000", ensemble_weights, dict(n=3, m=-1000), ValueError,
         r"coefficient m must be >= 0 and finite .*got -1000"),
    Case("ensemble_weights n=2.5", ensemble_weights, dict(n=2.5, m=0.1), ValueError,
         r"n \(how many predictions to ensemble\) must be an integer >= 1"),
    Case("executor temporal_ensemble=inf", ChunkExecutor, dict(chunk_len=3, temporal_ensemble=INF), ValueError,
         r"temporal_ensemble: the temporal-ensembling coefficient m must be >= 0 and finite"),
    # -- theory -----------------------------------------------------------------------------------
    Case("theory blahut_arimoto n_grid=1", _blahut, dict(n_grid=1), ValueError, r"n_grid must be an integer >= 17 here"),
    Case("theory blahut_arimoto n_codes=0", _blahut, dict(n_codes=0), ValueError, r"n_codes must be an integer >= 1"),
    Case("theory critical_beta K=True", theory.critical_beta_equal_spacing, dict(K=True, delta=4, sigma=1, sigma_d=1),
         ValueError, r"K must be an integer >= 1, got True"),
    Case("theory number as a string", theory.critical_beta_equal_spacing, dict(K=2, delta="4", sigma=1, sigma_d=1),
         TypeError, r"delta must be a number, got str '4'"),
    Case("theory number as an array", theory.critical_beta_equal_spacing,
         dict(K=2, delta=np.array([4.0, 5.0]), sigma=1, sigma_d=1), TypeError,
         r"delta must be a number, got an array of shape \(2,\)"),
    Case("theory rho as a string", theory.fano_bound, dict(weights=[0.5, 0.5], rho="0.1"), TypeError,
         r"rho must be a number, got str"),
    # -- diagnostics ------------------------------------------------------------------------------
    Case("mode_coverage no samples", diag_modes.mode_coverage,
         dict(samples=np.zeros((0, 4, 1)), centers=np.zeros((2, 4, 1)), radius=0.1), ValueError,
         r"samples is empty: mode_coverage needs at least one sampled chunk"),
    # -- robot envs -------------------------------------------------------------------------------
    Case("env step(['a', 'b'])", _env_step, dict(action=["a", "b"]), TypeError,
         r"action must be numbers \(a planar velocity \(vx, vy\) in m/s\)"),
    Case("env step NaN", _env_step, dict(action=[NAN, 0.0]), ValueError, r"non-finite actions"),
    # -- results cache ----------------------------------------------------------------------------
    Case("cache store profile='garbage'", cache.store, dict(name="demo", rows=[{"x": 1}], profile="garbage"),
         ValueError, r"profile must be one of fast, standard, full, got 'garbage'"),
    Case("cache store rows not a list", cache.store, dict(name="demo", rows={"x": 1}, profile="fast"), TypeError,
         r"rows must be a list of dicts"),
    Case("run profile='garbage'", experiments.run, dict(name="averaging", profile="garbage"), ValueError,
         r"profile must be one of fast, standard, full"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_raises_a_clear_error(case: Case, monkeypatch, tmp_path):
    monkeypatch.setenv("MBC_CACHE", str(tmp_path / "cache"))  # nothing is ever written by a failing case
    for name, value in (case.env or {}).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(case.exc, match=case.match) as err:
        case.fn(**case.kwargs)
    assert "weights_only=False" not in str(err.value)  # torch's unsafe advice is never relayed
    assert not any((tmp_path / "cache").glob("*.json"))


def test_case_ids_are_unique():
    assert len({c.id for c in CASES}) == len(CASES)


# -- training that goes wrong while it runs -------------------------------------------------------
def test_training_stops_on_a_non_finite_loss_and_keeps_the_initial_weights():
    policy, fresh = _policy(), _policy()
    with pytest.raises(NonFiniteLossError, match=r"the loss became nan at step \d+ of 20\. Likely cause: .*lr=1e\+06") as err:
        train(policy, _data(), steps=20, lr=1e6, grad_clip=None, log_every=10, progress=False)
    assert err.value.restored_step == 0 and "initial weights" in str(err.value)
    assert all(torch.equal(a, b) for a, b in zip(policy.parameters(), fresh.parameters()))
    assert not policy.training


def test_training_stops_on_a_non_finite_loss_and_restores_the_last_logged_weights():
    policy = _policy()
    loss, calls = policy.loss, []

    def poisoned(batch, *args, **kwargs):  # a loss that turns NaN from the 8th step on
        calls.append(1)
        parts = loss(batch, *args, **kwargs)
        return {k: v * NAN for k, v in parts.items()} if len(calls) >= 8 else parts

    policy.loss = poisoned
    with pytest.raises(NonFiniteLossError, match=r"at step 8 of 12.*keeps the weights after step 5 \(EMA\)") as err:
        train(policy, _data(), steps=12, log_every=5, progress=False)
    assert (err.value.step, err.value.restored_step) == (8, 5) and len(err.value.history.records) == 1
    assert all(torch.isfinite(t).all() for t in policy.state_dict().values())


def test_train_leaves_the_global_generator_alone_and_stays_bit_identical():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    policies_ = [_policy("cvae"), _policy("cvae")]
    h1 = train(policies_[0], _data(), steps=6, seed=4, progress=False)
    assert torch.equal(torch.rand(3), expected)  # the caller's stream continues where it was
    h2 = train(policies_[1], _data(), steps=6, seed=4, progress=False)
    assert h1.records == h2.records
    assert all(torch.equal(a, b) for a, b in zip(policies_[0].state_dict().values(), policies_[1].state_dict().values()))


# -- checkpoints: the paths that work, and a write that fails -------------------------------------
def test_checkpoint_bare_filename_and_new_parent_directories_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    policy = _policy()
    assert save_checkpoint(policy, "policy.pt") == Path("policy.pt") and load_checkpoint("policy.pt").family == "regression"
    assert load_checkpoint(save_checkpoint(policy, tmp_path / "a" / "b" / "p.pt")).family == "regression"


def test_checkpoint_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(_policy(), tmp_path / "policy.pt")
    before = path.read_bytes()

    def full_disk(*args, **kwargs):  # what torch raises when the disk fills up mid-write
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 128")

    monkeypatch.setattr("mbc_lib.train.torch.save", full_disk)
    with pytest.raises(OSError, match=r"could not write the checkpoint .*disk full.*previous file is unchanged") as err:
        save_checkpoint(_policy("flow"), path)
    assert "inline_container" not in str(err.value)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["policy.pt"]


def test_checkpoint_of_nan_weights_is_not_written(tmp_path):
    policy = _policy()
    with torch.no_grad():
        next(policy.parameters()).fill_(NAN)
    with pytest.raises(ValueError, match=r"refusing to save a regression policy whose weights hold NaN or inf"):
        save_checkpoint(policy, tmp_path / "p.pt")
    assert not list(tmp_path.iterdir())


# -- devices from the command line ---------------------------------------------------------------
def test_cli_run_refuses_an_unavailable_device():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    env = {**os.environ, "MBC_DEVICE": "cuda", "MBC_PROGRESS": "0"}
    out = subprocess.run([sys.executable, "-m", "mbc_lib", "run", "averaging", "--profile", "fast"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "MBC_DEVICE='cuda' asks for CUDA but CUDA is not available" in out.stderr
    assert not out.stdout  # nothing ran


# -- rendering backend whose library is missing --------------------------------------------------
_NO_OSMESA = r"""
import ctypes, sys
real = ctypes.CDLL
def cdll(name, *args, **kwargs):  # this machine may have libOSMesa: make it look absent
    if "OSMesa" in str(name):
        raise OSError(f"{name}: cannot open shared object file")
    return real(name, *args, **kwargs)
ctypes.CDLL = cdll
import mbc_lib.envs as envs  # used to crash inside mujoco/PyOpenGL ('NoneType' ... 'glGetError')
from mbc_lib.envs import render
render._probe = lambda *a, **k: "not probed in this test"  # keep the test quick: no subprocesses
doc = envs.doctor()
assert not doc.ok, doc
env = envs.make("mbc/PathGaps-v0")  # simulation needs no OpenGL
env.reset(seed=0)
env.step([0.1, 0.0])
import mbc_lib
info = mbc_lib.setup(render=True, quiet=True)
assert info["render"] == "none", info
try:
    envs.render_trajectory(env, [[0.0] * env.task.model.nq])
except RuntimeError as err:
    print("RENDER:", err)
import os
print("MUJOCO_GL:", os.environ["MUJOCO_GL"])
print("DOCTOR:", doc.message)
"""


def test_envs_import_and_doctor_without_osmesa():
    env = {**os.environ, "MUJOCO_GL": "osmesa", "MBC_PROGRESS": "0"}
    env.pop("PYOPENGL_PLATFORM", None)
    out = subprocess.run([sys.executable, "-c", _NO_OSMESA], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    doctor = out.stdout.split("DOCTOR:", 1)[1]
    assert "MUJOCO_GL=osmesa needs the OpenGL library libOSMesa" in doctor
    assert "libosmesa6" in doctor and "MUJOCO_GL=egl" in doctor
    assert "RENDER: cannot render:" in out.stdout and "MUJOCO_GL: osmesa" in out.stdout  # the user's choice is kept


# -- the results cache: a table is never lost to it ------------------------------------------------
def _fake_experiment(monkeypatch) -> list[int]:
    calls: list[int] = []

    def fake(profile=None, seed=0):
        calls.append(seed)
        return [{"value": 1.5, "seed": seed}]

    monkeypatch.setitem(experiments.EXPERIMENTS, "fake", fake)
    return calls


@pytest.mark.parametrize("where", ["under a regular file", "read-only directory"])
def test_run_keeps_its_rows_when_the_cache_cannot_be_written(where, tmp_path, monkeypatch):
    calls = _fake_experiment(monkeypatch)
    if where == "under a regular file":
        (tmp_path / "file").write_text("x")
        monkeypatch.setenv("MBC_CACHE", str(tmp_path / "file" / "cache"))
    else:  # chmod does not stop root (CI containers): refuse the write the way a read-only directory does
        monkeypatch.setenv("MBC_CACHE", str(tmp_path))

        def read_only(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(cache.tempfile, "mkstemp", read_only)
    with pytest.warns(UserWarning, match=r"experiment 'fake': the results were computed but not cached .*MBC_CACHE"):
        rows = experiments.run("fake", profile="fast", seed=3, use_cache=True)
    assert rows == [{"value": 1.5, "seed": 3}] and calls == [3]


@pytest.mark.parametrize("content", ['[1, 2]', '"text"', "null", "{}", '{"source": "SRC", "rows": {"a": 1}}',
                                     '{"source": "SRC", "rows": [1, 2]}', '{"source": "SRC", "rows": [{"a": 1}, 3]}',
                                     "{not json", "\xff\xfe"])
def test_cache_load_returns_none_for_a_malformed_file(content, tmp_path, monkeypatch):
    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    path = tmp_path / f"{cache.key('demo', 'fast', 0)}.json"
    path.write_text(content.replace("SRC", cache.source_hash()), encoding="latin-1")
    assert cache.load("demo", "fast", 0) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calls = _fake_experiment(monkeypatch)
        path.rename(tmp_path / f"{cache.key('fake', 'fast', 0)}.json")
        assert experiments.run("fake", profile="fast", use_cache=True) == [{"value": 1.5, "seed": 0}] and calls == [0]
    assert json.loads((tmp_path / f"{cache.key('fake', 'fast', 0)}.json").read_text())["rows"]  # rewritten, valid


# -- exercise checks: the wrong kind of answer never passes ----------------------------------------
@pytest.mark.parametrize("check,answer,match", [
    (grading.check_l2_loss, lambda p, t: str(((p - t) ** 2).mean().item()),
     r"expected a number, got the text '.*' \(a str\); return the value itself, not str\(value\)"),
    (grading.check_l2_loss, lambda p, t: ((p - t) ** 2).mean(-1),
     r"expected a single number \(a scalar\), got a Tensor of shape \(4,\); reduce it"),
    (grading.check_l1_loss, lambda p, t: ((p - t).abs()).numpy().mean(-1),
     r"expected a single number \(a scalar\), got a ndarray of shape \(4,\)"),
    (grading.check_l2_loss, lambda p, t: None, r"expected a number, got NoneType"),
], ids=["str(value)", "tensor [B]", "array [B]", "None"])
def test_grading_never_accepts_the_wrong_kind_of_answer(check, answer, match):
    result = check(answer)
    assert not result.passed and not result.not_implemented
    assert any(__import__("re").search(match, m) for m in result.messages), result.messages


def test_grading_still_accepts_numbers_of_every_kind():
    for answer in (lambda p, t: ((p - t) ** 2).mean(), lambda p, t: float(((p - t) ** 2).mean()),
                   lambda p, t: np.float64(((p - t) ** 2).mean())):
        assert grading.check_l2_loss(answer).passed
    assert math.isclose(float(ensemble_weights(3, 0.0).sum()), 1.0, rel_tol=1e-6)
