"""Hostile or careless input at oodbench's edges: plug-ins that step out of their lane, user code
that raises, out-of-range values, oversized or malformed files. Every refusal is one line (exit 2
through the CLI) and comes before anything is written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from oodbench.cli import cli
from oodbench.detectors import DETECTORS, create_detector, plugins
from oodbench.detectors.base import ForwardOutputs
from oodbench.errors import UserCodeError, UserInputError
from oodbench.models.loading import load_model

LIMIT = 20


def _plugin(tmp_path: Path, body: str, name: str = "plug.py") -> Path:
    path = tmp_path / name
    path.write_text(
        "import numpy as np\nfrom oodbench.detectors.base import Detector\n\n\n" + textwrap.dedent(body)
    )
    return path


def _cli(args: list[str]):
    return CliRunner().invoke(cli, args)


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    return lines[0]


# --- item 2: plug-ins stay in their lane -------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../../../x", "a/b", "..", "", "x y", "/abs", "a\\b", "c:\\x"])
def test_plugin_name_that_is_not_a_safe_name_is_refused(tmp_path, bad):
    path = _plugin(tmp_path, f"class Evil(Detector):\n    name = {bad!r}\n")
    with pytest.raises(UserInputError, match="is not allowed"):
        create_detector(f"{path}:Evil")


def test_register_detector_with_a_path_name_is_refused():
    with pytest.raises(UserInputError, match="is not allowed"):
        plugins.register_detector("../escape")


def test_plugin_named_like_a_builtin_is_refused_naming_both(tmp_path):
    path = _plugin(tmp_path, "class Fake(Detector):\n    name = 'msp'\n")
    with pytest.raises(UserInputError) as info:
        create_detector(f"{path}:Fake")
    message = str(info.value)
    assert "'msp'" in message and "built-in" in message and "oodbench.detectors.msp" in message
    assert str(path.resolve()) in message and "\n" not in message


def test_two_plugins_with_one_name_are_refused_naming_both(tmp_path):
    first = _plugin(tmp_path, "class A(Detector):\n    name = 'mine'\n", "a.py")
    second = _plugin(tmp_path, "class B(Detector):\n    name = 'mine'\n", "b.py")
    create_detector(f"{first}:A")
    create_detector(f"{first}:A")  # the same plug-in again is fine
    with pytest.raises(UserInputError) as info:
        create_detector(f"{second}:B")
    assert "a.py:A" in str(info.value) and "b.py:B" in str(info.value)


def test_register_detector_shadowing_a_builtin_names_both():
    with pytest.raises(UserInputError, match="built-in detector oodbench.detectors.energy"):

        @plugins.register_detector("energy")
        class Shadow:  # noqa: F841 - never registered
            pass

    assert DETECTORS.get("energy").source == "built-in"


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("class X(Detector):\n    def broken(self)\n        pass\n", "SyntaxError"),
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("import no_such_dependency_xyz\n", "ModuleNotFoundError"),
    ],
)
def test_plugin_import_errors_are_one_line_naming_the_file(tmp_path, body, what):
    path = _plugin(tmp_path, body)
    with pytest.raises(UserCodeError) as info:
        create_detector(f"{path}:X")
    message = str(info.value)
    assert "\n" not in message and str(path) in message and what in message and "importing" in message


def test_plugin_constructor_error_is_one_line(tmp_path):
    path = _plugin(
        tmp_path,
        "class X(Detector):\n    def __init__(self, *, k=1):\n        self.k = 1 / 0\n",
    )
    with pytest.raises(UserCodeError) as info:
        create_detector(f"{path}:X")
    assert "__init__()" in str(info.value) and "ZeroDivisionError" in str(info.value)
    with pytest.raises(UserInputError, match="Bad parameters"):
        create_detector(f"{path}:X", nope=3)  # a wrong keyword is still named as such


BAD_SCORE = """
class Bad(Detector):
    uses = "logits"

    def fit(self, model, **kwargs):
        if getattr(self, "fail_fit", False):
            raise KeyError("missing statistic")
        return self

    def score_outputs(self, outputs):
        return {}["no such key"]
"""


def test_plugin_fit_and_score_errors_are_one_line_naming_file_method_and_line(tmp_path):
    path = _plugin(tmp_path, BAD_SCORE)
    detector = create_detector(f"{path}:Bad")
    with pytest.raises(UserCodeError) as info:
        detector.score_outputs(ForwardOutputs(logits=torch.zeros(2, 3)))
    message = str(info.value)
    assert "score_outputs()" in message and str(path) in message and "KeyError" in message
    assert "(line 15)" in message and "\n" not in message
    assert isinstance(info.value.__cause__, KeyError)  # kept for -v
    detector.fail_fit = True
    with pytest.raises(UserCodeError, match=r"fit\(\).*missing statistic"):
        detector.fit(nn.Identity())


def test_plugin_guard_keeps_the_class_and_user_input_errors(tmp_path):
    path = _plugin(
        tmp_path,
        "from oodbench.errors import UserInputError\n\n\n"
        "class Picky(Detector):\n    def validate(self):\n        raise UserInputError('k must be > 0')\n",
    )
    detector = create_detector(f"{path}:Picky")
    assert type(detector).__name__ == "Picky" and type(detector).__module__.startswith("oodbench_plugin_")
    with pytest.raises(UserInputError, match="^k must be > 0$"):
        detector.validate()


def test_guarded_plugin_instances_stay_plain_and_copyable(tmp_path):
    import copy
    import pickle

    path = _plugin(tmp_path, BAD_SCORE)
    detector = create_detector(f"{path}:Bad")
    assert not {"fit", "score_outputs"} & set(vars(detector))  # the runner keys objects by vars()
    clone = copy.deepcopy(detector)
    clone.fail_fit = True
    with pytest.raises(UserCodeError, match="missing statistic"):
        clone.fit(nn.Identity())
    assert detector.fit(nn.Identity()) is detector  # the clone's state is its own
    assert type(pickle.loads(pickle.dumps(detector))) is type(detector)


def test_in_detector_code_for_objects_given_directly():
    from oodbench.detectors.base import Detector

    class Local(Detector):
        def score_outputs(self, outputs):
            raise ValueError("bad local")

    with pytest.raises(UserCodeError, match=r"score_outputs\(\).*Local.*ValueError: bad local"):
        with plugins.in_detector_code(Local(), "score_outputs"):
            Local().score_outputs(None)
    with pytest.raises(ZeroDivisionError):  # oodbench's own code keeps its traceback: a bug is a bug
        with plugins.in_detector_code(create_detector("msp"), "fit"):
            1 / 0  # noqa: B018


FACTORY = """
from torch import nn


def build(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))


def broken(num_classes=10):
    raise RuntimeError("factory exploded")
"""


@pytest.fixture()
def tiny_model(tmp_path):
    (tmp_path / "netdef.py").write_text(FACTORY)
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    torch.save(net.state_dict(), tmp_path / "w.pt")
    return tmp_path / "w.pt", f"{tmp_path / 'netdef.py'}:build"


def test_plugin_score_error_through_the_cli_is_one_line_and_traceback_under_v(tmp_path, tiny_model):
    weights, arch = tiny_model
    path = _plugin(tmp_path, BAD_SCORE)
    args = [
        "run",
        "--checkpoint",
        str(weights),
        "--arch",
        arch,
        "-d",
        f"{path}:Bad",
        "--limit",
        str(LIMIT),
        "--quiet",
    ]
    args += ["--results-dir", str(tmp_path / "res")]
    line = _one_line(_cli(args))
    assert "score_outputs()" in line and "KeyError" in line and str(path) in line
    verbose = _cli(["-v", *args])
    assert verbose.exit_code == 2 and "Traceback (most recent call last)" in verbose.output
    assert f'File "{path}", line 15, in score_outputs' in verbose.output
    assert not (tmp_path / "res" / "rows.jsonl").exists()


def test_arch_factory_errors_are_one_line(tmp_path, tiny_model):
    weights, arch = tiny_model
    broken = arch.replace(":build", ":broken")
    with pytest.raises(UserCodeError, match=r"broken\(\).*RuntimeError: factory exploded"):
        load_model(weights, arch=broken)
    (tmp_path / "syntax.py").write_text("def build(:\n")
    with pytest.raises(UserCodeError, match="SyntaxError"):
        load_model(weights, arch=f"{tmp_path / 'syntax.py'}:build")


# --- item 1 (the parts that are not payloads) ----------------------------------------------------------


@pytest.mark.parametrize("arch", [":", ":build", "netdef.py:", "a..b:f", "x:1f"])
def test_malformed_arch_is_one_line(tiny_model, arch):
    weights, _ = tiny_model
    with pytest.raises(UserInputError, match="is not a factory"):
        load_model(weights, arch=arch)


def test_extra_key_in_state_dict_is_named_not_blamed_on_a_shape(tmp_path, tiny_model):
    weights, arch = tiny_model
    state = torch.load(weights, weights_only=True)
    state["extra.weight"] = torch.zeros(5, 5)  # the last 2-D weight: misleads the class-count guess
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(UserInputError) as info:
        load_model(tmp_path / "extra.pt", arch=arch)
    assert "unexpected keys extra.weight" in str(info.value) and "shape" not in str(info.value)


# --- item 4: validation at the edges -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Infinity", "not a finite number"),
        ("-Infinity", "not a finite number"),
        ("NaN", "not a finite number"),
        ("1e999", "not a finite number"),
        ("[" * 50_000, "levels of nesting"),
        ("[" * 40 + "]" * 40, "levels of nesting"),
        ("9" * 5000, "out of range"),
        ("1" + "0" * 30, "out of range"),
        ('"' + "x" * 20_000 + '"', "10,000 characters"),
    ],
)
def test_param_values_are_bounded_and_finite(value, message):
    line = _one_line(_cli(["run", "--param", f"odin.temperature={value}"]))
    assert message in line and len(line) < 400


def test_param_depth_check_ignores_brackets_in_strings():
    from oodbench.cli.options import parse_params as _parse_params

    text = '"' + "[" * 100 + '\\"' + "{" * 100 + '"'
    assert _parse_params((f"odin.temperature={text}",))["odin"]["temperature"].startswith("[")
    assert _parse_params(('odin.temperature=[[1, 2], {"a": [3]}]',))["odin"]["temperature"][1] == {"a": [3]}


@pytest.mark.parametrize("seeds", ["99999999999999999999", "4294967296", "-1", "0,1," + "9" * 30])
def test_seeds_outside_32_bits_are_refused(seeds):
    assert "--seeds takes integers from 0 to 4294967295" in _one_line(_cli(["run", "--seeds", seeds]))


def test_largest_seed_is_accepted():
    from oodbench.cli.options import parse_seeds as _parse_seeds

    assert _parse_seeds("0,4294967295") == [0, 2**32 - 1]


def test_train_seed_outside_32_bits_is_refused():
    line = _one_line(_cli(["train", "cross_entropy", "--seed", str(2**32)]))
    assert "4294967295" in line


def test_report_resamples_is_bounded_with_a_memory_estimate(tmp_path):
    line = _one_line(_cli(["report", "--results", str(tmp_path / "none"), "--resamples", "1000000000"]))
    assert "44.7 GiB" in line and "100,000" in line


@pytest.mark.parametrize("normalize", ["0.5/inf", "inf/0.5", "nan/0.5", "0.5/nan", "0.5/1e999"])
def test_normalize_refuses_non_finite_values(tiny_model, normalize):
    weights, arch = tiny_model
    with pytest.raises(UserInputError, match="finite numbers"):
        load_model(weights, arch=arch, normalize=normalize)


def test_pytorch_ood_vim_dimension_is_checked():
    pytest.importorskip("pytorch_ood")
    for value, message in ((-1, ">= 1"), ("abc", "an integer"), (2.5, "an integer")):
        with pytest.raises(UserInputError, match=message):
            create_detector("pytorch-ood:ViM", d=value).validate()


def test_pytorch_ood_vim_records_the_dimension_it_used(tiny_model):
    pytest.importorskip("pytorch_ood")
    from oodbench.data.spec import LabeledImages

    weights, arch = tiny_model
    hidden = FACTORY.replace(
        "nn.Flatten(), nn.Linear(28 * 28, num_classes)",
        "nn.Flatten(), nn.Linear(28 * 28, 6), nn.Linear(6, num_classes)",
    )
    (weights.parent / "hidden.py").write_text(hidden)
    model = load_model(
        _save_hidden(weights.parent), arch=f"{weights.parent / 'hidden.py'}:build", in_shape=(1, 28, 28)
    ).module
    torch.manual_seed(0)
    train = LabeledImages(torch.rand(40, 1, 28, 28), torch.arange(40) % 10, "t", "train")
    detector = create_detector("pytorch-ood:ViM", d=100000)
    detector.fit(model, train=train, val_in=train.x[:4])
    assert detector.params()["d"] < 100000  # what pytorch-ood used, not what was asked


def _save_hidden(folder: Path) -> Path:
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 6), nn.Linear(6, 10))
    torch.save(net.state_dict(), folder / "hidden.pt")
    return folder / "hidden.pt"


def _forged_npz(path: Path, shape: tuple[int, ...], dtype: str = "<f4", data: bytes = b"\0" * 100) -> Path:
    import io
    import zipfile

    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    buffer.write(data)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", buffer.getvalue())
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: _forged_npz(p, (1_000_000, 1, 1000, 1000)), "declares shape"),  # 3.6 TiB declared
        (lambda p: _forged_npz(p, (4000, 1, 1000, 1000), "|u1"), "declares shape"),
        (lambda p: _forged_npz(p, (5, 0, 28), "|u1", b""), "size 0"),
        (lambda p: _forged_npz(p, (5, 28, 0), "|u1", b""), "size 0"),
    ],
)
def test_npz_headers_are_checked_before_allocating(tmp_path, make, message):
    from oodbench.data.custom import load_custom_out

    path = make(tmp_path / "bad.npz")
    with pytest.raises(UserInputError, match=message):
        load_custom_out(f"npz:{path}", shape=(1, 28, 28))


def test_plain_npy_renamed_npz_is_one_line(tmp_path):
    import numpy as np

    from oodbench.data.custom import load_custom_out

    np.save(tmp_path / "images.npy", np.zeros((3, 28, 28), np.uint8))
    (tmp_path / "images.npy").rename(tmp_path / "images.npz")
    with pytest.raises(UserInputError, match="plain .npy file"):
        load_custom_out(f"npz:{tmp_path / 'images.npz'}", shape=(1, 28, 28))


def test_npz_memory_budget(tmp_path):
    import numpy as np

    from oodbench.data.custom import check_npz_header

    np.savez(tmp_path / "x.npz", x=np.zeros((10, 28, 28), np.uint8))
    assert check_npz_header(tmp_path / "x.npz")[0] == (10, 28, 28)
    with pytest.raises(UserInputError, match="GiB in memory"):
        check_npz_header(tmp_path / "x.npz", budget=10 * 28 * 28)  # the float32 copy does not fit


def test_decompression_bomb_is_one_line(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from oodbench.data.image_folders import read_image

    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "bomb.png")
    for limit in (6000, 9000):  # above 2x the limit PIL raises, between 1x and 2x it only warns
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(UserInputError, match="too large to decode safely"):
            read_image(tmp_path / "bomb.png")


def test_float_and_32_bit_images_are_scaled_not_clipped(tmp_path):
    import numpy as np
    from PIL import Image

    from oodbench.data.image_folders import read_image

    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp, mode="F").save(tmp_path / "float01.tif")
    got = read_image(tmp_path / "float01.tif")[0]
    assert got.min() == 0 and got.max() == 255 and got[4, 4] == round(ramp[4, 4] * 255)
    wide = (ramp * 2000.0 - 1000.0).astype(np.float32)  # not in [0, 1]: scaled from its own range
    Image.fromarray(wide, mode="F").save(tmp_path / "float_wide.tif")
    got = read_image(tmp_path / "float_wide.tif")[0]
    assert got.min() == 0 and got.max() == 255 and len(np.unique(got)) > 32
    sixteen = (ramp * 65535).astype(np.int32)  # 16-bit values in a 32-bit image
    Image.fromarray(sixteen, mode="I").save(tmp_path / "sixteen.tif")
    got = read_image(tmp_path / "sixteen.tif")[0]
    assert np.array_equal(got, (sixteen >> 8).astype(np.uint8))
    big = (ramp.astype(np.int64) * 0 + np.arange(64).reshape(8, 8) * 10_000_000).astype(np.int32)
    Image.fromarray(big, mode="I").save(tmp_path / "int32.tif")
    got = read_image(tmp_path / "int32.tif")[0]
    assert got.min() == 0 and got.max() == 255 and len(np.unique(got)) == 64


# --- item 6 (part): outputs that cannot be written are refused before any work ------------------------


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder the test cannot write to (root writes anywhere chmod allows: use /sys then)."""
    import os

    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("option", ["--output", "--write-baseline"])
def test_report_outputs_into_a_read_only_folder_or_under_a_file(tmp_path, option):
    (tmp_path / "a.csv").write_text("x")
    missing_rows = ["report", "--results", str(tmp_path / "no-rows")]  # refused before rows are read
    line = _one_line(_cli([*missing_rows, option, str(tmp_path / "a.csv" / "t.md")]))
    assert "a.csv is a file, not a folder" in line
    line = _one_line(_cli([*missing_rows, option, str(_read_only_folder(tmp_path) / "sub" / "t.md")]))
    assert "cannot write" in line or "not writable" in line


def test_plot_into_a_read_only_folder(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    line = _one_line(
        _cli(
            [
                "plot",
                "--results",
                str(tmp_path / "nope"),
                "--output-dir",
                str(_read_only_folder(tmp_path) / "plots"),
            ]
        )
    )
    assert "cannot write" in line or "not writable" in line
    line = _one_line(
        _cli(["plot", "--results", str(tmp_path / "nope"), "--output-dir", str(tmp_path / "a.csv" / "plots")])
    )
    assert "is a file, not a folder" in line
