"""Per-user desktop integration: dgp_studio.desktop_entry.install_desktop_entry."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from dgp_studio import desktop_entry
from dgp_studio.__main__ import run_gui
from dgp_studio.desktop_entry import APP_ID, SESSION_MIME_TYPE, install_desktop_entry, launcher_command

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGING = REPO_ROOT / "packaging"
MIME_NAMESPACE = "{http://www.freedesktop.org/standards/shared-mime-info}"


def _entry_values(desktop_file: Path) -> dict[str, str]:
    lines = desktop_file.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if "=" in line and not line.startswith("#"))


def _validate_desktop_file(desktop_file: Path) -> None:
    validator = shutil.which("desktop-file-validate")
    if validator is None:
        pytest.skip("desktop-file-validate is not installed (Debian: desktop-file-utils)")
    result = subprocess.run(
        [validator, str(desktop_file)], check=False, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_app_id_matches_the_packaging_folder():
    assert (PACKAGING / "app_id.txt").read_text(encoding="utf-8").strip() == APP_ID


def test_installs_entry_metainfo_and_icons_with_an_absolute_exec(tmp_path):
    written = install_desktop_entry(data_home=tmp_path)

    assert written == [
        tmp_path / "applications" / f"{APP_ID}.desktop",
        tmp_path / "metainfo" / f"{APP_ID}.metainfo.xml",
        tmp_path / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg",
        tmp_path / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png",
        tmp_path / "mime" / "packages" / f"{APP_ID}.xml",
    ]
    entry = _entry_values(written[0])
    program, *rest = entry["Exec"].split(" ")
    assert Path(program).is_absolute(), entry["Exec"]
    assert rest[-1] == "%F"
    assert entry["TryExec"] == program
    assert entry["Icon"] == APP_ID
    assert entry["StartupWMClass"] == "dgp-studio"
    # Everything but Exec/TryExec is the packaged entry, unchanged.
    packaged = _entry_values(PACKAGING / f"{APP_ID}.desktop")
    assert {k: v for k, v in entry.items() if k not in {"Exec", "TryExec"}} == {
        k: v for k, v in packaged.items() if k not in {"Exec", "TryExec"}
    }
    assert written[1].read_bytes() == (PACKAGING / f"{APP_ID}.metainfo.xml").read_bytes()
    assert written[2].read_bytes() == (PACKAGING / "icons" / f"{APP_ID}.svg").read_bytes()
    assert _png_size(written[3]) == (256, 256)
    assert written[4].read_bytes() == (PACKAGING / f"{APP_ID}.mime.xml").read_bytes()
    _validate_desktop_file(written[0])


def test_session_files_get_a_mime_type_that_the_entry_opens(tmp_path):
    notes: list[str] = []
    written = install_desktop_entry(launcher=Path("/usr/bin/dgp-studio"), data_home=tmp_path, notes=notes)

    mime_package = tmp_path / "mime" / "packages" / f"{APP_ID}.xml"
    assert mime_package in written
    root = ElementTree.parse(mime_package).getroot()   # raises on a malformed file
    assert root.tag == f"{MIME_NAMESPACE}mime-info"
    (declared,) = root.findall(f"{MIME_NAMESPACE}mime-type")
    assert declared.get("type") == SESSION_MIME_TYPE
    assert [glob.get("pattern") for glob in declared.findall(f"{MIME_NAMESPACE}glob")] == ["*.dgps"]
    assert declared.findtext(f"{MIME_NAMESPACE}comment").strip()
    assert SESSION_MIME_TYPE in _entry_values(written[0])["MimeType"].split(";")
    if shutil.which("update-mime-database") is None:
        assert len(notes) == 1 and "update-mime-database" in notes[0]
    else:
        # The shared MIME database was rebuilt from the package: *.dgps now resolves to the type.
        assert notes == []
        globs = (tmp_path / "mime" / "globs2").read_text(encoding="utf-8").splitlines()
        assert any(line.endswith(f":{SESSION_MIME_TYPE}:*.dgps") for line in globs), globs


def test_metainfo_provides_the_media_types_the_entry_opens():
    entry_types = [t for t in _entry_values(PACKAGING / f"{APP_ID}.desktop")["MimeType"].split(";") if t]
    metainfo = ElementTree.parse(PACKAGING / f"{APP_ID}.metainfo.xml").getroot()
    assert [element.text for element in metainfo.iter("mediatype")] == entry_types


def test_without_update_mime_database_the_summary_says_so(tmp_path, monkeypatch, capsys):
    real_which = shutil.which
    monkeypatch.setattr(
        desktop_entry.shutil, "which",
        lambda name, *args, **kwargs: None if name == "update-mime-database" else real_which(name, *args, **kwargs),
    )
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))

    assert run_gui(["--install-desktop-entry"]) == 0

    printed = capsys.readouterr().out.splitlines()
    assert str(tmp_path / "mime" / "packages" / f"{APP_ID}.xml") in printed
    (note,) = [line for line in printed if line.startswith("note: ")]
    assert "update-mime-database is not installed" in note and str(tmp_path / "mime") in note
    assert not (tmp_path / "mime" / "globs2").exists()


def test_a_failing_update_mime_database_is_a_note_not_an_error(tmp_path, monkeypatch):
    tools = tmp_path / "bin"
    tools.mkdir()
    failing_tool = tools / "update-mime-database"
    failing_tool.write_text("#!/bin/sh\necho 'broken package file' >&2\nexit 3\n", encoding="utf-8")
    failing_tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    notes: list[str] = []

    written = install_desktop_entry(launcher=Path("/usr/bin/dgp-studio"), data_home=tmp_path / "share", notes=notes)

    assert all(path.is_file() for path in written)
    (note,) = notes
    assert "exit status 3" in note and "broken package file" in note


def test_exec_quotes_a_launcher_path_with_spaces_dollars_and_percents(tmp_path):
    odd_folder = tmp_path / "odd $dir 100%"
    odd_folder.mkdir()
    launcher = odd_folder / "dgp-studio"
    launcher.write_text("#!/bin/sh\n", encoding="utf-8")

    desktop_file = install_desktop_entry(launcher=launcher, data_home=tmp_path / "share")[0]

    # Spec: quote the argument, backslash-escape "$" inside the quotes, double "%"; then the
    # key-file layer doubles the backslash.
    line = next(l for l in desktop_file.read_text().splitlines() if l.startswith("Exec="))
    assert line == f'Exec="{tmp_path}/odd \\\\$dir 100%%/dgp-studio" %F'
    _validate_desktop_file(desktop_file)


def test_reinstall_replaces_files_and_leaves_no_temporary_files(tmp_path):
    first = install_desktop_entry(launcher=Path("/opt/first/dgp-studio"), data_home=tmp_path)
    second = install_desktop_entry(launcher=Path("/opt/second/dgp-studio"), data_home=tmp_path)

    assert first == second
    assert _entry_values(second[0])["Exec"] == "/opt/second/dgp-studio %F"
    for path in second:
        assert sorted(p.name for p in path.parent.iterdir() if p.suffix == ".tmp") == []


def test_default_data_home_follows_xdg_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    written = install_desktop_entry(launcher=Path("/usr/bin/dgp-studio"))
    assert all(path.is_relative_to(tmp_path / "xdg") for path in written)

    # The XDG spec says a relative value is invalid and must be ignored.
    monkeypatch.setenv("XDG_DATA_HOME", "relative/share")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert desktop_entry.default_data_home() == tmp_path / "home" / ".local" / "share"


def test_launcher_prefers_the_script_beside_the_interpreter_then_python_dash_m(tmp_path, monkeypatch):
    interpreter = tmp_path / "env" / "bin" / "python3"
    interpreter.parent.mkdir(parents=True)
    interpreter.write_text("", encoding="utf-8")
    monkeypatch.setattr(sys, "executable", str(interpreter))
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "somewhere" / "__main__.py")])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert launcher_command() == [str(interpreter), "-m", "dgp_studio"]

    script = interpreter.parent / "dgp-studio"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    script.chmod(0o755)
    assert launcher_command() == [str(script)]


def test_packaged_icon_path_finds_both_icons():
    assert desktop_entry.packaged_icon_path() == PACKAGING / "icons" / f"{APP_ID}.png"
    assert desktop_entry.packaged_icon_path(scalable=True) == PACKAGING / "icons" / f"{APP_ID}.svg"
