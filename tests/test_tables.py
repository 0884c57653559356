"""tables.py: the names methods go by, and the metrics files read back."""
import pandas as pd

import common
import tables


def test_read_metrics_fills_columns_older_files_lack(tmp_path):
    old = pd.DataFrame({"method": ["m", "m"], "features": "f", "uses_labels": False, "silhouette": 0.1,
                        "nmi": 0.2, "ari": 0.1, "purity": 0.6, "acc": 0.7, "n_segments": 10, "seed": [1, 2]})
    common.write_csv(common.metrics_dir(tmp_path) / "vae_metrics.csv", old)
    rows = tables.read_metrics(tmp_path)
    assert (rows["pretrained"] == "none").all() and (rows["n_scored"] == 10).all()
    assert (rows["metrics_file"] == "vae_metrics.csv").all()


def test_method_titles_of_the_report_rows_and_of_named_families():
    assert tables.method_title("mfcc_kmeans") == "K-Means on raw MFCC"
    assert tables.method_title("fg_vtln_bow_merge") == "fg_vtln_bow: singer clusters merged per language"
    assert tables.method_rank("pca_kmeans") < tables.method_rank("text_artist") < tables.method_rank("zzz")
