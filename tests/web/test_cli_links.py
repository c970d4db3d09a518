"""`smallwins links ...` as an operator runs it: create, list, personal links, a QR poster."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import segno
from harness import CATALOGUE


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "smallwins"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLWINS_")}
    env["COLUMNS"] = "200"
    result = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"smallwins {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def png_modules(path: Path, *, scale: int, border: int) -> list[list[bool]]:
    """Dark modules of a 1-bit grayscale PNG, one sample per module (stdlib only)."""
    data, chunks = path.read_bytes(), {}
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat = 8, b""
    while offset < len(data):
        (size,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + size]
        chunks[kind] = body
        idat += body if kind == b"IDAT" else b""
        offset += 12 + size
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (1, 0) and width == height
    raw, stride = zlib.decompress(idat), (width + 7) // 8 + 1
    rows, previous = [], bytes(stride - 1)
    for y in range(height):
        kind, line = raw[y * stride], bytearray(raw[y * stride + 1 : (y + 1) * stride])
        for i in range(len(line)):  # PNG filters; one byte per "pixel" at bit depth 1
            left, up, corner = (line[i - 1] if i else 0), previous[i], (previous[i - 1] if i else 0)
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        previous = bytes(line)
        rows.append(b"\0" + previous)
    modules = width // scale - 2 * border

    def dark(x: int, y: int) -> bool:
        byte = rows[y][1 + x // 8]
        return not (byte >> (7 - x % 8)) & 1

    centre = scale // 2
    return [
        [dark((border + col) * scale + centre, (border + row) * scale + centre) for col in range(modules)]
        for row in range(modules)
    ]


def test_links_create_list_member_and_qr(tmp_path: Path) -> None:
    (tmp_path / "plugins.toml").write_text(
        f'[smallwins]\ncatalogue = "{CATALOGUE}"\n[smallwins.store]\nurl = "sqlite:///cli.db"\n'
        '[plugins.web]\nenabled = true\npublic_url = "https://wins.example"\ncredit_period = "week"\n'
    )
    created = run(
        "links", "create", "--url", "https://club.example/kit.zip", "--campaign", "workshop", "--event",
        "download.completed", cwd=tmp_path,
    ).stdout  # fmt: skip
    url = created.split()[0]
    assert url.startswith("https://wins.example/r/") and "one credit per member per week" in created
    code = url.rsplit("/", 1)[1]

    listed = run("links", "list", cwd=tmp_path).stdout
    assert code in listed and "workshop" in listed and "https://club.example/kit.zip" in listed

    (tmp_path / "events.jsonl").write_text(
        '{"id": "1", "source": "discord", "type": "message.posted", "subject": "d1", '
        '"time": "2026-03-02T12:00:00Z", "data": {"display_name": "Ada"}}\n'
    )
    run("ingest", "events.jsonl", cwd=tmp_path)
    personal = run("links", "member", "discord:d1", "--code", code, cwd=tmp_path).stdout
    assert "https://wins.example/m/" in personal and f"https://wins.example/r/{code}?m=" in personal

    run("links", "qr", code, "--out", "poster.png", "--scale", "6", cwd=tmp_path)
    expected = segno.make(url, error="m", micro=False)
    assert png_modules(tmp_path / "poster.png", scale=6, border=4) == [
        [bool(bit) for bit in row] for row in expected.matrix
    ], "the poster encodes exactly the short link"

    bad = subprocess.run(
        [str(Path(sys.executable).parent / "smallwins"), "links", "qr", "nosuch", "--out", "x.png"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "no tracked link 'nosuch'" in bad.stderr
