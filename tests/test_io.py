import pytest

from components.io import atomic_dir, write_json_atomic


def test_atomic_dir_replaces_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (out / "old.txt").exists()  # nothing visible until the block succeeds
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_keeps_old_on_failure(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:  # noqa: PT012 - fails inside
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_write_json_atomic(tmp_path):
    write_json_atomic(tmp_path / "m" / "x.json", {"b": 1, "a": 2})
    assert (tmp_path / "m" / "x.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
