"""Sample images that ship with brushwork (see ``brushwork/assets/README.md`` for their sources and licences)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
SAMPLE_PHOTO = ASSETS / "sample_photo.jpg"
SAMPLE_PHOTOS = [SAMPLE_PHOTO, ASSETS / "astronaut.jpg"]
STYLES = {p.stem: p for p in sorted((ASSETS / "styles").glob("*.jpg"))}
SAMPLE_STYLE = STYLES["swirls"]
