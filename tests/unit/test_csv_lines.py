"""CSV cells a spreadsheet would evaluate are written as text; numbers, ids and JSON are written as they are."""

import csv
import io

import pytest

from ledger.csv_lines import csv_line


def cells(line: bytes) -> list[str]:
    (row,) = csv.reader(io.StringIO(line.decode(), newline=""))
    return row


@pytest.mark.parametrize("text", ['=HYPERLINK("http://evil.example","open")', "+1+1", "-2+3", "@SUM(A1:A9)",
                                  "\t=1+1", "\r=1+1"])
def test_a_text_cell_that_starts_like_a_formula_gets_a_quote_in_front(text):
    assert cells(csv_line(["a", text, 7])) == ["a", "'" + text, "7"]


def test_numbers_stay_numbers_even_negative_ones():
    assert csv_line([-15_824, 0, 395_600, "BEKASI-KOTA"]) == b"-15824,0,395600,BEKASI-KOTA\n"


def test_ordinary_cells_are_written_byte_for_byte_as_before():
    row = [12, "4fb1508b-aadd-5371-a4fa-9245f9188a71.1", "ContributionPaid", "2024-04-10", "", "15000000001",
           '{"kpj": "15000000001", "total": 477000}', "0" * 64, "'quoted", "a=b"]
    assert csv_line(row) == (b'12,4fb1508b-aadd-5371-a4fa-9245f9188a71.1,ContributionPaid,2024-04-10,,15000000001,'
                             b'"{""kpj"": ""15000000001"", ""total"": 477000}",' + b"0" * 64 + b",'quoted,a=b\n")


@pytest.mark.parametrize("text", ["x,=1+1", "x\n=1+1", "x\r=1+1", "x\r\n=1+1", 'x"=1+1'])
def test_a_comma_a_quote_or_a_line_break_cannot_start_a_new_cell_or_row_with_a_formula(text):
    line = csv_line([text, 1])
    assert line.endswith(b"\n") and not line.endswith(b"\r\n")
    assert list(csv.reader(io.StringIO(line.decode(), newline=""))) == [[text, "1"]]
