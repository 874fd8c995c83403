"""Draws the extension and module icons (128x128 PNG) reproducibly with matplotlib.

Run: .venv/bin/python tools/make_icons.py  (writes StartNetExtension.png and each module's
Resources/Icons/<Module>.png).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Ellipse, FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

ICONS = {
    "StartNetExtension.png": ("#1d3557", "Lu", "kidneys"),
    "StartNetExtension/StartNetCore/Resources/Icons/StartNetCore.png": ("#457b9d", "core", "kidneys"),
    "StartNetExtension/TimepointRegistration/Resources/Icons/TimepointRegistration.png": ("#2a9d8f", "reg", "stack"),
    "StartNetExtension/DosimetrySegmentation/Resources/Icons/DosimetrySegmentation.png": ("#e76f51", "seg", "kidneys"),
    "StartNetExtension/Dosimetry/Resources/Icons/Dosimetry.png": ("#d62828", "Gy", "dose"),
    "StartNetExtension/CameraCalibration/Resources/Icons/CameraCalibration.png": ("#264653", "RC", "recovery"),
    "StartNetExtension/TrialTracker/Resources/Icons/TrialTracker.png": ("#6a4c93", "30 Gy", "bars"),
}


def _kidneys(ax, background, colour="#f4a261"):
    for x, angle in ((0.33, 12), (0.67, -12)):
        ax.add_patch(Ellipse((x, 0.56), 0.24, 0.42, angle=angle, color=colour))
        # the hilum: a notch on the medial side, in the background colour
        ax.add_patch(Ellipse((x + (0.11 if x < 0.5 else -0.11), 0.56), 0.1, 0.12, color=background))


def _draw(path: Path, background: str, text: str, glyph: str) -> None:
    fig = plt.figure(figsize=(1.28, 1.28), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.04, 0.04), 0.92, 0.92, boxstyle="round,pad=0,rounding_size=0.16",
                                color=background))
    if glyph == "kidneys":
        _kidneys(ax, background)
    elif glyph == "stack":
        for i, alpha in enumerate((0.35, 0.6, 1.0)):
            ax.add_patch(FancyBboxPatch((0.22 + 0.08 * i, 0.38 + 0.08 * i), 0.38, 0.3, boxstyle="round,pad=0.01",
                                        color="white", alpha=alpha))
    elif glyph == "dose":
        yy, xx = np.mgrid[0:1:64j, 0:1:64j]
        dose = np.exp(-(((xx - 0.5) / 0.18) ** 2 + ((yy - 0.58) / 0.14) ** 2))
        ax.imshow(np.ma.masked_less(dose, 0.08), extent=(0.15, 0.85, 0.3, 0.86), cmap="inferno", origin="lower")
    elif glyph == "recovery":  # NEMA spheres and their recovery curve
        for x, radius in ((0.24, 0.08), (0.42, 0.06), (0.56, 0.045), (0.67, 0.035)):
            ax.add_patch(Ellipse((x, 0.78), 2 * radius, 2 * radius, color="#ffb703"))
        volume = np.geomspace(0.3, 300.0, 40)
        x = 0.14 + 0.72 * np.log(volume / 0.3) / np.log(1000.0)
        rc = 1.0 - np.exp(-((volume / 6.0) ** 0.6))
        ax.plot(x, 0.3 + 0.34 * rc, color="white", lw=2.5)
        ax.plot(x[4::6], 0.3 + 0.34 * rc[4::6], "o", color="#e9c46a", ms=4)
    elif glyph == "bars":
        for i, height in enumerate((0.12, 0.25, 0.37, 0.5)):
            ax.add_patch(FancyBboxPatch((0.2 + 0.15 * i, 0.3), 0.1, height, boxstyle="square,pad=0", color="white"))
        ax.plot([0.15, 0.85], [0.86, 0.86], color="#ffb703", lw=3)
    ax.text(0.5, 0.16, text, ha="center", va="center", color="white", fontsize=15, fontweight="bold")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, transparent=True)
    plt.close(fig)


def main() -> None:
    for relative, (background, text, glyph) in ICONS.items():
        _draw(ROOT / relative, background, text, glyph)
        print(relative)


if __name__ == "__main__":
    main()
