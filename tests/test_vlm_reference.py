"""The one-model VLM test's reference text model (dejavu/vlm/reference.py: TF-IDF over
hashed words, its IDF from the public captions alone) and the agreement of the one- and
two-model tests (dejavu/vlm/scoring.py), on hand-sized cases."""

import numpy as np
import pytest

from dejavu.vlm import reference, scoring

@pytest.mark.unit
def test_tfidf_weights_rare_public_words_and_normalises():
    public = ["a red cup", "a red kite", "a blue cup"]
    idf = reference.fit_idf([public[:2], public[2:]], dim=4096)  # batches add up
    assert np.allclose(idf, reference.fit_idf([public], dim=4096))
    x = reference.tfidf(["a red cup", "a red cup", "kite", "", "unseen words"], idf)
    assert np.allclose(np.linalg.norm(x[[0, 2, 4]], axis=1), 1) and not x[3].any()
    assert x[0] @ x[1] == pytest.approx(1)
    bucket = lambda word: reference.counts([word], 4096).argmax()  # noqa: E731
    # "a" is in every public caption, "kite" in one: log(4/4) + 1 = 1 and log(4/2) + 1
    assert idf[bucket("a")] == pytest.approx(1) and idf[bucket("kite")] == pytest.approx(
        np.log(2) + 1)
    assert idf[bucket("unseen")] == pytest.approx(np.log(4) + 1)  # df 0


@pytest.mark.unit
def test_agreement_counts_which_test_finds_each_record_memorized():
    key = (10, "top10")
    score = lambda recall: {key: (None, np.array(recall, float), None)}  # noqa: E731
    target, model_b, g = score([0.5, 0.5, 0.2, 0.1]), score([0.2, 0.5, 0.2, 0.3]), \
        score([0.1, 0.2, 0.5, np.nan])
    # record 0: both; 1: one-model only; 2: neither; 3: neither (no recall by g)
    assert scoring.agreement([(target, model_b)], [g], key) == [[1, 0], [1, 2]]


def save_tiny_sentence_model(folder):
    """A randomly initialised one-layer BERT with mean pooling, saved as a
    sentence-transformers folder (its WordPiece vocabulary written here: no download)."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast
    words = "[PAD] [UNK] [CLS] [SEP] [MASK] a red blue cup kite lamp on the".split()
    (folder / "vocab.txt").write_text("\n".join(words))
    bert = BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32,
                                max_position_embeddings=32))
    bert.save_pretrained(folder / "hf")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder / "hf")
    word = models.Transformer(str(folder / "hf"), max_seq_length=32)
    pooling = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(folder / "st"))
    return folder / "st"


@pytest.mark.unit
def test_a_sentence_model_folder_is_g_and_the_one_model_test_runs_on_it(tmp_path):
    pytest.importorskip("sentence_transformers")  # the test extras install it
    import pandas as pd

    from dejavu.data.sources import Rejects
    from dejavu.vlm import data, embeddings, reference as ref
    rng = np.random.default_rng(0)
    colours, things = ["red", "blue"], ["cup", "kite", "lamp"]
    picks = [(rng.integers(2), rng.integers(3)) for _ in range(40)]
    table = pd.DataFrame({"id": [str(i) for i in range(40)],
                          "caption": [f"a {colours[c]} {things[t]}" for c, t in picks],
                          "objects": [[t] for _, t in picks], "named": [[t] for _, t in picks]})
    data.write_store(str(tmp_path / "store"), np.zeros((40, 4, 4, 3), np.uint8), table,
                     things, Rejects("vlm_data").table())
    data.split(40, 8, seed=0).to_parquet(tmp_path / "split.parquet")
    folder = save_tiny_sentence_model(tmp_path)
    ref.run_embed(str(tmp_path / "store"), str(tmp_path / "split.parquet"),
                  str(tmp_path / "g.zarr"), reference="sentence_transformers", path=str(folder),
                  batch_size=7, chunk_rows=16)
    stored = embeddings.open_store(str(tmp_path / "g.zarr"))["text"][:]
    expected = ref.sentence_model(str(folder)).encode(table["caption"].tolist())
    assert stored.shape == (40, 16) and np.allclose(stored, expected, atol=1e-5)
    # a VLM trained elsewhere whose caption embeddings are g's own: no gap against g
    writer = embeddings.Writer(str(tmp_path / "a.zarr"), 40, {"image": 16, "text": 16}, 16)
    writer.add(image=stored, text=stored)
    writer.close()
    scoring.run_test(str(tmp_path / "store"), str(tmp_path / "split.parquet"),
                     {"A": str(tmp_path / "a.zarr"), "g": str(tmp_path / "g.zarr")},
                     str(tmp_path / "test.json"), ks=[1, 3], modes=["top1"],
                     searches=["t2t"], unnamed_only=False, n_boot=10, seed=0, meta={},
                     reference="mine")
    import json
    rows = json.loads((tmp_path / "test.json").read_text())["rows"]
    assert {r["test"] for r in rows} == {"vlm_onemodel"} and len(rows) == 2 * 2
    assert all(r["recall_gap"] == 0 and r["reference"] == "mine" for r in rows)


@pytest.mark.workflow
def test_the_workflow_plans_a_sentence_model_folder_as_g(tmp_path):
    """The config check finds the folder before any job, and the plan embeds with it."""
    pytest.importorskip("sentence_transformers")
    from conftest import copy_workflow, planned_jobs
    folder = save_tiny_sentence_model(tmp_path)
    work = copy_workflow(tmp_path / "w")
    (work / "st.yaml").write_text(f"vlm: {{onemodel: {{reference: sentence_transformers, "
                                  f"path: {folder}}}}}\n")
    assert planned_jobs(work, "--configfile", "tiny.yaml", "vlm_tiny.yaml", "st.yaml", "--",
                        "results/vlm_summary.csv")["vlm_reference"] == 1
