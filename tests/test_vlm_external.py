"""A VLM trained elsewhere (dejavu/vlm/external.py): a tiny OpenCLIP model configured and
saved by the test (never a download), its training set declared by a sets file, attacked end
to end by the one-model test against the TF-IDF reference (a real Snakemake run on the tiny
captioned config); the declared split and its errors."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import copy_workflow, planned_jobs, snakemake
from dejavu.vlm import data

TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8,
                            "head_width": 16},
             "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                          "layers": 1}}


def save_tiny_clip(folder):
    """A randomly initialised OpenCLIP model of TINY_CLIP, saved as its config and weights."""
    import open_clip
    import torch
    (folder / "tinyclip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(str(folder / "tinyclip.json"))
    torch.manual_seed(0)
    torch.save(open_clip.create_model("tinyclip").state_dict(), folder / "tinyclip.pt")


@pytest.mark.workflow
def test_an_openclip_checkpoint_is_attacked_by_the_one_model_test(tmp_path):
    pytest.importorskip("open_clip")  # the test extras install it
    work = copy_workflow(tmp_path / "w")
    save_tiny_clip(work)
    sets = pd.DataFrame({"id": [str(i) for i in range(80)], "set": ["A"] * 40 + ["heldout"] * 40})
    sets.to_csv(work / "sets.csv", index=False)
    (work / "ext.yaml").write_text(
        "vlm: {sets: sets.csv, external: {name: tiny, architecture: tinyclip, "
        "model_config: tinyclip.json, checkpoint: tinyclip.pt}}\n")
    args = ("--configfile", "tiny.yaml", "vlm_tiny.yaml", "ext.yaml", "--",
            "results/vlm_summary.csv")
    assert planned_jobs(work, *args) == {"vlm_data": 1, "vlm_split": 1, "vlm_reference": 1,
                                         "vlm_external_embed": 1, "vlm_external_test": 1,
                                         "vlm_summary": 1}
    snakemake(work, "-c2", *args)
    table = pd.read_csv(work / "results/vlm_summary.csv")
    assert set(table["test"]) == {"vlm_onemodel"} and set(table["model"]) == {"tiny"}
    assert set(table["reference"]) == {"tfidf"}
    assert table["control"].value_counts().to_dict() == {"none": 12, "heldout": 12}
    assert table["recall_gap"].between(-1, 1).all()
    store = work / "results/vlm/synthetic/external/tiny/A.zarr"
    import zarr
    assert zarr.open_group(str(store), mode="r")["image"].shape == (300, 16)


@pytest.mark.unit
def test_a_declared_split_lists_its_sets_and_leaves_the_rest_public(tmp_path):
    ids = pd.DataFrame({"id": ["a", "b", "c", "d"], "row": range(4)})
    ids.to_parquet(tmp_path / "records.parquet")
    pd.DataFrame({"id": ["c", "a"], "set": ["A", "heldout"]}).to_csv(tmp_path / "s.csv",
                                                                     index=False)
    split = data.declared(str(tmp_path / "records.parquet"), str(tmp_path / "s.csv"))
    assert split["set"].tolist() == ["heldout", "public", "A", "public"]
    for rows, error in (({"id": ["z"], "set": ["A"]}, "1 ids are not records"),
                        ({"id": ["a"], "set": ["train"]}, r"sets \['train'\] are none of"),
                        ({"id": ["a", "a"], "set": ["A", "B"]}, "ids listed twice")):
        pd.DataFrame(rows).to_csv(tmp_path / "bad.csv", index=False)
        with pytest.raises(ValueError, match=error):
            data.declared(str(tmp_path / "records.parquet"), str(tmp_path / "bad.csv"))
    assert np.array_equal(split["row"], np.arange(4))
