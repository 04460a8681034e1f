"""target-personalization feed files: CSV shape, 50-column split, gzip, names, local delivery."""

from __future__ import annotations

import csv
import gzip
import io
import re
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tap_personalization.target.delivery import DeliveryError, LocalFolder
from tap_personalization.target.feeds import (
    ACCOUNT_FEED,
    SEGMENT_FEED,
    USER_FEED,
    FeedNamer,
    FeedWriter,
    SealedFile,
    split_columns,
)

# The name pattern the Personalization inbound processor picks up.
FEED_NAME = re.compile(r"^[a-z]+(-[a-z]+)*-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}\.csv(\.gz)?$")


def read_csv(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    if path.name.endswith(".gz") or raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))


def fixed_clock(*stamps: str) -> FeedNamer:
    times = iter(datetime.fromisoformat(s).replace(tzinfo=UTC) for s in stamps)
    return FeedNamer(now=lambda: next(times))


def test_user_feed_is_rfc4180_utf8_with_crlf_and_quoting(tmp_path: Path) -> None:
    writer = FeedWriter(USER_FEED, ["userId"], ["crmTitle", "crmNote"], tmp_path)
    assert writer.write(["u-000001"], {"crmTitle": 'Chief "Data", Officer', "crmNote": "é\nx"})
    assert writer.write(["u-000002"], {"crmTitle": True, "crmNote": 12.5})
    [sealed] = writer.seal()
    raw = sealed.path.read_bytes()
    assert raw.startswith(b"userId,attribute:crmTitle,attribute:crmNote\r\n")
    assert not raw.startswith(b"\xef\xbb\xbf")  # no byte-order mark
    assert b'"Chief ""Data"", Officer"' in raw
    assert sealed.rows == 2
    assert read_csv(sealed.path)[1:] == [["u-000001", 'Chief "Data", Officer', "é\nx"],
                                         ["u-000002", "true", "12.5"]]
    assert sealed.path.name.startswith(".")
    assert not FEED_NAME.match(sealed.path.name)  # never picked up half-written


def test_sixty_attributes_split_into_two_files_of_at_most_fifty(tmp_path: Path) -> None:
    names = [f"crmField{n:02d}" for n in range(60)]
    writer = FeedWriter(USER_FEED, ["userId"], names, tmp_path)
    writer.write(["u-1"], {name: f"v{n}" for n, name in enumerate(names)})
    writer.write(["u-2"], {"crmField55": "only in the second part"})
    writer.write(["u-3"], {"crmField01": None})  # a clear: feeds cannot clear, nothing to write
    first, second = writer.seal()
    head1, *rows1 = read_csv(first.path)
    head2, *rows2 = read_csv(second.path)
    assert len(head1) - 1 == 50
    assert len(head2) - 1 == 10
    assert head1[0] == head2[0] == "userId"
    assert head1[1:] + head2[1:] == [f"attribute:{name}" for name in names]
    assert [row[0] for row in rows1] == ["u-1"]
    assert [row[0] for row in rows2] == ["u-1", "u-2"]
    assert rows2[1][head2.index("attribute:crmField55")] == "only in the second part"
    assert split_columns([]) == [[]]


def test_row_without_any_value_is_not_written(tmp_path: Path) -> None:
    writer = FeedWriter(ACCOUNT_FEED, ["accountId"], ["crmIndustry"], tmp_path)
    assert not writer.write(["acme"], {"crmIndustry": None})
    assert writer.seal() == []
    assert list(tmp_path.iterdir()) == []


def test_segment_delta_rows_and_gzip(tmp_path: Path) -> None:
    writer = FeedWriter(SEGMENT_FEED, ["userId", "segmentId", "updateType"], [], tmp_path,
                        compressed=True)
    writer.write(["u-1", "seg-webinar", "Add"], {})
    writer.write(["u-2", "seg-webinar", "Remove"], {})
    [sealed] = writer.seal()
    assert sealed.suffix == ".csv.gz"
    assert read_csv(sealed.path) == [["userId", "segmentId", "updateType"],
                                     ["u-1", "seg-webinar", "Add"],
                                     ["u-2", "seg-webinar", "Remove"]]


def test_writer_starts_a_new_file_after_each_seal_and_discard_cleans_up(tmp_path: Path) -> None:
    writer = FeedWriter(USER_FEED, ["userId"], ["a"], tmp_path, compressed=True)
    writer.write(["u-1"], {"a": "1"})
    [one] = writer.seal()
    writer.write(["u-2"], {"a": "2"})
    [two] = writer.seal()
    assert one.path != two.path
    assert read_csv(two.path)[1:] == [["u-2", "2"]]
    writer.write(["u-3"], {"a": "3"})
    assert writer.pending_rows == 1
    writer.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([one.path.name, two.path.name])


def test_names_are_documented_and_strictly_increasing() -> None:
    namer = fixed_clock("2026-03-01T10:00:00.900", "2026-03-01T10:00:00.100",
                        "2026-03-01T10:00:05", "2026-03-01T10:00:04")
    sealed = SealedFile(USER_FEED, Path("x"), 1, compressed=False)
    names = [namer.next_name(sealed), namer.next_name(sealed), namer.next_name(sealed)]
    assert names == ["user-2026-03-01_10-00-00.csv", "user-2026-03-01_10-00-01.csv",
                     "user-2026-03-01_10-00-05.csv"]
    gz = namer.next_name(SealedFile(SEGMENT_FEED, Path("x"), 1, compressed=True))
    assert gz == "segment-delta-2026-03-01_10-00-06.csv.gz"
    assert all(FEED_NAME.match(name) for name in [*names, gz])


def test_local_delivery_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    inbound = tmp_path / "inbound"
    inbound.mkdir()
    (inbound / "user-2026-03-01_10-00-00.csv").write_text("someone else's file")
    folder = LocalFolder(inbound, fixed_clock("2026-03-01T10:00:00", "2026-03-01T10:00:00",
                                              "2026-03-01T10:00:00"))
    writer = FeedWriter(USER_FEED, ["userId"], ["a"], folder.staging_dir)
    writer.write(["u-1"], {"a": "1"})
    names = folder.deliver(writer.seal())
    assert names == ["user-2026-03-01_10-00-01.csv"]
    assert (inbound / "user-2026-03-01_10-00-00.csv").read_text() == "someone else's file"
    assert read_csv(inbound / names[0]) == [["userId", "attribute:a"], ["u-1", "1"]]
    assert sorted(p.name for p in inbound.iterdir()) == [
        "user-2026-03-01_10-00-00.csv", "user-2026-03-01_10-00-01.csv"]  # no temporary left


def test_local_delivery_into_missing_folder_names_the_setting(tmp_path: Path) -> None:
    folder = LocalFolder(tmp_path / "gone", FeedNamer())
    staged = tmp_path / ".user-1.csv.tmp"
    staged.write_text("userId\r\n")
    with pytest.raises(DeliveryError, match="feed_dir"):
        folder.deliver([SealedFile(USER_FEED, staged, 0, compressed=False)])


def test_writing_many_rows_keeps_memory_flat(tmp_path: Path) -> None:
    """50,000 rows stream to disk: Python memory stays far below the file's size."""
    names = [f"crmField{n}" for n in range(8)]
    writer = FeedWriter(USER_FEED, ["userId"], names, tmp_path, compressed=False)
    tracemalloc.start()
    for n in range(50_000):
        writer.write([f"u-{n:07d}"], {name: f"value {n} of {name}" for name in names})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    [sealed] = writer.seal()
    assert sealed.rows == 50_000
    assert sealed.path.stat().st_size > 10_000_000
    assert peak < 2_000_000
