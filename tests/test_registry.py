import pytest

from oodbench.errors import UserInputError
from oodbench.registry import Registry


def test_register_get_and_names():
    reg: Registry[int] = Registry("detector")
    reg.register("joint")(1)
    reg.add("msp", 2)
    assert reg.get("joint") == 1
    assert reg.names() == ["joint", "msp"]
    assert "msp" in reg and "odin" not in reg


def test_clash_is_refused():
    reg: Registry[int] = Registry("detector")
    reg.add("msp", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("msp", 2)


def test_unknown_name_suggests_close_match():
    reg: Registry[int] = Registry("detector")
    for name in ["joint", "msp", "odin"]:
        reg.add(name, 0)
    with pytest.raises(UserInputError) as info:
        reg.get("jiont")
    assert str(info.value) == "Unknown detector 'jiont'. Did you mean: joint? Available: joint, msp, odin"
