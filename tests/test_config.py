"""Parameter profiles (``--profile``) and reproducible array files."""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np
import pytest

import models
from replication.cli import apply_overrides, main
from replication.config import ConfigError, apply_profile, from_mapping, load_params, profile_overrides, section
from replication.io import save_npz
from replication.training import TrainConfig, parse_seeds
from tests.conftest import REPO

PARAMS = {
    "train": {"lr": 0.001, "batch_size": 1024},
    "models": {"mmoe": {"n_experts": 4, "expert_units": [64]}, "ple": {"n_levels": 2}},
    "profiles": {
        "small": {"train": {"batch_size": 256}, "models": {"mmoe": {"expert_units": [16], "tower_units": [8]}}},
        "typo": {"trian": {"lr": 0.1}},
        "recursive": {"profiles": {}},
    },
}


def test_profile_merges_mappings_key_by_key_and_replaces_lists():
    merged = apply_profile(PARAMS, "small")
    assert merged["train"] == {"lr": 0.001, "batch_size": 256}
    assert merged["models"]["mmoe"] == {"n_experts": 4, "expert_units": [16], "tower_units": [8]}
    assert merged["models"]["ple"] == {"n_levels": 2}
    assert PARAMS["train"]["batch_size"] == 1024  # the input is left as it was


@pytest.mark.parametrize("name, message", [
    ("missing", "--profile 'missing': params.yaml has no profiles.missing; profiles: small, typo, recursive"),
    ("typo", "profiles.typo changes trian, which params.yaml has no section for"),
    ("recursive", "profiles.recursive changes profiles"),
])
@pytest.mark.fault
def test_bad_profiles_are_refused_with_the_key(name, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_profile(PARAMS, name)


def test_the_synthetic_profile_of_params_yaml_applies():
    params = apply_profile(load_params(REPO / "params.yaml"), "synthetic")
    assert params["models"]["mmoe"]["n_experts"] == 8  # the MMoE paper's synthetic setting
    base = load_params(REPO / "params.yaml")["train"]
    assert params["train"] == {**base, "max_epochs": 300}  # only the epoch cap differs from census


def test_save_npz_bytes_do_not_depend_on_the_time(tmp_path, monkeypatch):
    arrays = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "y": np.array([1, 2], dtype=np.int64)}
    save_npz(tmp_path / "a.npz", **arrays)
    later = time.time() + 86_400 * 400
    monkeypatch.setattr(time, "time", lambda: later)
    save_npz(tmp_path / "b.npz", **arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "b.npz") as loaded:
        assert sorted(loaded.files) == ["x", "y"]
        np.testing.assert_array_equal(loaded["x"], arrays["x"])
        assert loaded["y"].dtype == np.int64


@pytest.mark.parametrize("profile", ["synthetic", "paper"])
def test_a_profile_as_dvc_overrides_round_trips_to_the_profile_applied(profile) -> None:
    """`make reproduce-paper` passes a profile to `dvc exp run -S` as KEY=VALUE overrides: read back
    (as --set reads them), they give exactly the parameters the profile gives when applied."""
    params = load_params(REPO / "params.yaml")
    overrides = profile_overrides(params, profile)
    assert all(" " not in item for item in overrides)
    assert apply_overrides(params, overrides) == {**apply_profile(params, profile)}


def test_the_paper_profile_is_the_papers_sizes_for_every_model() -> None:
    params = load_params(REPO / "params.yaml")
    paper = apply_profile(params, "paper")
    assert paper["synthetic"]["rows"] == 1_400_000 and paper["synthetic"]["dim"] == 512
    assert sorted(paper["train_models"]) == sorted(paper["synthetic"]["models"]) == models.list_models()
    assert parse_seeds(str(paper["seeds"])) == list(range(10))
    cfg = from_mapping(TrainConfig, section(paper, "train"), "train")
    assert cfg.ensemble == 10 and cfg.device == "auto" and cfg.precision == "fp32"
    assert "-S train.ensemble=10" in main_output(["profile-overrides", "paper"])


def main_output(argv: list[str]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(argv) == 0
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# bfloat16 on a CPU without bf16 instructions: a warning, not hours of silence

X86_AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
X86_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


@pytest.mark.parametrize("text, flags", [
    (X86_AVX2, {"fpu", "sse2", "avx", "avx2", "fma"}),
    (ARM_BF16, {"fp", "asimd", "sve", "bf16", "i8mm"}),
    ("processor\t: 0\nmodel name\t: something\n", None),
])
def test_cpu_flags_are_read_from_the_first_flags_line(text, flags, tmp_path, monkeypatch) -> None:
    from replication import provenance

    (tmp_path / "cpuinfo").write_text(text, encoding="utf-8")
    monkeypatch.setattr(provenance, "CPUINFO", tmp_path / "cpuinfo")
    assert provenance.cpu_flags() == (None if flags is None else frozenset(flags))
    monkeypatch.setattr(provenance, "CPUINFO", tmp_path / "no_such_file")
    assert provenance.cpu_flags() is None


def test_bf16_is_warned_about_only_on_a_cpu_that_emulates_it() -> None:
    from replication.provenance import slow_bf16_warning

    avx2 = frozenset({"avx2", "fma"})
    message = slow_bf16_warning("bf16", "cpu", avx2)
    assert message.startswith("warning: train.precision is bf16, but this CPU has no bfloat16 instructions")
    assert "--set train.precision=fp32" in message
    assert slow_bf16_warning("fp32", "cpu", avx2) is None
    assert slow_bf16_warning("bf16", "cuda:1", avx2) is None  # even where there is no such GPU: not ours to check
    assert slow_bf16_warning("bf16", "cpu", None) is None  # flags unknown: no guess
    assert slow_bf16_warning("bf16", "cpu", frozenset({"avx2", "avx512_bf16"})) is None
    assert slow_bf16_warning("bf16", "cpu", frozenset({"asimd", "bf16"})) is None


@pytest.mark.parametrize("cpuinfo, warned", [(X86_AVX2, True), (X86_BF16, False)])
def test_train_with_the_fast_profile_warns_on_a_cpu_without_bf16(cpuinfo, warned, tmp_path, monkeypatch, capsys) -> None:
    from replication import provenance

    (tmp_path / "cpuinfo").write_text(cpuinfo, encoding="utf-8")
    monkeypatch.setattr(provenance, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    # No data: the command stops there, after reading its parameters.
    code = main(["train", "--data", str(tmp_path / "missing"), "--model", "mmoe", "--out", str(tmp_path / "out"),
                 "--params", str(REPO / "params.yaml"), "--profile", "fast"])
    err = capsys.readouterr().err
    assert code == 2 and "missing" in err
    assert ("warning: train.precision is bf16, but this CPU has no bfloat16 instructions" in err) == warned
