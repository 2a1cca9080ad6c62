"""label reading CSV as users have it: CP949 cells and headers, stray quotes that keep every row."""

from __future__ import annotations

import pytest

from kopretrain import label as L
from kopretrain.cli import main
from tests.test_label import cfg, model, read, values  # noqa: F401 - model: a fixture


@pytest.mark.parametrize("encoding", ["euc-kr", "cp949"])
def test_cp949_input_keeps_its_cells_intact(model, tmp_path, encoding):
    """repair_cell rebuilt the bytes as UTF-8 whatever --encoding said, so one CP949-only syllable
    (똠, 뷁: not EUC-KR) garbled its whole cell; EUC-KR is now read as CP949, and a bad byte costs
    only itself."""
    src = tmp_path / "ext.csv"
    src.write_bytes("review,rating\n똠양꿍 맛있어요,5\n뷁 별로,1\n".encode("cp949") + b"ok \xff "
                    + "좋아요,3\n".encode("cp949"))
    df = read(L.execute(cfg(model, src, text_column="review", encoding=encoding), tmp_path / "o.parquet"))
    assert list(df["review"]) == ["똠양꿍 맛있어요", "뷁 별로", "ok \ufffd 좋아요"]
    assert values(df["label_error"]) == [None, None, "invalid_encoding"]


def test_stray_quotes_keep_every_row_with_a_reason(model, tmp_path, capsys):
    """A quote that never closes swallowed the rows after it (2 rows out of 4) or crashed with a
    pandas ParserError; NSMC's .txt layout (bare quotes) crashed unless --no-csv-quoting."""
    q2 = tmp_path / "q2.csv"
    q2.write_text('id,review,rating\n1,"닫히지 않은 리뷰,5\n2,정상 리뷰 최고,5\n3,"좋아"요 별로,1\n4,끝 별로,1\n')
    df = read(L.execute(cfg(model, q2, text_column="review"), tmp_path / "q2.out.csv"))
    assert list(df["review"]) == ['1,"닫히지 않은 리뷰,5', "정상 리뷰 최고", '3,"좋아"요 별로,1', "끝 별로"]
    assert list(df["label_error"]) == ["unbalanced_quote", "", "broken_quotes", ""]
    assert list(df["id"]) == ["", "2", "", "4"] and (df["label"][[1, 3]] != "").all()
    q3 = tmp_path / "q3.csv"
    q3.write_text('id,review,rating\n1,"닫히지 않은 리뷰,5\n2,정상 리뷰 최고,5\n')
    assert list(read(L.execute(cfg(model, q3, text_column="review"), tmp_path / "q3.out.csv"))["label_error"]) == \
        ["unbalanced_quote", ""]
    from tests.data.test_readers import STRAY_CLOSED

    closed = tmp_path / "closed.csv"  # closed at the end of a later row: rows 2-4 were one review
    closed.write_text(STRAY_CLOSED)
    df = read(L.execute(cfg(model, closed, text_column="review"), tmp_path / "closed.out.csv"))
    assert list(df["label_error"]) == ["unbalanced_quote", "", "", "", "", ""]
    assert list(df["review"])[1:] == ["완전 별로", "그냥 그래요", '정말 최악"', "노잼", "여러 줄\n리뷰, 좋아요"]
    commas = tmp_path / "commas.csv"  # a review line with as many commas as the header stays in its review
    commas.write_text('id,rating,review\n1,5,"배송 빠르고 좋아요\n맛, 향, 가격 모두 만족"\n2,1,별로\n')
    df = read(L.execute(cfg(model, commas, text_column="review"), tmp_path / "commas.out.csv"))
    assert list(df["review"]) == ["배송 빠르고 좋아요\n맛, 향, 가격 모두 만족", "별로"]
    multi = tmp_path / "multi.csv"  # a quoted field over two lines is one row, not a stray quote
    multi.write_text('id,text\n1,"첫 줄\n둘째 줄"\n2,좋아요\n')
    assert list(read(L.execute(cfg(model, multi), tmp_path / "multi.out.csv"))["text"]) == ["첫 줄\n둘째 줄", "좋아요"]
    nsmc = tmp_path / "ratings_train.txt"
    nsmc.write_text('id\tdocument\tlabel\n1\t"좋아 최고\t1\n2\t별로\t0\n')
    out = tmp_path / "nsmc.out.csv"
    assert main(["label", "--model", str(model), "--input", str(nsmc), "--text-column", "document",
                 "--column-prefix", "p_", "--precision", "fp32", "--no-progress", "-o", str(out)]) == 0
    assert list(read(out)["document"]) == ['"좋아 최고', "별로"]
    bad_header = tmp_path / "h.csv"
    bad_header.write_text('id,"text\n1,좋아요\n')
    assert main(["label", "--model", str(model), "--input", str(bad_header), "--no-progress",
                 "-o", str(tmp_path / "h.out.csv")]) == 2
    assert "h.csv:1: cannot read the header (unbalanced_quote)" in capsys.readouterr().err


def test_cp949_header_and_header_names_as_written(model, tmp_path):
    """A CP949 Korean header read as UTF-8 failed with 'surrogates not allowed' and no file name;
    pandas renamed an empty header name to 'Unnamed: 3'."""
    src = tmp_path / "kh.csv"
    src.write_bytes("리뷰,평점,평점,\n좋아요,5,4,x\n".encode("cp949"))
    out = L.execute(cfg(model, src, text_column="리뷰"), tmp_path / "kh.out.csv")
    # a repeated name must still differ (JSONL keys, Parquet columns): only it is renamed
    assert out.read_text().startswith('"리뷰","평점","평점.1","","label",')
    df = read(out)
    assert list(df["리뷰"]) == ["좋아요"] and df["label"][0] != "" and df["label_error"][0] == ""
