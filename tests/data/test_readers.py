import csv
import gzip
import json
from pathlib import Path

import pytest

from kopretrain.data.readers import (
    csv_header, detect_format, iter_csv, iter_jsonl, iter_parquet, jsonl_keys, list_inputs, parquet_columns,
)


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def read_csv(path, fmt="csv", **kw):
    return list(iter_csv(path, fmt, **kw))


@pytest.mark.parametrize("name, fmt", [
    ("a.csv", "csv"), ("a.CSV.gz", "csv"), ("ratings_train.txt", "tsv"), ("a.tsv", "tsv"),
    ("a.jsonl.gz", "jsonl"), ("a.json", "jsonl"), ("a.parquet", "parquet"),
])
def test_detect_format(name, fmt):
    assert detect_format(Path(name)) == fmt


@pytest.mark.parametrize("name", ["a.xlsx", "a", "a.parquet.gz"])
def test_detect_format_rejects_unknown(name):
    with pytest.raises(ValueError, match="a"):
        detect_format(Path(name))


def test_csv_quoted_multiline_field_is_one_record_with_its_start_line(tmp_path):
    p = write(tmp_path / "r.csv", 'id,review\n1,"첫 줄\n둘째 줄"\n2,"그는 ""명작""이라 했다"\n')
    recs = read_csv(p)
    assert [(r.line, r.fields) for r in recs] == [
        (2, {"id": "1", "review": "첫 줄\n둘째 줄"}), (4, {"id": "2", "review": '그는 "명작"이라 했다'})]


def test_stray_quote_rejects_one_line_not_the_rest_of_the_file(tmp_path):
    body = 'id,review\n1,"닫히지 않은 따옴표\n' + "".join(f"{i},리뷰 {i}\n" for i in range(2, 12))
    recs = read_csv(write(tmp_path / "r.csv", body), max_record_lines=5)
    assert recs[0].error == "unbalanced_quote" and recs[0].line == 2 and recs[0].column == 3
    assert [r.fields["id"] for r in recs[1:]] == [str(i) for i in range(2, 12)]
    assert [r.line for r in recs[1:]] == list(range(3, 13))


def test_quote_inside_an_unquoted_field_is_literal(tmp_path):
    recs = read_csv(write(tmp_path / "r.csv", 'id,review\n1,영화 "명작"이다\n2,다음\n'))
    assert [r.fields["review"] for r in recs] == ['영화 "명작"이다', "다음"]


def test_invalid_utf8_rejects_only_that_line(tmp_path):
    data = "id,review\n1,좋아요\n".encode() + b"2,\xff\xfe bad\n" + "3,별로\n".encode()
    recs = read_csv(write(tmp_path / "r.csv", data))
    assert [r.error for r in recs] == [None, "invalid_utf8", None]
    assert recs[1].line == 3 and recs[1].column == 3  # 1-based byte column of the bad byte


def test_wrong_field_count(tmp_path):
    recs = read_csv(write(tmp_path / "r.csv", "id,review,rating\n1,좋아요,5\n2,쉼표,가,많다,4\n3,짧다\n"))
    assert [r.error for r in recs] == [None, "wrong_field_count", "wrong_field_count"]
    assert "expected 3 fields" in recs[1].detail and recs[1].column == 5


def test_megabyte_field_does_not_hit_the_csv_field_limit(tmp_path):
    before = csv.field_size_limit()
    big = "가" * 1_000_000
    recs = read_csv(write(tmp_path / "r.csv", f'id,review\n1,"{big}"\n2,ok\n'))
    assert len(recs[0].fields["review"]) == 1_000_000 and recs[1].fields["review"] == "ok"
    assert csv.field_size_limit() == before  # the global limit is restored


def test_bom_crlf_and_blank_lines(tmp_path):
    p = write(tmp_path / "r.csv", "\ufeffid,review\r\n1,좋다\r\n\r\n2,\"여러\r\n줄\"\r\n")
    assert csv_header(p, "csv") == ["id", "review"]
    recs = read_csv(p)
    assert [(r.line, r.fields["review"]) for r in recs] == [(2, "좋다"), (4, "여러\r\n줄")]


def test_tsv_without_quoting_keeps_quotes_literal(tmp_path):
    p = write(tmp_path / "ratings.txt", 'id\tdocument\tlabel\n1\t"시작 따옴표만\t1\n2\t보통\t0\n')
    recs = read_csv(p, "tsv", quoting=False)
    assert [r.fields["document"] for r in recs] == ['"시작 따옴표만', "보통"]


def test_cp949_encoding(tmp_path):
    p = write(tmp_path / "excel.csv", "id,review\n1,한글 리뷰\n".encode("cp949"))
    assert read_csv(p, encoding="cp949")[0].fields["review"] == "한글 리뷰"
    assert read_csv(p)[0].error == "invalid_utf8"


def test_unreadable_header_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="header"):
        read_csv(write(tmp_path / "r.csv", b"id,\xff\n1,2\n"))


def test_jsonl_records_errors_and_gzip(tmp_path):
    lines = [json.dumps({"id": 1, "review": "좋다"}, ensure_ascii=False), "", "{broken", "[1, 2]",
             json.dumps({"id": 2, "review": "별로"}, ensure_ascii=False)]
    p = tmp_path / "r.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    recs = list(iter_jsonl(p))
    assert [(r.line, r.error) for r in recs] == [(1, None), (3, "invalid_json"), (4, "invalid_json"), (5, None)]
    assert recs[1].column == 2 and "object" in recs[2].detail
    assert jsonl_keys(p) == ["id", "review"]


def test_jsonl_invalid_utf8_and_json_array_file(tmp_path):
    p = write(tmp_path / "r.jsonl", b'{"review": "\xed\xa0\x80"}\n' + '{"review": "좋다"}\n'.encode())
    assert [r.error for r in iter_jsonl(p)] == ["invalid_utf8", None]
    cp949 = write(tmp_path / "k.jsonl", '{"review": "좋다"}\n'.encode("cp949") + b'{"review": "\x80\xff"}\n')
    assert [r.error for r in iter_jsonl(cp949, encoding="cp949")] == [None, "invalid_encoding"]  # not "utf8"
    with pytest.raises(ValueError, match="JSON Lines"):
        jsonl_keys(write(tmp_path / "a.json", '[{"review": "x"}]'))


def test_parquet_rows_are_numbered(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "r.parquet"
    pq.write_table(pa.table({"review": ["가", "나", "다"], "extra": [1, 2, 3]}), p)
    assert parquet_columns(p) == ["review", "extra"]
    recs = list(iter_parquet(p, ["review"], batch_size=2))
    assert [(r.line, r.fields) for r in recs] == [(1, {"review": "가"}), (2, {"review": "나"}), (3, {"review": "다"})]


def test_list_inputs_skips_hidden_and_unknown_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".cache").mkdir()
    for name in ("b.csv", "sub/a.jsonl.gz", "notes.md", ".cache/x.csv", ".hidden.csv"):
        write(tmp_path / name, "")
    assert [p.relative_to(tmp_path).as_posix() for p in list_inputs(tmp_path)] == ["b.csv", "sub/a.jsonl.gz"]


def test_quote_closed_by_a_later_lines_broken_field_costs_one_line(tmp_path):
    # Line 2's stray quote is "closed" by the quote in line 4's "좋아"요: csv then fails on the whole
    # three-line record. Only line 2 is at fault; lines 3 and 4 are records of their own.
    body = 'id,review,rating\n1,"닫히지 않은 리뷰,5\n2,정상 리뷰 최고,5\n3,"좋아"요 별로,1\n4,끝 별로,1\n'
    recs = read_csv(write(tmp_path / "r.csv", body))
    assert [(r.line, r.error) for r in recs] == [(2, "unbalanced_quote"), (3, None), (4, "broken_quotes"), (5, None)]
    assert recs[0].column == 3 and "line 4" in recs[0].detail
    assert [r.fields["id"] for r in recs if r.fields] == ["2", "4"]


STRAY_CLOSED = ('id,product,rating,review\n1,p1,5,"인생영화 강추\n2,p2,1,완전 별로\n3,p3,3,그냥 그래요\n'
                '4,p4,1,정말 최악"\n5,p5,1,노잼\n6,p6,5,"여러 줄\n리뷰, 좋아요"\n')


def test_a_stray_quote_closed_by_another_row_costs_its_own_line(tmp_path):
    """A quote closed at the end of a later row is valid CSV, yet the lines between are rows of the
    file's width: they were merged into row 1's review, labelled by its rating."""
    recs = read_csv(write(tmp_path / "r.csv", STRAY_CLOSED))
    assert [(r.line, r.error) for r in recs] == [(2, "unbalanced_quote"), (3, None), (4, None), (5, None),
                                                 (6, None), (7, None)]
    assert recs[0].column == 8 and "records of 4 fields" in recs[0].detail
    assert [r.fields["review"] for r in recs[1:]] == ["완전 별로", "그냥 그래요", '정말 최악"', "노잼",
                                                      "여러 줄\n리뷰, 좋아요"]  # a real multi-line review stays


def test_multiline_reviews_with_commas_stay_one_review(tmp_path):
    """A review line with as many commas as the header is not a record unless its fields before the
    review look like the opening line's (a number where it has an id or a rating)."""
    recs = read_csv(write(tmp_path / "r.csv", 'id,review\n1,"좋아요, 정말\n최고, 진짜"\n'))
    assert [r.fields["review"] for r in recs] == ["좋아요, 정말\n최고, 진짜"]
    three = 'id,rating,review\n1,5,"배송 빠르고 좋아요\n맛, 향, 가격 모두 만족"\n2,1,별로\n'
    recs = read_csv(write(tmp_path / "r3.csv", three))
    assert [(r.error, r.fields["review"]) for r in recs] == [(None, "배송 빠르고 좋아요\n맛, 향, 가격 모두 만족"),
                                                            (None, "별로")]
    names = 'name,title,review\n김,제목,"첫 줄\n둘째, 셋째, 넷째"\n'  # no number to go by: one review
    assert read_csv(write(tmp_path / "r4.csv", names))[0].fields["review"] == "첫 줄\n둘째, 셋째, 넷째"


RECORD = '{"stage": "ingest", "fingerprint": "abc"}'


def test_list_inputs_skips_kopretrain_outputs_inside_the_directory(tmp_path):
    # `kopretrain ingest --input raw -o raw/out`: the rerun must not read raw/out (nor its work files).
    write(tmp_path / "a.csv", "")
    for d in ("out", "sub/old", "out2.partial"):
        (tmp_path / d).mkdir(parents=True)
        write(tmp_path / d / "rejected.jsonl", "")
    write(tmp_path / "out" / "stage.json", RECORD)
    write(tmp_path / "sub" / "old" / "stage.json", RECORD)
    write(tmp_path / "sub" / "b.csv", "")
    write(tmp_path / "labeled.csv.stage.json", "{}")
    write(tmp_path / ".out.lock", "pid 1")
    assert [p.relative_to(tmp_path).as_posix() for p in list_inputs(tmp_path)] == ["a.csv", "sub/b.csv"]


def test_a_byte_order_mark_overrules_a_wrong_encoding(tmp_path):
    """A UTF-8 BOM read as cp949 gave mojibake rows (the rest rejected under the hint's bar);
    UTF-16 (Excel's 'Unicode text') cannot be read line by line."""
    from kopretrain.runs.records import StageError

    bom = write(tmp_path / "bom.csv", b"\xef\xbb\xbf" + "id,review\n1,별로\n".encode())
    with pytest.raises(StageError, match="UTF-8 byte-order mark, yet --encoding cp949"):
        read_csv(bom, encoding="cp949")
    assert [r.fields["review"] for r in read_csv(bom)] == ["별로"]
    utf16 = write(tmp_path / "u16.csv", "id,review\n1,별로\n".encode("utf-16"))
    with pytest.raises(StageError, match="UTF-16 text"):
        read_csv(utf16)


def test_euc_kr_reads_as_cp949_its_superset(tmp_path):
    """똠 and 뷁 are CP949-only: ingest rejected them under --encoding euc-kr; label kept them."""
    src = write(tmp_path / "kr.csv", "id,review\n1,똠방각하 뷁\n".encode("cp949"))
    assert [r.fields["review"] for r in read_csv(src, encoding="euc-kr")] == ["똠방각하 뷁"]
