"""The data module: the user's own tables and sequence files, vocabulary, split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import write
from onerec_trt.data import PAD, ItemVocab, LeaveOneOut, load_dataset, pad_histories
from onerec_trt.errors import UserError


def table(tmp_path: Path, text: str, columns: str | None = None, name: str = "t.csv", **kw):
    return load_dataset("table", write(tmp_path, name, text), columns=columns, **kw)


def seqs(ds) -> dict[str, list[str]]:
    """Per user, the original item ids in the order the dataset holds them."""
    return {u: ds.vocab.decode(s) for u, s in zip(ds.users, ds.sequences, strict=True)}


def ids(ds) -> list[list[int]]:
    return [s.tolist() for s in ds.sequences]


def error(call, *args, **kw) -> str:
    with pytest.raises(UserError) as info:
        call(*args, **kw)
    return str(info.value)


# --- interaction tables -----------------------------------------------------------------------


def test_csv_sorted_by_time_per_user(tmp_path):
    ds = table(tmp_path, "user,item,time\n"
                         "u1,a,30\n"
                         "u2,c,5\n"
                         "u1,b,10\n"
                         "u2,d,6\n"
                         "u1,c,20\n"
                         "u2,a,7\n", "user=user,item=item,time=time")
    assert ds.name == "table"
    assert ds.users == ["u1", "u2"]  # first appearance in the file
    assert seqs(ds) == {"u1": ["b", "c", "a"], "u2": ["c", "d", "a"]}
    assert ds.vocab.tokens == ["b", "c", "a", "d"]  # dense ids in order of first use
    assert ids(ds) == [[1, 2, 3], [2, 4, 3]]
    assert all(s.dtype == np.int64 for s in ds.sequences)
    assert ds.num_items == 4
    assert ds.stats["users"] == 2
    assert ds.stats["items"] == 4
    assert ds.stats["vocabulary"] == 4
    assert ds.stats["interactions"] == 6
    assert ds.stats["removed"] == {"users_reordered_by_time": 1, "users_filtered": 0,
                                   "items_filtered": 0}
    assert ds.stats["unknown_items_example"] == []


@pytest.mark.parametrize("sep", ["\t", ",", ";", "|"])
def test_delimiter_sniffed_and_columns_renamed(tmp_path, sep):
    rows = [["uid", "rating", "ts", "iid"],
            ["7", "5", "100", "x"], ["7", "1", "101", "y"], ["7", "3", "102", "z"],
            ["8", "4", "50", "z"], ["8", "4", "40", "y"], ["8", "4", "60", "x"]]
    text = "".join(sep.join(r) + "\n" for r in rows)
    name = "t.tsv" if sep == "\t" else "t.csv"
    ds = table(tmp_path, text, "user=uid,item=iid,time=ts", name=name)
    assert seqs(ds) == {"7": ["x", "y", "z"], "8": ["y", "z", "x"]}
    assert ids(ds) == [[1, 2, 3], [2, 3, 1]]
    assert ds.stats["removed"]["users_reordered_by_time"] == 1


def test_default_columns_are_user_and_item(tmp_path):
    ds = table(tmp_path, "item,user\na,u\nb,u\nc,u\n")
    assert seqs(ds) == {"u": ["a", "b", "c"]}


def test_no_time_column_keeps_file_order(tmp_path):
    ds = table(tmp_path, "user,item,time\nu,c,3\nu,a,1\nu,b,2\n", "user=user,item=item")
    assert seqs(ds) == {"u": ["c", "a", "b"]}
    assert "users_reordered_by_time" not in ds.stats["removed"]


def test_equal_times_keep_file_order(tmp_path):
    ds = table(tmp_path, "u,i,t\n"
                         "A,p,5\nA,q,5\nA,r,5\nA,s,1\n"  # s first, then p q r as in the file
                         "B,r,1\nB,q,2\nB,p,2\n",  # already in time order (ties too)
               "user=u,item=i,time=t")
    assert seqs(ds) == {"A": ["s", "p", "q", "r"], "B": ["r", "q", "p"]}
    assert ds.stats["removed"]["users_reordered_by_time"] == 1


def test_reordered_users_are_counted(tmp_path):
    ds = table(tmp_path, "u,i,t\n"
                         "1,a,3\n1,b,2\n1,c,1\n"  # reversed
                         "2,a,1\n2,b,2\n2,c,3\n"  # in order
                         "3,a,1.5\n3,b,1.25\n3,c,2e3\n",  # floats, one swap
               "user=u,item=i,time=t")
    assert seqs(ds) == {"1": ["c", "b", "a"], "2": ["a", "b", "c"], "3": ["b", "a", "c"]}
    assert ds.stats["removed"]["users_reordered_by_time"] == 2
    assert "sorted by time (file order differed): 2 users" in ds.describe()
    assert "removed" not in ds.describe()  # reordering removes nothing


def test_quoted_fields_and_surrounding_spaces(tmp_path):
    ds = table(tmp_path, 'user, item\nu, "a, the item"\nu ,b\nu,"c"\n')
    assert seqs(ds) == {"u": ["a, the item", "b", "c"]}


def test_utf8_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = write(tmp_path, "excel.csv", "\ufeffuser,item\nu,ä\nu,b\nu,c\n".encode())
    ds = load_dataset("table", path, columns="user=user,item=item")
    assert seqs(ds) == {"u": ["ä", "b", "c"]}


def test_parquet(tmp_path):
    # exc_type: a pyarrow built for another NumPy fails with ImportError; skip then too
    pa = pytest.importorskip("pyarrow", exc_type=ImportError)
    pq = pytest.importorskip("pyarrow.parquet", exc_type=ImportError)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"uid": [1, 1, 1, 2, 2, 2], "iid": [2**62, 5, 6, 6, 5, 2**62],
                             "ts": [3.0, 1.0, 2.0, 1.0, 2.0, 3.0]}), path)
    ds = load_dataset("table", path, columns="user=uid,item=iid,time=ts")
    assert seqs(ds) == {"1": ["5", "6", str(2**62)], "2": ["6", "5", str(2**62)]}
    assert ds.stats["removed"]["users_reordered_by_time"] == 1
    nulls = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"user": ["u", "u", "u"], "item": ["a", None, "c"]}), nulls)
    assert f"{nulls}:3: empty item id" in error(load_dataset, "table", nulls)
    bad = write(tmp_path, "bad.parquet", "user,item\nu,a\n")
    assert f"{bad}: cannot read it as Parquet" in error(load_dataset, "table", bad)


# --- sequence files ---------------------------------------------------------------------------


def test_sequence_file(tmp_path):
    path = write(tmp_path, "s.txt", "alice i3 i1 i2\n\n  bob\ti1  i4 i5 i1 \nsolo i9\n")
    ds = load_dataset("sequences", path)
    assert ds.users == ["alice", "bob"]
    assert seqs(ds) == {"alice": ["i3", "i1", "i2"], "bob": ["i1", "i4", "i5", "i1"]}
    assert ds.vocab.tokens == ["i3", "i1", "i2", "i4", "i5"]
    assert ids(ds) == [[1, 2, 3], [2, 4, 5, 2]]
    # solo has one interaction: skipped and counted, its only item with it
    assert ds.stats["removed"] == {"users_filtered": 1, "items_filtered": 1}
    assert ds.stats["interactions"] == 7
    assert ds.stats["items"] == 5


def test_sequence_file_user_without_items(tmp_path):
    path = write(tmp_path, "s.txt", "u1 a b c\n\nu2\n")
    msg = error(load_dataset, "sequences", path)
    assert f"{path}:3: malformed line: user 'u2' has no items" in msg
    assert "Note: expected 'user item item ...'" in msg


def test_string_and_huge_integer_item_ids(tmp_path):
    huge = ["18446744073709551616", "99999999999999999999999999", "-1", "007", "7", "B00004TMFE"]
    path = write(tmp_path, "s.txt", f"u {' '.join(huge)}\nv 7 007 B00004TMFE\n")
    ds = load_dataset("sequences", path)
    assert ds.vocab.tokens == huge  # kept verbatim: "007" and "7" are different items
    assert ids(ds) == [[1, 2, 3, 4, 5, 6], [5, 4, 6]]
    assert seqs(ds)["v"] == ["7", "007", "B00004TMFE"]
    assert ds.vocab.decode([PAD, 1, 7]) == [None, huge[0], None]


# --- filters ----------------------------------------------------------------------------------


def test_users_below_min_user_are_skipped_and_counted(tmp_path):
    text = "u1 a\nu2 a b\nu3 a b c\nu4 a b c d\n"
    ds = load_dataset("sequences", write(tmp_path, "s.txt", text))
    assert ds.users == ["u3", "u4"]
    assert ds.stats["removed"]["users_filtered"] == 2
    ds = load_dataset("sequences", tmp_path / "s.txt", min_user=4)
    assert ds.users == ["u4"]
    assert ds.stats["removed"] == {"users_filtered": 3, "items_filtered": 0}
    # fewer than 3 is never allowed: the split needs a training, a validation and a test item
    assert load_dataset("sequences", tmp_path / "s.txt", min_user=1).users == ["u3", "u4"]


def test_min_item_is_one_pass(tmp_path):
    text = "u1 a b c x\nu2 a b c\nu3 a b y z\n"
    ds = load_dataset("sequences", write(tmp_path, "s.txt", text), min_item=2)
    # x, y, z are rare; u3 is left with a b and is skipped
    assert seqs(ds) == {"u1": ["a", "b", "c"], "u2": ["a", "b", "c"]}
    assert ds.stats["removed"] == {"users_filtered": 1, "items_filtered": 3}


def test_kcore_repeats_until_stable(tmp_path):
    text = ("u1 A B C\nu2 A B C\nu3 A B C\n"
            "u4 D E F\nu5 D E G\nu6 D E A\n")
    path = write(tmp_path, "s.txt", text)
    # one pass with the same thresholds: F, G go, then u4 and u5 (two items left) go
    one = load_dataset("sequences", path, min_item=3)
    assert seqs(one)["u6"] == ["D", "E", "A"]
    assert one.stats["removed"] == {"users_filtered": 2, "items_filtered": 2}
    # 3-core: that leaves D and E with one interaction each, so u6 falls too (a second pass)
    core = load_dataset("sequences", path, kcore=3)
    assert seqs(core) == {u: ["A", "B", "C"] for u in ("u1", "u2", "u3")}
    assert core.stats["removed"] == {"users_filtered": 3, "items_filtered": 4}
    assert core.vocab.tokens == ["A", "B", "C"]  # filtered items get no id


def test_filters_on_a_table(tmp_path):
    ds = table(tmp_path, "u,i\n1,a\n1,b\n1,c\n1,d\n2,a\n2,b\n2,c\n3,a\n3,z\n3,x\n",
               "user=u,item=i", min_item=2)
    assert seqs(ds) == {"1": ["a", "b", "c"], "2": ["a", "b", "c"]}
    assert ds.stats["removed"] == {"users_filtered": 1, "items_filtered": 3}


def test_everything_filtered_is_an_error(tmp_path):
    msg = error(load_dataset, "sequences", write(tmp_path, "s.txt", "u1 a b\nu2 c\n"))
    assert "no user of sequences has at least 3 interactions after filtering" in msg
    msg = error(load_dataset, "sequences", tmp_path / "s.txt", kcore=5)
    assert "at least 5 interactions" in msg


# --- statistics -------------------------------------------------------------------------------


def test_stats_and_describe(tmp_path):
    text = "u1 a b c\nu2 a b c d\nu3 a b c d e\nu4 a\nu5 q r s t u v w x y z\n"
    ds = load_dataset("sequences", write(tmp_path, "s.txt", text), min_item=2)
    assert ds.stats == {
        "users": 3,
        "items": 4,
        "vocabulary": 4,
        "interactions": 11,  # u3 loses e
        "sequence_length": {"p5": 3, "p50": 4, "p95": 4, "min": 3, "max": 4},
        "removed": {"users_filtered": 2, "items_filtered": 11},
        "unknown_items_example": [],
        "users_on_several_lines": 0,  # sequence files: checked, see test_data_files.py
    }
    assert ds.describe() == (
        "dataset sequences: 3 users, 4 items, 11 interactions\n"
        "  sequence length p5/p50/p95/max: 3/4/4/4\n"
        "  removed: users_filtered 2, items_filtered 11"
    )


# --- vocabulary -------------------------------------------------------------------------------


def test_vocab_save_load_round_trip(tmp_path):
    ds = load_dataset("sequences", write(tmp_path, "s.txt", "u b 12345678901234567890 é b\n"))
    path = tmp_path / "model" / "items.json"
    path.parent.mkdir()
    ds.vocab.save(path)
    assert json.loads(path.read_text()) == {"num_items": 3,
                                            "tokens": ["b", "12345678901234567890", "é"]}
    back = ItemVocab.load(path)
    assert back.tokens == ds.vocab.tokens
    assert back.encode(["é", "b"]).tolist() == [3, 1]
    assert [p.name for p in path.parent.iterdir()] == ["items.json"]  # no temporary left


def test_saved_vocab_applied_to_new_data_reports_unknown_items(tmp_path):
    train = load_dataset("sequences", write(tmp_path, "train.txt", "u1 a b c d\nu2 d c b\n"))
    train.vocab.save(tmp_path / "items.json")
    vocab = ItemVocab.load(tmp_path / "items.json")
    new = load_dataset("sequences", write(tmp_path, "new.txt",
                                          "n1 d NEW1 a b\nn2 NEW2 c NEW1 NEW3\nn3 a b c\n"),
                       vocab=vocab)
    assert new.users == ["n1", "n3"]
    assert ids(new) == [[4, 1, 2], [1, 2, 3]]  # the model's ids, not fresh ones
    assert vocab.tokens == ["a", "b", "c", "d"]  # nothing added
    assert new.stats["vocabulary"] == 4
    assert new.stats["removed"]["unknown_item_interactions"] == 4
    assert new.stats["removed"]["users_short_after_unknown"] == 1  # n2 kept only c
    assert new.stats["unknown_items_example"] == ["NEW1", "NEW2", "NEW3"]
    assert "unknown_item_interactions 4" in new.describe()
    assert "users_short_after_unknown 1" in new.describe()


def test_saved_vocab_with_nothing_known_is_an_error(tmp_path):
    vocab = ItemVocab(["a", "b", "c"])
    path = write(tmp_path, "new.txt", "n1 x y z\nn2 a x y\n")
    msg = error(load_dataset, "sequences", path, vocab=vocab)
    assert "no user of sequences keeps 3 known items under the model's vocabulary" in msg
    assert "5 interactions name items the model has never seen, e.g. x, y, z" in msg


def test_vocab_encode_and_errors(tmp_path):
    vocab = ItemVocab(["x", "42"])
    assert vocab.add("x") == 1 and vocab.add("new") == 3 and len(vocab) == 3
    assert vocab.encode([42, "x"]).tolist() == [2, 1]  # ints are looked up as their text
    assert "unknown item id 'nope': not in the model's vocabulary" in error(vocab.encode, ["nope"])
    assert "duplicate tokens" in error(ItemVocab, ["a", "b", "a"])
    assert "item vocabulary not found" in error(ItemVocab.load, tmp_path / "none.json")
    bad = write(tmp_path, "bad.json", "{not json")
    assert "item vocabulary is not valid JSON" in error(ItemVocab.load, bad)
    wrong = write(tmp_path, "wrong.json", '{"num_items": 2}')
    assert "item vocabulary has no 'tokens' list" in error(ItemVocab.load, wrong)


# --- split and padding ------------------------------------------------------------------------


def test_leave_one_out(tmp_path):
    ds = load_dataset("sequences", write(tmp_path, "s.txt", "u1 a b c d e\nu2 c b a\n"))
    split = ds.split()
    assert split.num_users == 2
    assert [t.tolist() for t in split.train] == [[1, 2, 3], [3]]
    assert split.valid_targets.tolist() == [4, 2]
    assert split.test_targets.tolist() == [5, 1]
    assert [h.tolist() for h in split.histories("valid")] == [[1, 2, 3], [3]]
    assert [h.tolist() for h in split.histories("test")] == [[1, 2, 3, 4], [3, 2]]
    assert split.targets("valid").tolist() == [4, 2]
    assert split.targets("test").tolist() == [5, 1]
    with pytest.raises(ValueError, match="unknown split 'train'"):
        split.histories("train")
    with pytest.raises(ValueError, match="1 sequences shorter than 3"):
        LeaveOneOut.from_sequences([np.array([1, 2, 3]), np.array([1, 2])])


def test_pad_histories_left_pads_and_keeps_the_last_items():
    out = pad_histories([np.array([1, 2]), np.array([1, 2, 3, 4, 5, 6]), np.array([], np.int64),
                         np.array([7, 8, 9, 10])], 4)
    assert out.dtype == np.int64
    assert out.tolist() == [[PAD, PAD, 1, 2], [3, 4, 5, 6], [PAD] * 4, [7, 8, 9, 10]]


# --- bad input --------------------------------------------------------------------------------


def test_missing_and_empty_files(tmp_path):
    assert "table needs a file" in error(load_dataset, "table", None)
    assert "Note: pass it with --data PATH" in error(load_dataset, "sequences")
    assert "Amazon Beauty needs a file" in error(load_dataset, "beauty")
    missing = tmp_path / "nope.csv"
    assert f"interaction table file not found: {missing}" in error(load_dataset, "table", missing)
    empty = write(tmp_path, "empty.csv", "")
    assert f"interaction table file is empty: {empty}" in error(load_dataset, "table", empty)
    empty = write(tmp_path, "empty.txt", "")
    assert f"sequence file is empty: {empty}" in error(load_dataset, "sequences", empty)
    blank = write(tmp_path, "blank.txt", "\n  \n\n")
    assert f"sequence file has no users: {blank}" in error(load_dataset, "sequences", blank)
    blank = write(tmp_path, "blank.csv", "\n\nuser,item\n")
    assert "the first line is empty; expected a header row" in error(load_dataset, "table", blank)
    header = write(tmp_path, "header.csv", "user,item\n\n")
    assert f"interaction table has no rows: {header}" in error(load_dataset, "table", header)


def test_missing_mapped_column(tmp_path):
    msg = error(table, tmp_path, "uid,iid,ts\n1,a,1\n", "user=uid,item=item_id,time=timestamp")
    assert "mapped column(s) not found: item=item_id, time=timestamp" in msg
    assert "Note: the header has: uid, iid, ts; map them with --columns" in msg
    # without --columns the defaults user and item are looked for
    assert "not found: user=user, item=item" in error(table, tmp_path, "uid,iid\n1,a\n")


def test_wrong_delimiter(tmp_path):
    # header comma separated, rows tab separated: the first row names its line
    msg = error(table, tmp_path, "user,item,time\nu,a,1\nu\tb\t2\n", "user=user,item=item")
    assert "t.csv:3: 1 fields, the header has 3" in msg
    assert "Note: check the delimiter and quoting" in msg
    # space separated: no delimiter in the header at all
    msg = error(table, tmp_path, "user item time\nu a 1\n")
    assert "cannot find a delimiter in the header line" in msg
    # a sequence file passed as a table: the header line is a user with items
    msg = error(table, tmp_path, "u1 a b c\nu2 a b c\n", name="s.txt")
    assert "cannot find a delimiter" in msg


def test_row_with_extra_field_names_its_physical_line(tmp_path):
    # a quoted field may hold line breaks (here a note; an id may not, see test_data_files.py)
    text = 'user,item,note\nu,a,"multi\nline"\nu,b,x\nu,c,x,extra\n'
    assert "t.csv:5: 4 fields, the header has 3" in error(table, tmp_path, text)


@pytest.mark.parametrize("value", ["yesterday", "", "nan", "inf"])
def test_time_not_a_number(tmp_path, value):
    msg = error(table, tmp_path, f"u,i,t\n1,a,1\n1,b,{value}\n", "user=u,item=i,time=t")
    assert f"t.csv:3: time {value!r} is not a number" in msg
    assert "Note: the time column must be numeric" in msg


def test_empty_ids(tmp_path):
    assert "t.csv:3: empty item id" in error(table, tmp_path, "user,item\nu,a\nu,\nu,c\n")
    assert "t.csv:2: empty user id" in error(table, tmp_path, "user,item\n ,a\nu,b\n")


def test_not_utf8(tmp_path):
    path = write(tmp_path, "t.csv", b"user,item\nu,caf\xe9\n")
    msg = error(load_dataset, "table", path)
    assert f"{path}: not UTF-8 text" in msg and "Note: save it as UTF-8" in msg
    path = write(tmp_path, "s.txt", b"u a b \xff\xfe\n")
    assert f"{path}: not UTF-8 text" in error(load_dataset, "sequences", path)


def test_bad_options(tmp_path):
    path = write(tmp_path, "s.txt", "u a b c\n")
    assert "unknown dataset 'movies'" in error(load_dataset, "movies", path)
    assert "--columns only applies to --dataset table" in error(
        load_dataset, "sequences", path, columns="user=u,item=i")
    for spec in ("user=u,item", "user=u,rating=r", "user=,item=i", "user=u,item=i,"):
        msg = error(load_dataset, "table", path, columns=spec)
        assert "bad --columns entry" in msg and "Note: expected e.g. user=uid,item=iid" in msg
