"""Real captioned data into a records store (dejavu/vlm/ingest.py): images written here
(PNG, grayscale, a corrupt one) read through the JSON-lines and COCO adapters, decoded onto
the store's canvas a chunk at a time, every bad input recorded; strict mode stops naming
its key; and the workflow's vlm_data stage reads a JSON-lines file (a real Snakemake run)."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import copy_workflow, planned_jobs, snakemake
from dejavu.data.sources import BadInput
from dejavu.vlm import data, ingest

COLOURS = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250)]


def write_images(folder):
    """Five 20 x 12 images of one colour each (one grayscale), and a corrupt file."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, colour in enumerate(COLOURS):
        image = Image.new("RGB", (20, 12), colour)
        (image.convert("L") if i == 4 else image).save(folder / f"{i}.png")
    (folder / "bad.png").write_bytes(b"\x89PNG not really")


def jsonl_records(root):
    write_images(root / "img")
    lines = [{"image": f"img/{i}.png", "caption": f"thing {i} with a kite",
              "objects": ["kite", f"o{i}"]} for i in range(5)]
    lines.insert(2, {"image": "img/bad.png", "caption": "broken", "objects": ["kite"]})
    (root / "records.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root / "records.jsonl"


def settings(**over):
    return {"source": "jsonl", "coco": {}, "jsonl": None, "image_size": 8,
            "resize": "center", "strict": False, "chunk_rows": 2, **over}


@pytest.mark.unit
def test_jsonl_records_are_decoded_in_chunks_and_a_corrupt_image_is_recorded(tmp_path):
    out = tmp_path / "store"
    ingest.run(str(out), **settings(jsonl=str(jsonl_records(tmp_path))))
    records = data.Records(str(out))
    ids = pd.read_parquet(out / "records.parquet")["id"].tolist()
    assert ids == ["1", "2", "4", "5", "6"]  # line 3: corrupt
    images = records.images(records.rows)
    assert images.shape == (5, 8, 8, 3)
    want = np.array(COLOURS[:4], dtype=float)
    assert np.abs(images[:4].reshape(4, -1, 3).mean(1) - want).max() < 2  # each its colour
    assert np.ptp(images[4], axis=-1).max() == 0  # grayscale: equal channels
    rejects = pd.read_parquet(out / "rejects.parquet")
    assert sorted(zip(rejects["kind"], rejects["action"])) == [
        ("grayscale", "converted"), ("unreadable", "record skipped")]
    assert records.captions(records.rows[:1]) == ["thing 0 with a kite"]
    kite = pd.read_csv(out / "vocabulary.csv")["object"].tolist().index("kite")
    assert records.objects(records.rows, unnamed_only=True)[:, kite].sum() == 0  # named


@pytest.mark.unit
def test_coco_records_become_a_store(tmp_path):
    write_images(tmp_path / "images")
    captions = {"images": [{"id": i, "file_name": f"{i}.png"} for i in range(4)],
                "annotations": [{"id": i, "image_id": i, "caption": f"a dog {i}"}
                                for i in range(4)]}
    instances = {"categories": [{"id": 1, "name": "dog"}, {"id": 3, "name": "ball"}],
                 "annotations": [{"image_id": i, "category_id": 1 + 2 * (i % 2)}
                                 for i in range(4)]}
    (tmp_path / "c.json").write_text(json.dumps(captions))
    (tmp_path / "i.json").write_text(json.dumps(instances))
    coco = {"captions": str(tmp_path / "c.json"), "instances": str(tmp_path / "i.json"),
            "images": str(tmp_path / "images")}
    ingest.run(str(tmp_path / "store"), **settings(source="coco", coco=coco))
    records = data.Records(str(tmp_path / "store"))
    assert records.objects(records.rows).tolist() == [[True, False], [False, True]] * 2


@pytest.mark.unit
def test_strict_mode_stops_at_the_corrupt_image_naming_its_key(tmp_path):
    with pytest.raises(BadInput, match="bad.png.*vlm.data.strict: false"):
        ingest.run(str(tmp_path / "store"),
                   **settings(jsonl=str(jsonl_records(tmp_path)), strict=True))
    assert not (tmp_path / "store").exists()


@pytest.mark.workflow
def test_the_workflow_reads_a_jsonl_file(tmp_path):
    work = copy_workflow(tmp_path / "w")
    jsonl_records(work)
    (work / "real.yaml").write_text("vlm: {data: {source: jsonl, jsonl: records.jsonl, "
                                    "image_size: 8}, per_set: 1}\n")
    args = ("--configfile", "tiny.yaml", "vlm_tiny.yaml", "real.yaml")
    assert planned_jobs(work, *args, "--", "results/vlm_summary.csv")["vlm_data"] == 1
    snakemake(work, "-c1", *args, "--", "results/vlm/jsonl/split.parquet")
    split = pd.read_parquet(work / "results/vlm/jsonl/split.parquet")
    assert split["set"].value_counts().to_dict() == {"public": 2, "A": 1, "B": 1,
                                                     "heldout": 1}


@pytest.mark.unit
def test_a_jsonl_file_streamed_a_record_at_a_time_makes_the_same_store(tmp_path):
    """Chunks of one record (the corrupt image's chunk writes nothing) and of all of them
    give the same records, rows, images and rejects."""
    jsonl = str(jsonl_records(tmp_path))
    stores = {}
    for rows in (1, 64):
        out = tmp_path / f"store{rows}"
        ingest.run(str(out), **settings(jsonl=jsonl, chunk_rows=rows))
        stores[rows] = out
    one, all_ = (pd.read_parquet(stores[r] / "records.parquet") for r in (1, 64))
    pd.testing.assert_frame_equal(one, all_)
    assert one["row"].tolist() == list(range(5))
    images = [data.Records(str(stores[r])).images(np.arange(5)) for r in (1, 64)]
    assert np.array_equal(*images)
    rejects = [pd.read_parquet(stores[r] / "rejects.parquet") for r in (1, 64)]
    pd.testing.assert_frame_equal(*rejects)
