"""Report rendering (Markdown + self-contained HTML) and the plots."""

from __future__ import annotations

import base64

import matplotlib

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


def _captured_figures(monkeypatch):
    """Figures the plot functions build (they close them after saving: keep them open to inspect)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    return figures


def _pixels(path):
    from matplotlib.image import imread

    return imread(path).shape[:2]  # (height, width)


def test_confusion_plot_has_one_panel_per_system_with_the_counts(tmp_path, monkeypatch):
    figures = _captured_figures(monkeypatch)
    cm = plot_confusion({"model": [[5, 1, 0], [2, 3, 1], [0, 0, 0]], "baseline": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]},
                        tmp_path / "c.png")
    assert cm.read_bytes()[:8] == PNG and cm.stat().st_size > 5000
    assert _pixels(cm) == (380, 840)  # figsize 4.2 x 3.8 per panel at 100 dpi, two panels
    (fig,) = figures
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["model", "baseline"]
    for ax in axes:
        assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "gold"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["negative", "neutral", "positive"]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["negative", "neutral", "positive"]
    cells = [t.get_text() for t in axes[0].texts]
    assert cells[:3] == ["5\n83%", "1\n17%", "0\n0%"] and cells[6:] == ["0\n0%"] * 3  # empty gold row: 0%, no NaN
    share = axes[0].images[0].get_array()
    assert share[1, 1] == 0.5 and share[2].sum() == 0


def test_reliability_plot_draws_each_curve_from_its_nonempty_bins(tmp_path, monkeypatch):
    figures = _captured_figures(monkeypatch)
    bins = [{"lo": 0.0, "hi": 0.5, "count": 0, "confidence": None, "accuracy": None},
            {"lo": 0.5, "hi": 0.8, "count": 3, "confidence": 0.6, "accuracy": 0.5},
            {"lo": 0.8, "hi": 1.0, "count": 4, "confidence": 0.9, "accuracy": 0.75}]
    path = plot_reliability({"model": bins, "empty": [bins[0]]}, tmp_path / "r.png")
    assert path.stat().st_size > 5000 and _pixels(path) == (550, 500)
    (fig,) = figures
    ax, counts = fig.axes
    assert ax.get_ylabel() == "accuracy" and counts.get_xlabel() == "confidence (max probability)"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"perfect calibration", "model"}  # a system with no filled bin draws nothing
    assert list(lines["model"].get_xdata()) == [0.6, 0.9] and list(lines["model"].get_ydata()) == [0.5, 0.75]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["perfect calibration", "model"]


def test_reliability_plot_shows_rows_per_bin_and_a_legend_that_hides_no_curve(tmp_path, monkeypatch):
    """The legend used to sit inside the axes (upper left), over an underconfident baseline's
    curve, and nothing told a 3-row bin from a 3,000-row one."""
    figures = _captured_figures(monkeypatch)
    edges = [0.3, 0.5, 0.7, 0.9, 1.0]

    def bins(points):  # (count, confidence, accuracy) per bin
        return [{"lo": lo, "hi": hi, "count": n, "confidence": c, "accuracy": a}
                for lo, hi, (n, c, a) in zip(edges, edges[1:], points)]

    model = bins([(0, None, None), (5, 0.62, 0.4), (20, 0.8, 0.7), (300, 0.97, 0.95)])
    baseline = bins([(40, 0.42, 0.7), (90, 0.6, 0.9), (30, 0.8, 1.0), (0, None, None)])  # underconfident
    plot_reliability({"model": model, "baseline": baseline}, tmp_path / "r.png")
    (fig,) = figures
    ax, counts = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["perfect calibration", "model", "baseline"]
    fig.canvas.draw()
    legend, plot_area = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.y0 >= plot_area.y1 - 1  # above the axes, so over no curve
    steps = {patch.get_label(): patch.get_data() for patch in counts.patches}
    assert set(steps) == {"model", "baseline"}
    assert list(steps["model"].values) == [0, 5, 20, 300] and list(steps["model"].edges) == edges
    assert list(steps["baseline"].values) == [40, 90, 30, 0]
    colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
    assert all(patch.get_edgecolor()[:3] == matplotlib.colors.to_rgb(colours[patch.get_label()])
               for patch in counts.patches)  # each count outline in its curve's colour
    assert counts.get_ylabel() == "rows per bin" and counts.get_shared_x_axes().joined(ax, counts)


def test_ratings_plot_has_one_bar_per_system_and_rating(tmp_path, monkeypatch):
    figures = _captured_figures(monkeypatch)
    rows = [{"rating": 1.0, "accuracy": 0.9, "gold": "negative"}, {"rating": 10.0, "accuracy": 0.8, "gold": "positive"}]
    path = plot_ratings({"model": rows, "baseline": rows[:1]}, tmp_path / "a.png")
    assert path.stat().st_size > 5000 and _pixels(path) == (380, 500)
    (fig,) = figures
    (ax,) = fig.axes
    assert ax.get_xlabel() == "original rating (gold label)" and ax.get_ylabel() == "accuracy"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1\nneg", "10\npos"]
    heights = [round(p.get_height(), 6) for p in ax.patches]
    assert heights == [0.9, 0.8, 0.9, 0.0]  # model 1/10, then baseline 1 and its missing 10
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["model", "baseline"]


def test_markdown_cells_stay_on_one_line_without_raw_html():
    from kopretrain.evaluation.report import _md_cell

    assert _md_cell("좋아요\r\n최고 | <img src=x onerror=alert(1)>") == "좋아요 최고 \\| &lt;img src=x onerror=alert(1)&gt;"
