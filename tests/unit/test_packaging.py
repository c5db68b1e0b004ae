"""Packaging checks that need no Docker engine (none runs on the CI machines)."""

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_path_the_dockerfile_copies_exists():
    copies = []
    for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines():
        if not line.startswith("COPY "):
            continue
        words = shlex.split(line)
        if not any(w.startswith("--from") for w in words):
            copies.extend(words[1:-1])
    assert copies, "the Dockerfile copies nothing from the build context"
    for source in copies:
        assert (ROOT / source).exists(), f"docker/Dockerfile copies missing path {source}"


def test_build_outputs_are_ignored_by_git():
    ignored = (ROOT / ".gitignore").read_text().split()
    for pattern in ("sipmask/*.c", "sipmask/*.so", "build/"):
        assert pattern in ignored
