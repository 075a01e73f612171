"""No file oodbench reads can run code: one payload per format, and a marker file that must never
appear. Each payload is a pickle whose `__reduce__` calls `open(marker, "w")` when unpickled by an
unsafe unpickler; the test passes only if oodbench refuses the file in one line AND the marker is
absent (so a refusal that comes after the payload ran still fails)."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from oodbench.errors import UserInputError
from oodbench.models.loading import load_model


class Payload:
    """Unpickling this creates the marker file (what an attacker's os.system would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker), protocol=2)


def _torch_save_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture()
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a payload ran: the marker file was created"


@pytest.fixture(scope="module")
def export_file(tmp_path_factory):
    """A real torch.export program with a dynamic batch (the archive the payloads are put into)."""
    folder = tmp_path_factory.mktemp("pt2")
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval()
    program = torch.export.export(
        net, (torch.rand(2, 1, 2, 2),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    path = folder / "ok.pt2"
    torch.export.save(program, str(path))
    return path


def _rewrite_zip(source: Path, target: Path, replace: dict[str, bytes]) -> None:
    """Copy an archive, replacing (or adding) members named by their path after the top folder."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        top = old.namelist()[0].split("/", 1)[0]
        done = set()
        for info in old.infolist():
            inner = info.filename.split("/", 1)[1]
            data = replace.get(inner, old.read(info.filename))
            done.add(inner)
            new.writestr(info, data)
        for inner, data in replace.items():
            if inner not in done:
                new.writestr(f"{top}/{inner}", data)


def _assert_refused(path: Path, **kwargs) -> str:
    with pytest.raises(UserInputError) as info:
        load_model(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_export_sample_inputs_payload_is_refused(export_file, tmp_path, marker):
    # torch.export.load retries a failed safe load of the sample inputs with weights_only=False.
    bad = tmp_path / "sample.pt2"
    _rewrite_zip(export_file, bad, {"data/sample_inputs/model.pt": _torch_save_bytes(Payload(marker))})
    assert "sample_inputs" in _assert_refused(bad)


def test_export_plain_pickle_sample_inputs_is_refused(export_file, tmp_path, marker):
    bad = tmp_path / "sample_plain.pt2"
    _rewrite_zip(export_file, bad, {"data/sample_inputs/model.pt": _pickle_bytes(marker)})
    _assert_refused(bad)


def _with_pickled_weight(export_file: Path, payload: bytes, target: Path) -> None:
    with zipfile.ZipFile(export_file) as archive:
        name = next(n for n in archive.namelist() if n.endswith("model_weights_config.json"))
        config = json.loads(archive.read(name))
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True
    _rewrite_zip(
        export_file,
        target,
        {
            "data/weights/model_weights_config.json": json.dumps(config).encode(),
            f"data/weights/{first['path_name']}": payload,
        },
    )


def test_export_weights_payload_is_refused(export_file, tmp_path, marker):
    # Pickled weights are read with torch.load(weights_only=False) outright.
    bad = tmp_path / "weights.pt2"
    _with_pickled_weight(export_file, _torch_save_bytes(Payload(marker)), bad)
    assert "data/weights/" in _assert_refused(bad)


def _with_constant(export_file: Path, member: str, payload: bytes, target: Path) -> None:
    config = {
        "config": {"c0": {"path_name": member, "is_param": False, "use_pickle": True, "tensor_meta": None}}
    }
    _rewrite_zip(
        export_file,
        target,
        {
            "data/constants/model_constants_config.json": json.dumps(config).encode(),
            f"data/constants/{member}": payload,
        },
    )


def test_export_tensor_constant_payload_is_refused(export_file, tmp_path, marker):
    bad = tmp_path / "constant.pt2"
    _with_constant(export_file, "tensor_0", _torch_save_bytes(Payload(marker)), bad)
    assert "data/constants/tensor_0" in _assert_refused(bad)


def test_export_opaque_constant_payload_is_refused(export_file, tmp_path, marker):
    # opaque_obj_ constants go through pickle.loads.
    bad = tmp_path / "opaque.pt2"
    _with_constant(export_file, "opaque_obj_0", _pickle_bytes(marker), bad)
    assert "opaque_obj_0" in _assert_refused(bad)


def test_export_aoti_member_is_refused(export_file, tmp_path, marker):
    bad = tmp_path / "aoti.pt2"
    _rewrite_zip(export_file, bad, {"data/aotinductor/model/model.so": b"\x7fELF not really"})
    assert "AOTInductor" in _assert_refused(bad)


def test_export_unpickling_is_guarded_even_without_the_member_check(
    export_file, tmp_path, marker, monkeypatch
):
    # Second line of defence: with the member check switched off, torch's own loader still only
    # gets the safe unpickler (its fallback to weights_only=False is never granted).
    import oodbench.models.loading as external

    monkeypatch.setattr(external, "_check_export_members", lambda path: None)
    for name, build in (
        (
            "sample",
            lambda p: _rewrite_zip(export_file, p, {"data/sample_inputs/model.pt": _pickle_bytes(marker)}),
        ),
        ("weights", lambda p: _with_pickled_weight(export_file, _torch_save_bytes(Payload(marker)), p)),
        ("opaque", lambda p: _with_constant(export_file, "opaque_obj_0", _pickle_bytes(marker), p)),
    ):
        bad = tmp_path / f"{name}.pt2"
        build(bad)
        _assert_refused(bad)
    assert torch.load is external._real_torch_load  # the guard is undone after loading


def test_good_export_still_loads_and_torch_load_is_restored(export_file):
    loaded = load_model(export_file)
    assert loaded.format == "torch.export"
    assert loaded.module(torch.rand(5, 1, 2, 2)).shape == (5, 3)
    import oodbench.models.loading as external

    assert torch.load is external._real_torch_load


def test_corrupt_export_is_one_line_without_torch_traceback(export_file, tmp_path):
    # torch logs its own traceback (to the real stderr, past CliRunner) before it re-raises: run the
    # CLI in a subprocess to see everything a user sees.
    import os
    import subprocess
    import sys

    bad = tmp_path / "truncated.pt2"
    data = export_file.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "oodbench", "run", "--checkpoint", str(bad), "--limit", "8", "-d", "msp"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), lines


def _scripted(tmp_path: Path) -> Path:
    net = torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval())
    path = tmp_path / "scripted.pt"
    torch.jit.save(net, str(path))
    return path


@pytest.mark.parametrize(
    "call", ['builtins.open("{m}", "w")', 'posix.system("touch {m}")', 'os.system("touch {m}")']
)
def test_torchscript_naming_python_is_refused_in_one_line(tmp_path, marker, call):
    good = _scripted(tmp_path)
    with zipfile.ZipFile(good) as archive:
        code_name = next(n for n in archive.namelist() if "/code/" in n and n.endswith(".py"))
        code = archive.read(code_name).decode()
    inner = code_name.split("/", 1)[1]
    injected = code.replace("def forward(self,", "def forward(self,", 1).replace(
        "  input: Tensor) -> Tensor:\n",
        "  input: Tensor) -> Tensor:\n    _0 = " + call.format(m=marker) + "\n",
        1,
    )
    bad = tmp_path / "evil.pt"
    _rewrite_zip(good, bad, {inner: injected.encode()})
    message = _assert_refused(bad)
    assert "refuses" in message


def test_torchscript_data_pickle_payload_is_refused(tmp_path, marker):
    good = _scripted(tmp_path)
    bad = tmp_path / "evil_data.pt"
    _rewrite_zip(good, bad, {"data.pkl": _pickle_bytes(marker)})
    _assert_refused(bad)


def test_state_dict_payload_is_refused(tmp_path, marker):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(_torch_save_bytes({"w": Payload(marker)}))
    assert "never unpickles code" in _assert_refused(bad, arch="small_cnn")


def test_plain_pickle_pt_is_refused(tmp_path, marker):
    bad = tmp_path / "plain.pt"
    bad.write_bytes(_pickle_bytes(marker))
    _assert_refused(bad, arch="small_cnn")


def test_safetensors_payload_is_refused(tmp_path, marker):
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(_torch_save_bytes(Payload(marker)))
    _assert_refused(bad, arch="small_cnn")


def test_oodbench_checkpoint_payload_is_refused(tmp_path, marker):
    from oodbench.training.checkpoints import read_checkpoint

    bad = tmp_path / "ckpt.pt"
    bad.write_bytes(_torch_save_bytes({"format": "oodbench-checkpoint", "x": Payload(marker)}))
    with pytest.raises(UserInputError):
        read_checkpoint(bad)


def test_npz_with_pickled_objects_is_refused(tmp_path, marker):
    from oodbench.data.custom import load_custom_out

    bad = tmp_path / "evil.npz"
    np.savez(bad, x=np.array([Payload(marker)], dtype=object))
    with pytest.raises(UserInputError):
        load_custom_out(f"npz:{bad}", shape=(1, 28, 28))


def test_cifar_batch_payload_is_refused(tmp_path, marker):
    from oodbench.data.torchvision_formats import read_cifar_batch

    bad = tmp_path / "data_batch_1"
    bad.write_bytes(_pickle_bytes(marker))
    with pytest.raises(UserInputError):
        read_cifar_batch(bad, "labels", "CIFAR-10")


def test_score_cache_payload_is_refused(tmp_path, marker):
    from oodbench.results import load_scores

    bad = tmp_path / "scores.npz"
    np.savez(bad, in_scores=np.array([Payload(marker)], dtype=object))
    with pytest.raises(UserInputError):
        load_scores(bad)
