"""Report rendering (Markdown + self-contained HTML) and the plots."""

from __future__ import annotations

import base64

from kopretrain.evaluation.report import Report, plot_confusion, plot_ratings, plot_reliability

PNG = b"\x89PNG\r\n\x1a\n"


def test_markdown_and_html_render_the_same_document(tmp_path):
    img = plot_confusion({"model": [[5, 1, 0], [2, 3, 1], [0, 0, 0]]}, tmp_path / "cm.png")
    r = Report("평가 <보고서>")
    r.heading("Summary")
    r.para("Model `runs/x` on test.")
    r.bullets(["first", "second"])
    r.table(["text", "score", "note"], [["재밌다 | 최고\n두 줄", 0.91234, None], ["<b>", 3, "ok"]])
    r.image(img, "Confusion")
    md_path, html_path = r.write(tmp_path)
    md, page = md_path.read_text(), html_path.read_text()
    assert md.startswith("# 평가 <보고서>")
    assert "| 재밌다 \\| 최고 두 줄 | 0.9123 | n/a |" in md  # pipes escaped, newline flattened, None shown
    assert "![Confusion](cm.png)" in md and "- second" in md
    assert "<h1>평가 &lt;보고서&gt;</h1>" in page and "<td>&lt;b&gt;</td>" in page
    assert "<code>runs/x</code>" in page
    encoded = page.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(encoded) == img.read_bytes()
    assert 'charset="utf-8"' in page


def test_plots_write_pngs_even_with_empty_rows_and_bins(tmp_path):
    bins = [{"lo": 0.0, "hi": 0.5, "count": 0, "confidence": None, "accuracy": None},
            {"lo": 0.5, "hi": 1.0, "count": 4, "confidence": 0.8, "accuracy": 0.75}]
    assert plot_reliability({"model": bins, "empty": [bins[0]]}, tmp_path / "r.png").read_bytes()[:8] == PNG
    rows = [{"rating": 1.0, "accuracy": 0.9}, {"rating": 10.0, "accuracy": 0.8}]
    assert plot_ratings({"model": rows, "baseline": rows[:1]}, tmp_path / "a.png").read_bytes()[:8] == PNG
    cm = plot_confusion({"a": [[0] * 3] * 3, "b": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}, tmp_path / "c.png")
    assert cm.read_bytes()[:8] == PNG
