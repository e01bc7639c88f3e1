"""Captioned datasets into records (dejavu/vlm/records.py): the COCO-format and JSON-lines
adapters on small fixtures written here, every bad input skipped or changed and recorded
with its reason, and strict mode stopping at the first."""

import json

import pytest

from dejavu.data.sources import BadInput, Rejects
from dejavu.vlm import records

pytestmark = pytest.mark.unit


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG")  # only its presence is read
    return path


@pytest.fixture
def coco(tmp_path):
    for name in ("a.jpg", "b.jpg", "d.jpg", "e.jpg"):
        touch(tmp_path / "images" / name)
    captions = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"},
                           {"id": 3, "file_name": "c.jpg"},      # missing file
                           {"id": 4, "file_name": "d.jpg"},      # empty caption
                           {"id": 1, "file_name": "a.jpg"},      # listed twice
                           {"id": 5, "file_name": "e.jpg"}],     # no objects: kept
                "annotations": [{"id": 11, "image_id": 1, "caption": "A dog near a Traffic light"},
                                {"id": 10, "image_id": 1, "caption": "A dog on grass."},
                                {"id": 12, "image_id": 2, "caption": "two cats"},
                                {"id": 13, "image_id": 3, "caption": "a cat"},
                                {"id": 14, "image_id": 4, "caption": "   "},
                                {"id": 15, "image_id": 5, "caption": "an empty room"}]}
    instances = {"categories": [{"id": 18, "name": "dog"}, {"id": 10, "name": "traffic light"},
                                {"id": 17, "name": "cat"}],
                 "annotations": [{"image_id": 1, "category_id": 18},
                                 {"image_id": 1, "category_id": 10},
                                 {"image_id": 1, "category_id": 18},
                                 {"image_id": 2, "category_id": 17},
                                 {"image_id": 2, "category_id": 99}]}   # unknown category
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    return tmp_path


def test_coco_records_their_objects_first_captions_and_every_bad_input(coco):
    rejects = Rejects("records")
    table, vocabulary = records.read_coco(str(coco / "captions.json"),
                                          str(coco / "instances.json"),
                                          str(coco / "images"), rejects)
    assert vocabulary == ["traffic light", "cat", "dog"]  # category-id order
    assert table["id"].tolist() == ["1", "2", "5"]
    first = table.iloc[0]
    assert first["caption"] == "A dog on grass." and first["objects"] == [0, 2]
    assert first["named"] == [2]                           # "dog"; no traffic light named
    assert table.iloc[1]["objects"] == [1] and table.iloc[1]["named"] == []  # "cats": whole
                                                                             # words only
    assert table.iloc[2]["objects"] == []
    kinds = sorted(zip(rejects.table()["kind"], rejects.table()["id"]))
    assert kinds == [("caption_empty", "4"), ("duplicate", "1"), ("image_missing", "3"),
                     ("object_unknown", "2")]


def test_names_are_matched_as_whole_words():
    vocabulary = ["cat", "traffic light", "car"]
    assert records.named_objects("A Traffic-light, a CAT and a cart", vocabulary) == [0, 1]
    assert records.named_objects("cats", vocabulary) == []


def test_jsonl_records_and_every_bad_line(tmp_path):
    for name in ("x.png", "y.png", "z.png"):
        touch(tmp_path / "img" / name)
    lines = [json.dumps({"image": "img/x.png", "caption": "a red kite", "objects": ["kite", "sky"]}),
             json.dumps({"image": "img/y.png", "caption": "", "objects": ["kite"]}),
             "{not json",
             json.dumps({"caption": "no image"}),
             json.dumps({"image": "img/missing.png", "caption": "gone", "objects": []}),
             json.dumps({"image": "img/x.png", "caption": "again", "objects": []}),
             "",
             json.dumps({"image": "img/z.png", "caption": "sky", "objects": ["sky"]})]
    data = ("\n".join(lines) + "\n").encode() + b'{"image": "img/z.png", "caption": "\xff"}\n'
    (tmp_path / "records.jsonl").write_bytes(data)
    rejects = Rejects("records")
    table, vocabulary = records.read_jsonl(str(tmp_path / "records.jsonl"), rejects)
    assert vocabulary == ["kite", "sky"]
    assert table["id"].tolist() == ["1", "8"]
    assert table.iloc[0]["objects"] == [0, 1] and table.iloc[0]["named"] == [0]
    assert table.iloc[1]["named"] == [1]
    got = sorted(zip(rejects.table()["kind"], rejects.table()["id"]))
    assert got == [("caption_empty", "2"), ("duplicate", "6"), ("image_missing", "5"),
                   ("line_invalid", "3"), ("line_invalid", "4"), ("text_not_utf8", "9")]
    assert (rejects.table()["action"] == records.SKIPPED).all()


def test_strict_mode_stops_at_the_first_bad_record(coco):
    with pytest.raises(BadInput, match="instances.json: category id 99 is not among"):
        records.read_coco(str(coco / "captions.json"), str(coco / "instances.json"),
                          str(coco / "images"), Rejects("records", strict=True))


def test_an_annotation_file_that_is_not_utf8_json_is_named(tmp_path):
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe{")
    (tmp_path / "ok.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a UTF-8 JSON file"):
        records.read_coco(str(tmp_path / "bad.json"), str(tmp_path / "ok.json"),
                          str(tmp_path), Rejects("records"))
