"""The language path as a library runs it (issue 16): three commands, no labels, k from the data.

Its own module, so that a parallel run (pytest-xdist, --dist loadscope) can give it to one worker
while another builds test_end_to_end.py's chain."""
import pandas as pd

import common
from conftest import run_script_ok as run


def test_three_languages_nobody_labelled_through_the_language_path(tmp_path):
    """Issue 16: a tiny three-language corpus without labels through the three commands a library
    runs; k comes from the data and every song gets a named (or honestly unnamed) cluster."""
    src = tmp_path / "src"
    run("demo_corpus.py", "--out", str(src), "--songs", "9", "--seed", "3", "--workers", "2",
        "--languages", "english,spanish,bangla", "--set", "min_seconds=31", "--set", "max_seconds=34")
    manifest = pd.read_csv(src / "manifest.csv")
    truth = dict(zip(manifest["song_id"].astype(str), manifest["language"]))
    manifest.drop(columns="language").to_csv(src / "unlabelled.csv", index=False)  # nobody labelled them
    dirs = ["--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "results")]
    run("build_dataset.py", "--source", "manifest", "--manifest", str(src / "unlabelled.csv"), "--workers", "2", *dirs)
    run("build_features.py", "--sets", "language", "--workers", "2", *dirs[:2])
    out = run("analyze_language.py", "--sets", "language", *dirs)
    assert "k = " in out and "auto" in out
    songs = pd.read_csv(tmp_path / "results" / common.SONG_LANGUAGES_FILE, dtype=str, keep_default_na=False)
    assert list(songs.columns) == common.SONG_LANGUAGE_COLUMNS and len(songs) == 9
    assert (songs["language"] == "").all()  # no label went in
    assert ((songs["cluster_language"] == "") | songs["cluster_language"].str.fullmatch("[a-z]{2,3}")).all()
    english = songs[songs["song_id"].map(truth) == "english"]
    assert (english["cluster_language"] == "en").all() and english["cluster"].nunique() == 1
    assert (english["cluster_language_name"] == "English").all()
    clusters = pd.read_csv(tmp_path / "results" / "metrics" / common.LANGUAGE_CLUSTERS_FILE, dtype=str,
                           keep_default_na=False)
    assert set(clusters["cluster"]) == set(songs["cluster"]) and set(clusters["named_by"]) <= {"whisper", "uncertain"}
    count = pd.read_csv(tmp_path / "results" / "metrics" / common.LANGUAGE_COUNT_FILE)
    assert int(count["k"].iloc[0]) == songs["cluster"].nunique()
    # written (unrendered here: tests/conftest.py); test_language.py renders the chart itself
    assert (tmp_path / "results" / "figures" / common.LANGUAGE_COUNT_FIGURE).exists()
    report = (tmp_path / "results" / "REPORT.md").read_text()
    assert "## How many languages, and which" in report
