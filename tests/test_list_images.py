"""`list_image_names` (os.scandir, the fast path) against the pathlib reference it replaced."""

from __future__ import annotations

import os
from pathlib import Path

from oodbench.data.image_folders import IMAGE_SUFFIXES, list_image_names, list_images


def _reference(folder: Path) -> list[str]:
    """The previous implementation: rglob, relative_to, hidden parts skipped, sorted by posix path."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if (
            path.suffix.lower() in IMAGE_SUFFIXES
            and not any(p.startswith(".") for p in rel.parts)
            and path.is_file()
        ):
            found.append(rel.as_posix())
    return sorted(found)


def test_scandir_listing_equals_the_pathlib_reference(tmp_path: Path):
    root = tmp_path / "root"
    files = [
        "a.png", "B.JPG", "c.txt", "z/deep/er/x.jpeg", "z/deep/y.PNG", "z/.hidden/h.png", ".top.png",
        "z/.h.png", "a b/space name.png", "a-b/c.webp", "a.b/d.tif", "ab/e.gif", "noext", "dir.png/f.bmp",
        "u/ü.png",
    ]  # fmt: skip
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "empty").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.png").write_bytes(b"x")
    os.symlink(outside, root / "linked_dir")  # not descended into (as rglob)
    os.symlink(outside / "o.png", root / "linked.png")  # a link to a file counts (as is_file)
    os.symlink(tmp_path / "missing.png", root / "broken.png")  # a broken link does not
    expected = _reference(root)
    assert "linked.png" in expected and "z/deep/er/x.jpeg" in expected and "broken.png" not in expected
    assert list_image_names(root) == expected
    assert list_images(root) == [root / rel for rel in expected]
