"""The bad inputs: each case is a command line (with `{name}` placeholders for the world's files) and the texts of
which the error line must contain one (the file or value at fault)."""

from __future__ import annotations

import reliability_trust_data
import reliability_trust_failures
import reliability_trust_search
import reliability_trust_writes
from reliability_case import C, Case


def _key(name: str) -> str:
    return name.replace(":", "_").replace("-", "_")


STORE_READERS = {
    "info": ("info", "{S}"),
    "neighbors": ("neighbors", "{S}", "-g", "toy/train", "-k", "2"),
    "pairs": ("pairs", "{S}", "-g", "toy/train", "-k", "2", "--out", "{root}/out/pairs.h5"),
    "probe": ("probe", "{S}", "--train", "toy/train", "--test", "toy/test"),
    "retrieve": ("retrieve", "{S}", "-g", "toy/train", "-k", "2", "--out", "{root}/out"),
    "anomaly": ("anomaly", "{S}", "--reference", "toy/train", "--normal", "toy/test", "--ood", "toy/ood", "-k", "2",
                "--out", "{root}/out"),
    "cluster": ("cluster", "{S}", "-g", "toy/train", "-k", "3", "--map", "pca", "--out", "{root}/out"),
    "plot-map": ("plot", "map", "{S}", "-g", "toy/train", "--out", "{root}/out"),
    "compare": ("compare", "{S}", "--device", "cpu"),
}
STORE_WRITERS = {
    "add": ("add", "{S}", "-g", "new/group", "--embeddings", "{npy_x}"),
    "encode": ("encode", "{ckpt}", "--dataset", "{imgs}", "--split", "test", "--out", "{S}", "--device", "cpu"),
    "baseline-laplacian": ("baseline", "laplacian", "--dataset", "{imgs}", "--out", "{S}", "--dim", "2", "--k", "3",
                           "--pca-dim", "0"),
}
BAD_STORES = ("missing", "empty", "truncated", "corrupt-middle", "corrupt-data", "corrupt-header", "not-hdf5",
              "foreign-hdf5", "nan-values", "folder")
NOT_BAD_FOR_WRITERS = ("missing", "nan-values")  # a writer creates a missing store; NaN elsewhere is not its input
# Bytes overwritten in the middle of the file land in some group's data: only commands that read (or copy) every group
# must notice; the other damaged stores break toy/train, which every reader reads.
EVERY_GROUP_COMMANDS = ("info", *STORE_WRITERS)


def _store_cases() -> list[Case]:
    cases = []
    for command, args in {**STORE_READERS, **STORE_WRITERS}.items():
        for bad in BAD_STORES:
            if command in STORE_WRITERS and bad in NOT_BAD_FOR_WRITERS:
                continue
            if bad == "corrupt-middle" and command not in EVERY_GROUP_COMMANDS:
                continue
            path_key = "{" + _key(f"store:{bad}") + "}"
            name = {"missing": "missing.h5", "empty": "empty.h5", "not-hdf5": "notes.h5",
                    "foreign-hdf5": "foreign.h5", "folder": "folder.h5"}.get(bad, f"{bad}.h5")
            cases.append(Case(f"{command}-store-{bad}", tuple(a.replace("{S}", path_key) for a in args), (name,)))
    return cases


VALUE_CASES = [
    # ---- add: what a .npy from another model can get wrong
    C("add-nan", "add", "{root}/new.h5", "-g", "m/x", "--embeddings", "{npy_nan}", names="row 10"),
    C("add-inf", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_inf}", names="row 24"),
    C("add-float64-overflow", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_huge}", names="row 0"),
    C("add-labels-wrong-length", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_x}", "--labels",
      "{npy_labels_short}", names="labels"),
    C("add-labels-float", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_x}", "--labels", "{npy_labels_float}",
      names="labels"),
    C("add-labels-2d", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_x}", "--labels", "{npy_labels_2d}",
      names="labels"),
    C("add-ids-duplicate", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_x}", "--ids", "{npy_ids_dup}",
      names="id 3"),
    C("add-ids-wrong-length", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_x}", "--ids", "{npy_ids_short}",
      names="ids"),
    C("add-embeddings-missing", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_missing}", names="nothing.npy"),
    C("add-embeddings-not-npy", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_not_npy}", names="notnpy.npy"),
    C("add-embeddings-truncated-npy", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_truncated}",
      names="objects.npy"),
    C("add-embeddings-npz", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_npz}", names="archive.npz"),
    C("add-embeddings-1d", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_x_1d}", names="x-1d.npy"),
    C("add-embeddings-3d", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_x_3d}", names="x-3d.npy"),
    C("add-embeddings-zero-dim", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_x_0dim}", names="dimension"),
    C("add-embeddings-strings", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_x_text}",
      names=("x-text.npy", "dtype")),
    C("add-labels-missing-file", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_x}", "--labels",
      "{npy_missing}", names="nothing.npy"),
    C("add-group-exists", "add", "{store}", "-g", "toy/train", "--embeddings", "{npy_x}", names="'toy/train'"),
    C("add-group-nests", "add", "{store}", "-g", "toy", "--embeddings", "{npy_x}", names="'toy'"),
    C("add-group-nests-below", "add", "{store}", "-g", "toy/train/more", "--embeddings", "{npy_x}",
      names="'toy/train/more'"),
    C("add-group-empty-name", "add", "{store}", "-g", "", "--embeddings", "{npy_x}", names="''"),
    C("add-group-dotdot", "add", "{store}", "-g", "../x", "--embeddings", "{npy_x}", names="'../x'"),
    C("add-group-double-slash", "add", "{store}", "-g", "a//b", "--embeddings", "{npy_x}", names="'a//b'"),
    C("add-store-under-a-file", "add", "{afile}/new.h5", "-g", "m/x", "--embeddings", "{npy_x}", names="afile.txt"),
    # ---- neighbors
    C("neighbors-wrong-group", "neighbors", "{store}", "-g", "toy/tset", "-k", "2", names="'toy/tset'"),
    C("neighbors-wrong-query-group", "neighbors", "{store}", "-g", "toy/train", "--query-group", "toy/nope",
      names="'toy/nope'"),
    C("neighbors-dimension-mismatch", "neighbors", "{store}", "-g", "toy/train", "--query-group", "toy/q5", "-k", "2",
      names="'toy/q5'"),
    C("neighbors-k-zero", "neighbors", "{store}", "-g", "toy/train", "-k", "0", names="k=0"),
    C("neighbors-k-negative", "neighbors", "{store}", "-g", "toy/train", "-k", "-3", names="k=-3"),
    C("neighbors-k-larger-than-group", "neighbors", "{store}", "-g", "toy/train", "-k", "40", names="k=40"),
    C("neighbors-k-larger-than-group-farthest", "neighbors", "{store}", "-g", "toy/train", "-k", "45", "--farthest",
      names="k=45"),
    C("neighbors-k-larger-than-other-group", "neighbors", "{store}", "-g", "toy/ood", "--query-group", "toy/train",
      "-k", "11", names="k=11"),
    C("neighbors-k-larger-than-group-hnsw", "neighbors", "{store}", "-g", "toy/train", "-k", "40", "--index", "hnsw",
      names="k=40"),
    C("neighbors-empty-group", "neighbors", "{store}", "-g", "toy/empty", "-k", "1", names="'toy/empty'"),
    C("neighbors-ids-not-numbers", "neighbors", "{store}", "-g", "toy/train", "--ids", "1,x", names="'1,x'"),
    C("neighbors-ids-absent", "neighbors", "{store}", "-g", "toy/train", "--ids", "3,999", names="999"),
    C("neighbors-unknown-metric", "neighbors", "{store}", "-g", "toy/train", "--metric", "hamming", names="'hamming'"),
    C("neighbors-unknown-index", "neighbors", "{store}", "-g", "toy/train", "--index", "lsh", names="'lsh'"),
    C("neighbors-farthest-approximate", "neighbors", "{store}", "-g", "toy/train", "--farthest", "--index", "hnsw",
      names="'hnsw'"),
    C("neighbors-out-under-a-file", "neighbors", "{store}", "-g", "toy/train", "-k", "1", "--out", "{afile}/n.json",
      names="afile.txt"),
    C("neighbors-out-unknown-format", "neighbors", "{store}", "-g", "toy/train", "-k", "1", "--out", "{root}/out/n.txt",
      names="n.txt"),
    C("neighbors-out-in-proc", "neighbors", "{store}", "-g", "toy/train", "-k", "1", "--out", "/proc/n.json",
      names="n.json"),
    # ---- pairs
    C("pairs-wrong-group", "pairs", "{store}", "-g", "toy/nope", "--out", "{root}/out/p.h5", names="'toy/nope'"),
    C("pairs-k-zero", "pairs", "{store}", "-g", "toy/train", "-k", "0", "--out", "{root}/out/p.h5", names="k=0"),
    C("pairs-k-larger-than-group", "pairs", "{store}", "-g", "toy/train", "-k", "40", "--out", "{root}/out/p.h5",
      names="k=40"),
    C("pairs-empty-group", "pairs", "{store}", "-g", "toy/empty", "-k", "1", "--out", "{root}/out/p.h5",
      names="'toy/empty'"),
    C("pairs-out-under-a-file", "pairs", "{store}", "-g", "toy/train", "--out", "{afile}/p.h5", names="afile.txt"),
    C("pairs-out-in-proc", "pairs", "{store}", "-g", "toy/train", "--out", "/proc/p.h5", names="p.h5"),
    C("pairs-out-is-the-store", "pairs", "{store}", "-g", "toy/train", "--out", "{store}", names="store.h5"),
    # ---- probe
    C("probe-wrong-train-group", "probe", "{store}", "--train", "toy/nope", "--test", "toy/test", names="'toy/nope'"),
    C("probe-wrong-test-group", "probe", "{store}", "--train", "toy/train", "--test", "toy/nope", names="'toy/nope'"),
    C("probe-dimension-mismatch", "probe", "{store}", "--train", "toy/train", "--test", "toy/q5", names="D=5"),
    C("probe-empty-train-group", "probe", "{store}", "--train", "toy/empty", "--test", "toy/test",
      names=("toy/empty", "train")),
    C("probe-unlabelled-train-group", "probe", "{store}", "--train", "toy/nolabels", "--test", "toy/test",
      names=("toy/nolabels", "train")),
    C("probe-knn-k-zero", "probe", "{store}", "--train", "toy/train", "--test", "toy/test", "--knn-k", "0",
      names="k=0"),
    # ---- retrieve
    C("retrieve-wrong-group", "retrieve", "{store}", "-g", "toy/nope", "--out", "{root}/out", names="'toy/nope'"),
    C("retrieve-k-zero", "retrieve", "{store}", "-g", "toy/train", "-k", "0", "--out", "{root}/out", names="k=0"),
    C("retrieve-k-larger-than-group", "retrieve", "{store}", "-g", "toy/train", "-k", "40", "--out", "{root}/out",
      names="k=40"),
    C("retrieve-per-class-zero", "retrieve", "{store}", "-g", "toy/train", "--per-class", "0", "--out", "{root}/out",
      names="per_class=0"),
    C("retrieve-empty-group", "retrieve", "{store}", "-g", "toy/empty", "-k", "1", "--out", "{root}/out",
      names="toy/empty"),
    C("retrieve-images-unknown-dataset", "retrieve", "{store}", "-g", "toy/train", "-k", "2", "--out", "{root}/out",
      names="'toy'"),
    # ---- anomaly
    C("anomaly-wrong-reference", "anomaly", "{store}", "--reference", "toy/nope", "--normal", "toy/test", "--ood",
      "toy/ood", "--out", "{root}/out", names="'toy/nope'"),
    C("anomaly-wrong-normal", "anomaly", "{store}", "--reference", "toy/train", "--normal", "toy/nope", "--ood",
      "toy/ood", "--out", "{root}/out", names="'toy/nope'"),
    C("anomaly-unknown-ood-no-checkpoint", "anomaly", "{store}", "--reference", "toy/train", "--normal", "toy/test",
      "--ood", "nope", "--out", "{root}/out", names="'nope/test'"),
    C("anomaly-ood-checkpoint-truncated", "anomaly", "{ckstore_truncated}", "--reference", "toy/train", "--normal",
      "toy/test", "--ood", "tiny", "--out", "{root}/out", names="truncated.pt"),
    C("anomaly-ood-checkpoint-gone", "anomaly", "{ckstore_missing}", "--reference", "toy/train", "--normal",
      "toy/test", "--ood", "tiny", "--out", "{root}/out", names="nothing.pt"),
    C("anomaly-dimension-mismatch", "anomaly", "{store}", "--reference", "toy/train", "--normal", "toy/test", "--ood",
      "toy/q5", "--out", "{root}/out", names=("toy/q5", "D=4")),
    C("anomaly-k-zero", "anomaly", "{store}", "--reference", "toy/train", "--normal", "toy/test", "--ood", "toy/ood",
      "-k", "0", "--out", "{root}/out", names="k=0"),
    C("anomaly-k-larger-than-reference", "anomaly", "{store}", "--reference", "toy/train", "--normal", "toy/test",
      "--ood", "toy/ood", "-k", "41", "--out", "{root}/out", names="k=41"),
    C("anomaly-empty-reference", "anomaly", "{store}", "--reference", "toy/empty", "--normal", "toy/test", "--ood",
      "toy/ood", "--out", "{root}/out", names="toy/empty"),
    C("anomaly-empty-ood", "anomaly", "{store}", "--reference", "toy/train", "--normal", "toy/test", "--ood",
      "toy/empty", "--out", "{root}/out", names=("toy/empty", "0 OOD")),
    C("anomaly-out-under-a-file", "anomaly", "{store}", "--reference", "toy/train", "--normal", "toy/test", "--ood",
      "toy/ood", "--out", "{afile}/figs", names="afile.txt"),
    # ---- cluster
    C("cluster-wrong-group", "cluster", "{store}", "-g", "toy/nope", "--out", "{root}/out", names="'toy/nope'"),
    C("cluster-k-zero", "cluster", "{store}", "-g", "toy/train", "-k", "0", "--map", "pca", "--out", "{root}/out",
      names="k=0"),
    C("cluster-k-one", "cluster", "{store}", "-g", "toy/train", "-k", "1", "--map", "pca", "--out", "{root}/out",
      names="k=1"),
    C("cluster-k-as-large-as-group", "cluster", "{store}", "-g", "toy/train", "-k", "40", "--map", "pca", "--out",
      "{root}/out", names="k=40"),
    C("cluster-empty-group", "cluster", "{store}", "-g", "toy/empty", "-k", "2", "--map", "pca", "--out", "{root}/out",
      names="toy/empty"),
    C("cluster-unknown-map", "cluster", "{store}", "-g", "toy/train", "-k", "3", "--map", "umap", "--out",
      "{root}/out", names="'umap'"),
    C("cluster-out-under-a-file", "cluster", "{store}", "-g", "toy/train", "-k", "3", "--map", "pca", "--out",
      "{afile}/figs", names="afile.txt"),
    # ---- plot map
    C("plot-map-wrong-group", "plot", "map", "{store}", "-g", "toy/nope", "--out", "{root}/out", names="'toy/nope'"),
    C("plot-map-unknown-method", "plot", "map", "{store}", "-g", "toy/train", "--method", "umap", "--out",
      "{root}/out", names="'umap'"),
    C("plot-map-empty-group", "plot", "map", "{store}", "-g", "toy/empty", "--out", "{root}/out", names="toy/empty"),
    C("plot-map-out-under-a-file", "plot", "map", "{store}", "-g", "toy/train", "--out", "{afile}/figs",
      names="afile.txt"),
    # ---- encode: checkpoints, datasets, outputs
    *[C(f"encode-checkpoint-{bad}", "encode", "{ckpt_" + _key(bad) + "}", "--dataset", "{imgs}", "--split", "test",
        "--out", "{root}/out/s.h5", "--device", "cpu", names=f"{bad if bad != 'missing' else 'nothing'}.pt")
      for bad in ("missing", "empty", "truncated", "corrupt", "text", "foreign", "other-kind", "mismatched-weights",
                  "folder")],
    C("encode-unknown-dataset", "encode", "{ckpt}", "--dataset", "cifar100", "--out", "{root}/out/s.h5",
      "--device", "cpu", names="'cifar100'"),
    C("encode-missing-dataset-folder", "encode", "{ckpt}", "--dataset", "{root}/no/such/folder", "--out",
      "{root}/out/s.h5", "--device", "cpu", names="no/such/folder"),
    C("encode-unknown-split", "encode", "{ckpt}", "--dataset", "{imgs}", "--split", "val", "--out", "{root}/out/s.h5",
      "--device", "cpu", names="'val'"),
    C("encode-known-dataset-absent", "encode", "{ckpt}", "--dataset", "mnist", "--split", "test", "--data-root",
      "{data_empty}", "--out", "{root}/out/s.h5", "--device", "cpu", names="data-empty"),
    C("encode-corrupt-idx", "encode", "{ckpt}", "--dataset", "mnist", "--split", "test", "--data-root",
      "{data_badidx}", "--out", "{root}/out/s.h5", "--device", "cpu", names="t10k-images-idx3-ubyte.gz"),
    C("encode-corrupt-tar", "encode", "{ckpt}", "--dataset", "{data_badtar_file}", "--split", "test", "--out",
      "{root}/out/s.h5", "--device", "cpu", names="cifar10-jpeg.tar.gz"),
    C("encode-group-exists", "encode", "{ckpt}", "--dataset", "{imgs}", "--split", "test", "--out",
      "{imgs_store}", "--device", "cpu", names="imgs-store.h5"),
    C("encode-out-under-a-file", "encode", "{ckpt}", "--dataset", "{imgs}", "--split", "test", "--out",
      "{afile}/s.h5", "--device", "cpu", names="afile.txt"),
    C("encode-no-checkpoint-in-workspace", "encode", "--dataset", "{imgs}", "--workspace", "{root}/no-ws",
      names="no-ws"),
    # ---- train
    C("train-unknown-dataset", "train", "--dataset", "cifar100", "--run-dir", "{root}/out/run", "--device", "cpu",
      names="'cifar100'"),
    C("train-known-dataset-absent", "train", "--dataset", "cifar10", "--data-root", "{data_empty}", "--run-dir",
      "{root}/out/run", "--device", "cpu", names="data-empty"),
    C("train-corrupt-archive", "train", "--dataset", "{data_badtar_file}", "--run-dir", "{root}/out/run", "--device",
      "cpu", names="cifar10-jpeg.tar.gz"),
    C("train-epochs-zero", "train", "--dataset", "{imgs}", "--epochs", "0", "--run-dir", "{root}/out/run",
      names="epochs 0"),
    C("train-batch-size-one", "train", "--dataset", "{imgs}", "--batch-size", "1", "--run-dir", "{root}/out/run",
      names="batch size 1"),
    C("train-unknown-encoder", "train", "--dataset", "{imgs}", "--encoder", "vit", "--run-dir", "{root}/out/run",
      names="'vit'"),
    C("train-run-dir-under-a-file", "train", "--dataset", "{imgs}", "--epochs", "1", "--batch-size", "4", "--run-dir",
      "{afile}/run", "--device", "cpu", names="afile.txt"),
    C("train-resume-no-run", "train", "--resume", "--run-dir", "{root}/no-run", names="no-run"),
    C("train-resume-other-encoder", "train", "--resume", "--encoder", "resnet18", "--run-dir", "{run}",
      names="--encoder"),
    *[C(f"train-resume-checkpoint-{bad}", "train", "--resume", "--device", "cpu",
        "--run-dir", "{run_" + _key(bad) + "}", names="last.pt")
      for bad in ("empty", "truncated", "corrupt", "text", "foreign", "other-kind", "folder")],
    C("train-positives-missing", "train", "--dataset", "{imgs}", "--positives", "{root}/nothing.h5", "--run-dir",
      "{root}/out/run", "--device", "cpu", names="nothing.h5"),
    C("train-positives-not-hdf5", "train", "--dataset", "{imgs}", "--positives", "{store_not_hdf5}", "--run-dir",
      "{root}/out/run", "--device", "cpu", names="notes.h5"),
    C("train-positives-a-store", "train", "--dataset", "{imgs}", "--positives", "{store}", "--run-dir",
      "{root}/out/run", "--device", "cpu", names="store.h5"),
    C("train-positives-of-another-split", "train", "--dataset", "{imgs}", "--positives", "{pairs_toy}", "--run-dir",
      "{root}/out/run", "--device", "cpu", names="pairs-toy.h5"),
    C("train-source-store-without-latent", "train", "--source-store", "{cifar_store}", names="--source-store"),
    C("train-latent-store-without-its-groups", "train", "--latent", "--source-store", "{store}", "--out",
      "{root}/out/l.h5", names="'cifar10/train'"),
    C("train-latent-corrupt-store", "train", "--latent", "--source-store", "{store_truncated}", "--out",
      "{root}/out/l.h5", names="truncated.h5"),
    C("train-latent-out-is-the-source", "train", "--latent", "--source-store", "{cifar_store}", "--out",
      "{cifar_store}", names="cifar-store.h5"),
    C("train-latent-k-zero", "train", "--latent", "--source-store", "{cifar_store}", "--k", "0", "--out",
      "{root}/out/l.h5", names="k"),
    C("train-latent-k-too-large", "train", "--latent", "--source-store", "{cifar_store}", "--k", "60", "--out",
      "{root}/out/l.h5", names="k"),
    C("train-latent-out-under-a-file", "train", "--latent", "--source-store", "{cifar_store}", "--epochs", "1",
      "--out", "{afile}/l.h5", "--device", "cpu", names="afile.txt"),
    # ---- plot losses
    C("plot-losses-no-run", "plot", "losses", "{root}/no-run", names="no-run"),
    C("plot-losses-no-log", "plot", "losses", "{log_none}", names="log.jsonl"),
    C("plot-losses-log-not-json", "plot", "losses", "{log_not_json}", names="log.jsonl"),
    C("plot-losses-log-without-terms", "plot", "losses", "{log_no_terms}", names="log.jsonl"),
    C("plot-losses-log-not-records", "plot", "losses", "{log_not_a_record}", names="log.jsonl"),
    C("plot-losses-out-under-a-file", "plot", "losses", "{run}", "--out", "{afile}/losses.png", names="afile.txt"),
    C("plot-losses-empty-workspace", "plot", "losses", "--workspace", "{root}/no-ws", names="no-ws"),
    # ---- baseline laplacian
    C("laplacian-unknown-dataset", "baseline", "laplacian", "--dataset", "cifar100", "--out", "{root}/out/l.h5",
      names="'cifar100'"),
    C("laplacian-dim-zero", "baseline", "laplacian", "--dataset", "{imgs}", "--dim", "0", "--k", "3", "--pca-dim",
      "0", "--out", "{root}/out/l.h5", names="dim"),
    C("laplacian-k-zero", "baseline", "laplacian", "--dataset", "{imgs}", "--dim", "2", "--k", "0", "--pca-dim", "0",
      "--out", "{root}/out/l.h5", names="k"),
    C("laplacian-k-larger-than-data", "baseline", "laplacian", "--dataset", "{imgs}", "--dim", "2", "--k", "50",
      "--pca-dim", "0", "--out", "{root}/out/l.h5", names="k"),
    C("laplacian-groups-exist", "baseline", "laplacian", "--dataset", "{imgs}", "--dim", "2", "--k", "3", "--pca-dim",
      "0", "--out", "{imgs_store}", names="imgs-store.h5"),
    C("laplacian-out-under-a-file", "baseline", "laplacian", "--dataset", "{imgs}", "--dim", "2", "--k", "3",
      "--pca-dim", "0", "--out", "{afile}/l.h5", names="afile.txt"),
    # ---- compare and study
    C("compare-store-without-its-groups", "compare", "{store}", "--device", "cpu", names="'cifar10/train'"),
    C("compare-k-cluster-zero", "compare", "{cifar_store}", "--k-cluster", "0", "--device", "cpu", names="k=0"),
    C("compare-k-cluster-too-large", "compare", "{cifar_store}", "--k-cluster", "20", "--device", "cpu",
      names="k=20"),
    C("study-unknown-preset", "study", "--preset", "bogus", "--workspace", "{root}/out/ws", names="'bogus'"),
    C("study-no-data", "study", "--smoke", "--workspace", "{root}/out/ws", "--data-root", "{data_empty}", "--device",
      "cpu", names="cifar10"),
    # ---- data
    C("data-root-is-a-file", "data", "--data-root", "{afile}", names="afile.txt"),
    C("data-prepare-corrupt-archive", "data", "--data-root", "{data_badtar}", "--prepare",
      names="cifar10-jpeg.tar.gz"),
]

# Issue 14's trust cases, one module per area: wrong answers, data sources, writes, failures reported as success.
TRUST_CASES = (reliability_trust_search.CASES + reliability_trust_data.CASES + reliability_trust_writes.CASES
               + reliability_trust_failures.CASES)
CASES = _store_cases() + VALUE_CASES + TRUST_CASES


READ_ONLY_CASES = [
    C("add-store-in-read-only-folder", "add", "{root}/read-only/s.h5", "-g", "m/x", "--embeddings", "{npy_x}",
      names="read-only"),
    C("pairs-out-in-read-only-folder", "pairs", "{store}", "-g", "toy/train", "--out", "{root}/read-only/p.h5",
      names="read-only"),
    C("neighbors-out-in-read-only-folder", "neighbors", "{store}", "-g", "toy/train", "-k", "1", "--out",
      "{root}/read-only/n.json", names="read-only"),
    C("encode-out-in-read-only-folder", "encode", "{ckpt}", "--dataset", "{imgs}", "--split", "test", "--out",
      "{root}/read-only/s.h5", "--device", "cpu", names="read-only"),
    C("plot-losses-out-in-read-only-folder", "plot", "losses", "{run}", "--out", "{root}/read-only/l.png",
      names="read-only"),
    C("cluster-out-in-read-only-folder", "cluster", "{store}", "-g", "toy/train", "-k", "3", "--map", "pca", "--out",
      "{root}/read-only", names="read-only"),
]
