from harness.reports import table3


def kernel_row(dataset, features, test_error, train_size=1000, options="{}", **changes):
    return {
        "run_id": f"{dataset}-{features}-{train_size}",
        "dataset": dataset,
        "features": features,
        "kernel": "gaussian",
        "train_size": train_size,
        "test_size": 500,
        "feature_options": options,
        "test_error": test_error,
        "rkhs_norm": 100.0,
        "bandwidth": 0.02,
        "dtype": "float64",
        "device": "cpu",
        "wall_seconds": 1.0,
        "status": "completed",
        "corruption": "none",
        "ridge": 0.0,
        **changes,
    }


def test_table3_pairs_runs_with_paper_rows_and_lists_missing(tmp_path):
    runs = [
        kernel_row("mnist", "none", 0.0125),
        kernel_row("cifar10", "random_conv", 0.30, options='{"num_filters": 4000}'),
        kernel_row("cifar10", "random_conv", 0.33, options='{"num_filters": 500}'),
        kernel_row("cifar10", "random_conv", 0.25, train_size=5000, options='{"num_filters": 500}'),
    ]
    lines, missing = table3.build(runs)
    assert missing == ["MNIST, Gabor wavelet transform", "CIFAR-10, Gaussian kernel on pixels"]
    mnist = lines[0]
    assert mnist["paper err %"] == 1.2 and mnist["paper norm"] == 220.0
    assert abs(mnist["Δ err"] - 0.05) < 1e-9
    conv = [line["feature options"] for line in lines[1:]]
    assert conv == [
        '{"num_filters": 500}',
        '{"num_filters": 500}',
        '{"num_filters": 4000}',
    ]  # largest n first, then filters
    paths = table3.write(lines, tmp_path)
    text = paths[0].read_text()
    assert "| MNIST, no preprocessing | gaussian | 1000 |" in text and "+0.05" in text


def test_table3_ignores_corrupted_and_ridge_runs(tmp_path):
    from harness.kernels import KERNEL_RUNS_SCHEMA
    from harness.results import write_table

    base = {name: None for name in KERNEL_RUNS_SCHEMA.names}
    rows = [
        {**base, **kernel_row("mnist", "none", 0.9, corruption="random_labels"), "run_id": "a"},
        {**base, **kernel_row("mnist", "none", 0.02, ridge=1.0), "run_id": "b"},
        {**base, **kernel_row("mnist", "none", 0.013), "run_id": "c"},
    ]
    for row in rows:
        write_table(tmp_path, "kernel_runs", row["run_id"], [row], KERNEL_RUNS_SCHEMA)
    lines, _ = table3.build(table3.load_kernel_runs(tmp_path))
    assert [round(line["test err %"], 3) for line in lines] == [1.3]
