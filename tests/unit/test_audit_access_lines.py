"""What `ledger audit access` prints (ledger/cli/auditors.py, `access_lines`), as docs/audit.md shows it."""

from ledger.audit.access import AccessReport
from ledger.cli.auditors import access_lines


def test_an_empty_access_topic_says_no_read_was_recorded_yet() -> None:
    report = AccessReport(topic="ledger.access", kpj="15000000001", subject=None, start=None, end=None)
    assert access_lines(report) == ["access log ledger.access: 0 records checked, no read recorded yet",
                                    "0 read(s) of member 15000000001"]


def test_the_reads_are_a_table_under_the_chains_verdict_as_documented() -> None:
    read = {"seq": 1, "at": "2026-05-04T08:15:02.318530Z", "subject": "siti@bekasi.bpjs.example",
            "role": "branch-staff", "kpj": "15000000001", "endpoint": "GET /members/{kpj}/balance",
            "purpose": "complaint 2026-118", "offset": 0, "verified": True}
    report = AccessReport(topic="ledger.access", kpj="15000000001", subject=None, start=None, end=None, records=7,
                          last_seq=7, reads=[read], reads_found=1)
    header = ("when (UTC)           subject                   role          member (KPJ)  endpoint                    "
              "purpose")
    row = ("2026-05-04 08:15:02  siti@bekasi.bpjs.example  branch-staff  15000000001   GET /members/{kpj}/balance  "
           "complaint 2026-118")
    assert access_lines(report) == ["access log ledger.access: 7 records checked, chain intact from seq 1 to 7",
                                    "1 read(s) of member 15000000001", header, row]
