"""A one-file HTML report of a describe() result: photo, Grad-CAM and Finer-CAM overlays, crops, trait table, paragraph.

Images are embedded as base64 PNGs so the report is a single file that can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pipeline.cam.render import outline, overlay
from pipeline.images import load_image
from traits.errors import FinerTraitsError
from traits.io import make_folder, write_text_atomic

MAP_TITLES = {"gradcam": "Grad-CAM (target)", "finer": "Finer-CAM: target vs contrast (outlined: at least half its peak)",
              "finer_reverse": "Finer-CAM: contrast vs target"}
BOX_COLOURS = [(255, 215, 0), (0, 200, 255), (255, 80, 200), (120, 255, 120), (255, 140, 0)]


def _png_b64(img: Image.Image, max_side: int = 480) -> str:
    img = img.copy()
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def draw_boxes(image: Image.Image, regions: list) -> Image.Image:
    """The photo with numbered region boxes."""
    out = image.convert("RGB").copy()
    d = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 200))
    for r in regions:
        col = BOX_COLOURS[r.index % len(BOX_COLOURS)]
        d.rectangle(r.box, outline=col, width=width)
        d.text((r.box[0] + 3, r.box[1] + 2), str(r.index + 1), fill=col)
    return out


def _figure(img: Image.Image, caption: str, max_side: int = 320) -> str:
    return (f'<figure><img src="data:image/png;base64,{_png_b64(img, max_side)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render_html(result, title: str | None = None) -> str:
    """The report as an HTML string."""
    e = html.escape
    image = result.image
    title = title or f"{result.target_species} vs {result.contrast_species}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
             "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
             "figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}"
             "figure img{max-width:640px;border:1px solid #ccc}figcaption{font-size:.85em;color:#555}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:.9em}"
             "th{background:#f3f3f3}.para{font-size:1.1em;line-height:1.5;background:#f8f8f0;padding:1em}"
             ".warn{color:#a60}.confirmed{color:#070}.contradicted{color:#b00}.new{color:#666}"
             "</style></head><body>", f"<h1>{e(title)}</h1>", f"<p class='para'>{e(result.text)}</p>"]
    p = result.target_probability
    parts.append(f"<p>Classifier probability of {e(result.target_species)}: "
                 f"{'n/a' if p is None or p != p else f'{p:.3f}'}"
                 f"{' — <b>uncertain</b>' if result.uncertain else ''}</p>")
    for w in result.warnings:
        parts.append(f"<p class='warn'>{e(w)}</p>")
    if image is not None:
        parts.append("<h2>Photo and maps</h2><div>")
        parts.append(_figure(draw_boxes(image, result.regions), "photo with regions"))
        method = result.provenance.get("cam_method", "finer")
        for name, cam in result.maps.items():
            # Maps are shown at the photo's resolution (up to 640 px); Finer maps with the differing region outlined.
            cam = torch.as_tensor(np.asarray(cam, dtype=np.float32))
            shown = overlay(image, cam) if name == "gradcam" else outline(overlay(image, cam), cam)
            caption = MAP_TITLES.get(name, name) + ("" if name == "gradcam" else f" [{method}]")
            parts.append(_figure(shown, caption, 640))
        parts.append("</div>")
    if result.regions:
        parts.append("<h2>Regions (Finer-CAM, target vs contrast) and their counterparts</h2>")
        counterparts = {c["region"]: c["counterparts"] for c in getattr(result, "counterparts", []) or []}
        for r in result.regions:
            if r.crop is None:
                continue
            parts.append("<div>")
            cap = f"region {r.index + 1}: mass {r.mass:.2f}, {r.location or 'location unknown'}"
            parts.append(_figure(r.crop, cap, 200))
            parts += _counterpart_figures(counterparts.get(r.index, []), result.contrast_species)
            parts.append("</div>")
    parts.append("<h2>Traits</h2><table><tr><th>rank</th><th>trait</th><th>direction</th><th>confidence</th>"
                 "<th>score (this photo)</th><th>contrast references</th><th>effect (sd)</th><th>region</th>"
                 "<th>expert</th></tr>")
    for t in result.traits:
        cs = "–" if t.contrast_score is None else f"{t.contrast_score:.3f}"
        status = t.expert_status or "no expert list"
        parts.append(f"<tr><td>{t.rank}</td><td>{e(t.phrase)}</td><td>{'more' if t.direction == '+' else 'less'}</td>"
                     f"<td>{e(t.confidence)}</td><td>{t.score:.3f}</td><td>{cs}</td><td>{t.effect:+.2f}</td>"
                     f"<td>{_region_cell(t)}</td>"
                     f"<td class='{e(t.expert_status or '')}'>{e(status)}</td></tr>")
    parts.append("</table>")
    if result.controls:
        best = max(abs(c.effect) for c in result.controls)
        parts.append(f"<p>Random-phrase controls ({len(result.controls)}): largest |effect| {best:.2f} "
                     f"(real traits above: {', '.join(f'{abs(t.effect):.2f}' for t in result.traits) or 'none'}).</p>")
    prov = result.provenance
    parts.append("<h2>Provenance</h2><table>" + "".join(
        f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in prov.items()) + "</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


# Counterparts shown per region and species: enough to see the comparison, few enough to keep the page light.
MAX_COUNTERPARTS = 4


def _counterpart_figures(found: list[dict], contrast: str) -> list[str]:
    """Figures of a region's best-matching counterparts on the contrast species' reference photos."""
    figures = []
    shown = sorted((c for c in found if c["species"] == contrast), key=lambda c: -c["similarity"])
    for c in shown[:MAX_COUNTERPARTS]:
        try:
            crop = load_image(c["image"]).crop(tuple(c["box"]))
        except FinerTraitsError:
            continue  # a reference photo moved or broke since: the table still lists the trait
        figures.append(_figure(crop, f"{contrast}: similarity {c['similarity']:.2f}", 160))
    return figures


def _region_cell(t) -> str:
    """The trait's region number, or why it has none."""
    if t.region is not None and t.in_region is not False:
        return str(t.region + 1)
    return "outside the regions used" if t.in_region is False else ""


def write_report(result, out: str | Path, title: str | None = None) -> Path:
    """Write the HTML report atomically and return its path."""
    out = Path(out)
    make_folder(out.parent, "report folder")
    return write_text_atomic(out, render_html(result, title))
