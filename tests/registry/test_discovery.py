"""The registry's own entry-point scan agrees with importlib.metadata."""

from __future__ import annotations

import importlib.metadata

import pytest

import genaisdk
from genaisdk.registry import scan_entry_points
from genaisdk.testing import fake_distribution


@pytest.mark.parametrize("group", ["console_scripts", "pytest11", "genaisdk"])
def test_scan_matches_importlib_metadata(group: str) -> None:
    expected = sorted(
        (ep.name, ep.value.split(" [")[0], ep.dist.name, ep.dist.version)
        for ep in importlib.metadata.entry_points(group=group)
    )
    found = sorted((ep.name, ep.target, ep.distribution, ep.version) for ep in scan_entry_points(group))
    assert found == expected
    if group == "console_scripts":
        assert ("genai", "genaisdk.cli:main", "genaisdk", genaisdk.__version__) in found


def test_scan_finds_what_importlib_metadata_finds_in_every_group_with_a_plugin_installed() -> None:
    """The same sys.path, a fake plugin distribution on it: both readers list the same entry
    points, group by group (the registry's scan is a faster reader, not a different answer)."""
    entry_points = {"fake-a": "fake_pkg.a", "fake-b": "fake_pkg.b:PLUGIN [extra]"}
    with fake_distribution("Fake.Plugin_Dist", "0.1.dev1", entry_points=entry_points):
        stdlib = importlib.metadata.entry_points()
        groups = set(stdlib.groups)
        assert "genaisdk" in groups
        for group in sorted(groups):
            expected = sorted(
                (ep.name, ep.value.split(" [")[0].split("[")[0].strip(), ep.dist.name, ep.dist.version)
                for ep in stdlib.select(group=group)
            )
            found = sorted((ep.name, ep.target, ep.distribution, ep.version) for ep in scan_entry_points(group))
            assert found == expected, group
        ours = {ep.name: ep for ep in scan_entry_points("genaisdk")}
    assert (ours["fake-b"].target, ours["fake-b"].distribution) == ("fake_pkg.b:PLUGIN", "Fake.Plugin_Dist")


def test_scan_reads_sections_comments_extras_and_the_first_distribution_only(tmp_path) -> None:
    def dist(root, folder, name, version, entry_points):
        info = root / folder
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: body\n")
        (info / "entry_points.txt").write_text(entry_points)

    first, second = tmp_path / "a", tmp_path / "b"
    dist(
        first,
        "My_Plugin-1.2.dist-info",
        "my-plugin",
        "1.2",
        "# comment\n[console_scripts]\nx = y:z\n\n"
        "[genaisdk]\n; comment\ngpus = my_plugin.gpus:PLUGIN [cuda]\nmore=my_plugin.more\n",
    )
    dist(second, "my_plugin-0.9.dist-info", "my-plugin", "0.9", "[genaisdk]\nold = my_plugin.old\n")
    (tmp_path / "not-a-folder.zip").write_bytes(b"")
    paths = [first, second, tmp_path / "not-a-folder.zip", tmp_path / "missing"]
    found = scan_entry_points("genaisdk", [str(p) for p in paths])
    assert [(e.name, e.target, e.distribution, e.version) for e in found] == [
        ("gpus", "my_plugin.gpus:PLUGIN", "my-plugin", "1.2"),
        ("more", "my_plugin.more", "my-plugin", "1.2"),
    ]


def test_an_entry_point_loads_a_module_or_an_attribute() -> None:
    modules = {"pkg_x.inner": "class Holder:\n    VALUE = 42\n"}
    entry_points = {"a": "pkg_x.inner", "b": "pkg_x.inner:Holder.VALUE"}
    with fake_distribution("pkg-x", entry_points=entry_points, modules=modules):
        loaded = {ep.name: ep.load() for ep in scan_entry_points("genaisdk")}
    assert loaded["a"].__name__ == "pkg_x.inner"
    assert loaded["b"] == 42
