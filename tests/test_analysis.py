"""Error analysis on real predictions: a small BERT fine-tuned briefly on real SNLI train pairs,
scored on real dev pairs; metrics checked against hand computation and scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.calibration import calibration_curve
from sklearn.metrics import f1_score

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import LABEL_NAMES, SampleWarning, read_records
from bertnli_helpers.model.bert import BERTClassifier, BertConfig
from bertnli_helpers.model.inference import predict
from bertnli_helpers.model.pretrained import load_pretrained
from bertnli_helpers.study import analysis
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.loop import fine_tune

from conftest import TINY

DEV_MAX_LEN = 24  # short enough that about half of the dev pairs are truncated


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: more threads only add contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def train_split(snli_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)  # the shared train file is a 1% sample
        return read_records(snli_dir, "train")


@pytest.fixture(scope="module")
def dev_split(snli_dir):
    return read_records(snli_dir, "dev")


@pytest.fixture(scope="module")
def trained(train_split):
    """A tiny scratch BERT, fine-tuned for a few seconds: weak, but not a constant predictor."""
    bert, tokenizer = load_pretrained("scratch", config=BertConfig(**TINY))
    net = BERTClassifier(bert)
    train = SNLIBERTDataset(train_split.sample(600, 0), tokenizer, max_len=64, cache=False)
    fine_tune(net, train, None, TrainConfig(epochs=5, batch_size=32, lr=5e-3, device="cpu"))
    return net, tokenizer


@pytest.fixture(scope="module")
def dev_pairs(dev_split):
    return dev_split.sample(300, 0)


@pytest.fixture(scope="module")
def dev_data(trained, dev_pairs):
    return SNLIBERTDataset(dev_pairs, trained[1], max_len=DEV_MAX_LEN, cache=False)


@pytest.fixture(scope="module")
def probs(trained, dev_data):
    return predict(trained[0], dev_data)


@pytest.fixture(scope="module")
def frame(trained, dev_data, dev_pairs):
    return analysis.predictions_frame(trained[0], dev_data, records=dev_pairs)


# -- the table ----------------------------------------------------------------------------------
def test_frame_has_one_row_per_pair_in_dataset_order(frame, dev_data, dev_pairs, probs, trained):
    n = len(dev_pairs)
    assert len(frame) == n
    assert frame["pair_id"].tolist() == [r.pair_id for r in dev_pairs.records]
    assert frame["premise"].tolist() == [r.premise for r in dev_pairs.records]  # WordPiece: raw
    assert frame["hypothesis"].tolist() == [r.hypothesis for r in dev_pairs.records]
    assert frame["gold"].tolist() == [r.label for r in dev_pairs.records]
    assert frame["gold_name"].tolist() == [r.label_name for r in dev_pairs.records]
    np.testing.assert_allclose(frame[list(analysis.PROB_COLUMNS)].to_numpy(), probs, atol=1e-6)
    np.testing.assert_allclose(frame[list(analysis.PROB_COLUMNS)].sum(axis=1), 1.0, atol=1e-5)
    assert (frame["predicted"] == probs.argmax(1)).all()
    assert frame["predicted_name"].tolist() == [LABEL_NAMES[k] for k in probs.argmax(1)]
    np.testing.assert_allclose(frame["confidence"], probs.max(1), atol=1e-6)
    assert (frame["correct"] == (frame["predicted"] == frame["gold"])).all()


def test_frame_lengths_and_truncation_match_the_dataset(frame, dev_data, trained):
    tokenizer = trained[1]
    assert frame["premise_len"].tolist() == [len(tokenizer.tokenize(p)) for p in frame.premise]
    hyp_lens = [len(tokenizer.tokenize(h)) for h in frame.hypothesis]
    assert frame["hypothesis_len"].tolist() == hyp_lens
    assert (frame["packed_len"] == dev_data.lengths).all()
    assert frame["packed_len"].max() <= DEV_MAX_LEN
    full = frame["premise_len"] + frame["hypothesis_len"] + 3
    assert (frame["truncated"] == (full > DEV_MAX_LEN)).all()
    assert 0 < frame["truncated"].sum() < len(frame)  # both slices are populated


def test_frame_agreement_is_the_share_of_annotators_on_gold(frame, dev_pairs):
    for row, record in zip(frame.itertuples(), dev_pairs.records[:20]):
        votes = record.annotator_labels
        assert row.agreement == pytest.approx(votes.count(record.label_name) / len(votes))
    assert frame["agreement"].between(0, 1).all()


def test_precomputed_probs_skip_the_model(frame, dev_data, probs):
    without_model = analysis.predictions_frame(None, dev_data, probs=probs)
    expected = frame.drop(columns=["pair_id", "agreement"])
    pd.testing.assert_frame_equal(without_model, expected, check_exact=False, atol=1e-6)


def test_frame_refuses_mismatched_inputs(dev_data, dev_pairs, probs, dev_split):
    with pytest.raises(ValueError, match="shape"):
        analysis.predictions_frame(None, dev_data, probs=probs[:-1])
    with pytest.raises(ValueError, match="model"):
        analysis.predictions_frame(None, dev_data)
    with pytest.raises(ValueError, match="records"):
        analysis.predictions_frame(None, dev_data, probs=probs, records=dev_pairs.records[:10])
    other = dev_split.sample(300, 1)
    with pytest.raises(ValueError, match="labels differ"):
        analysis.predictions_frame(None, dev_data, probs=probs, records=other)


def test_fixture_model_is_not_a_constant_predictor(frame):
    # Otherwise the confusion matrix and slice tests below would check little.
    assert frame["predicted"].nunique() >= 2
    assert frame["confidence"].std() > 0.01


# -- metrics ------------------------------------------------------------------------------------
def test_confusion_matrix_counts_and_row_shares(frame):
    counts = analysis.confusion(frame)
    assert list(counts.index) == list(LABEL_NAMES) == list(counts.columns)
    assert counts.to_numpy().sum() == len(frame)
    for g, gold in enumerate(LABEL_NAMES):
        for p, pred in enumerate(LABEL_NAMES):
            assert counts.loc[gold, pred] == ((frame.gold == g) & (frame.predicted == p)).sum()
    shares = analysis.confusion(frame, normalize=True)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    np.testing.assert_allclose(shares, counts.div(counts.sum(axis=1), axis=0))


def test_accuracy_is_trace_over_n(frame):
    counts = analysis.confusion(frame).to_numpy()
    acc = analysis.accuracy(frame)
    assert acc == pytest.approx(np.trace(counts) / len(frame))
    assert acc == pytest.approx(frame["correct"].mean())


def test_per_class_metrics_match_hand_and_sklearn(frame):
    table = analysis.per_class_metrics(frame)
    counts = analysis.confusion(frame).to_numpy()
    assert list(table.index) == list(LABEL_NAMES)
    for c, name in enumerate(LABEL_NAMES):
        predicted_c = counts[:, c].sum()
        precision = counts[c, c] / predicted_c if predicted_c else 0.0
        recall = counts[c, c] / counts[c].sum()
        assert table.loc[name, "precision"] == pytest.approx(precision)
        assert table.loc[name, "recall"] == pytest.approx(recall)
        assert table.loc[name, "support"] == counts[c].sum()
    f1 = f1_score(frame.gold, frame.predicted, average=None, labels=[0, 1, 2], zero_division=0)
    np.testing.assert_allclose(table["f1"], f1)
    summary = analysis.summary(frame)
    assert summary["n"] == len(frame)
    assert summary["macro_f1"] == pytest.approx(
        f1_score(frame.gold, frame.predicted, average="macro", zero_division=0)
    )


# -- calibration --------------------------------------------------------------------------------
def test_ece_on_a_hand_computed_example():
    confidence = [0.95, 0.85, 0.65, 0.62, 0.35]
    correct = [True, False, True, False, True]
    # bins (0.9,1]: |1-.95|; (0.8,.9]: |0-.85|; (0.6,.7]: 2 * |.5-.635|; (0.3,.4]: |1-.35|
    expected = (0.05 + 0.85 + 2 * 0.135 + 0.65) / 5
    assert analysis.expected_calibration_error(confidence, correct) == pytest.approx(expected)
    curve = analysis.reliability_curve(confidence, correct)
    assert len(curve) == 10 and curve["count"].sum() == 5
    assert curve.loc[6, "mean_confidence"] == pytest.approx(0.635)
    assert curve.loc[6, "accuracy"] == 0.5 and curve.loc[6, "count"] == 2
    assert curve["count"].tolist() == [0, 0, 0, 1, 0, 0, 2, 0, 1, 1]
    assert np.isnan(curve.loc[0, "accuracy"])


def test_calibration_bins_are_right_closed_and_calibrated_means_zero():
    curve = analysis.reliability_curve([0.5, 1.0, 0.0], [True, True, False])
    assert curve["count"].tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 0, 1]  # 0.5 in (0.4, 0.5]
    assert analysis.expected_calibration_error([0.75] * 4, [1, 1, 1, 0]) == pytest.approx(0.0)
    # one bin: the gap between mean accuracy and mean confidence
    assert analysis.expected_calibration_error([0.9, 0.5], [1, 0], n_bins=1) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        analysis.reliability_curve([1.2], [True])


def test_reliability_curve_agrees_with_sklearn_on_real_predictions(frame):
    curve = analysis.reliability_curve(frame.confidence, frame.correct, n_bins=10)
    assert curve["count"].sum() == len(frame)
    filled = curve[curve["count"] > 0]
    prob_true, prob_pred = calibration_curve(frame.correct, frame.confidence, n_bins=10)
    np.testing.assert_allclose(filled["accuracy"], prob_true)
    np.testing.assert_allclose(filled["mean_confidence"], prob_pred)
    assert (curve["count"][curve["upper"] <= 0.3] == 0).all()  # top probability >= 1/3
    by_hand = sum(
        row.count * abs(row.accuracy - row.mean_confidence) for row in filled.itertuples()
    ) / len(frame)
    assert analysis.expected_calibration_error(frame.confidence, frame.correct) == pytest.approx(
        by_hand
    )



def test_confidence_gap_states_a_direction_only_beyond_the_noise():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.4, 1.0, 2000)
    calibrated = rng.uniform(size=2000) < confidence  # right as often as it says
    noise = analysis.confidence_gap(confidence, calibrated)
    assert noise.verdict == "within noise" and noise.low < 0 < noise.high
    assert noise.gap == pytest.approx(confidence.mean() - calibrated.mean())
    assert "within noise" in noise.sentence() and "under-confident**" not in noise.sentence()
    sure = analysis.confidence_gap(np.full(2000, 0.9), rng.uniform(size=2000) < 0.6)
    assert sure.verdict == "over-confident" and sure.low > 0 and "over-confident" in sure.sentence()
    shy = analysis.confidence_gap(np.full(2000, 0.5), rng.uniform(size=2000) < 0.8)
    assert shy.verdict == "under-confident" and shy.high < 0 and shy.n_pairs == 2000
    with pytest.raises(ValueError):
        analysis.confidence_gap([0.5, 0.6], [True])

# -- slices -------------------------------------------------------------------------------------
def test_bucket_labels_and_membership():
    buckets = analysis.bucket([0, 5, 10, 11, 20, 21, 22], [0, 10, 20, 21])
    assert list(buckets.categories) == ["0–10", "11–20", "21"]
    assert buckets.astype(object).tolist()[:6] == ["0–10", "0–10", "0–10", "11–20", "11–20", "21"]
    assert pd.isna(buckets[6])  # outside the edges
    floats = analysis.bucket([0.0, 0.25, 0.3, 1.0], (0.0, 0.25, 0.5, 0.75, 1.0))
    assert floats.codes.tolist() == [0, 0, 1, 3]
    assert analysis.quantile_edges([1, 2, 3, 4, 5, 6, 7, 8], 4).tolist() == [1, 2, 4, 6, 8]


def test_slices_cover_every_pair_and_match_pandas(frame):
    table = analysis.all_slices(frame)
    assert set(table["slice"]) == set(analysis.SLICES.values())
    for _, group in table.groupby("slice"):
        assert group["count"].sum() == len(frame)
    negation = table[table["slice"] == "negation in hypothesis"].set_index("bucket")
    for flag, name in ((True, "yes"), (False, "no")):
        subset = frame[frame["negation"] == flag]
        assert negation.loc[name, "count"] == len(subset)
        if len(subset):
            assert negation.loc[name, "accuracy"] == pytest.approx(subset["correct"].mean())
    assert negation.index.tolist() == ["no", "yes"]
    none_negated = analysis.all_slices(frame[~frame.negation])
    row = none_negated[none_negated["slice"] == "negation in hypothesis"].iloc[1]
    assert row["bucket"] == "yes" and row["count"] == 0 and np.isnan(row["accuracy"])
    truncated = table[table["slice"] == "truncated"].set_index("bucket")
    assert truncated.loc["yes", "accuracy"] == pytest.approx(frame[frame.truncated].correct.mean())
    assert truncated.loc["no", "count"] == (~frame.truncated).sum()


def test_fixed_length_edges_match_a_direct_pandas_computation(frame):
    spec = analysis.SliceSpec(length_edges=(0, 16, 20, DEV_MAX_LEN))
    sliced = analysis.add_slices(frame, spec)
    table = analysis.slice_accuracy(sliced, "length_bucket")
    assert list(table.index) == ["0–16", "17–20", "21–24"]
    for (lo, hi), (label, row) in zip([(0, 16), (16, 20), (20, 24)], table.iterrows()):
        chosen = frame[(frame.packed_len > lo) & (frame.packed_len <= hi)]
        assert row["count"] == len(chosen), label
        if len(chosen):
            assert row["accuracy"] == pytest.approx(chosen.correct.mean())
    overlap = analysis.slice_accuracy(sliced, "overlap_bucket")
    assert overlap["count"].sum() == len(frame)
    first = frame[frame.overlap <= 0.25]
    assert overlap["count"].iloc[0] == len(first)
    assert overlap["accuracy"].iloc[0] == pytest.approx(first.correct.mean())


def test_default_length_buckets_are_quantiles(frame):
    sliced = analysis.add_slices(frame)
    counts = analysis.slice_accuracy(sliced, "length_bucket")["count"]
    assert counts.sum() == len(frame)
    assert sliced["length_bucket"].notna().all()


# -- word features on hand-picked real pairs ------------------------------------------------------
def _record(split, pair_id):
    return next(r for r in split.records if r.pair_id == pair_id)


def test_overlap_and_negation_on_real_pairs(dev_split):
    r = _record(dev_split, "4705552913.jpg#2r1e")  # "Two woman are holding packages."
    # two, are, holding, packages are in the premise; 'woman' is not ('women' is)
    assert analysis.words(r.hypothesis) == ["two", "woman", "are", "holding", "packages"]
    assert analysis.word_overlap(r.premise, r.hypothesis) == pytest.approx(4 / 5)
    assert analysis.negation_words(r.hypothesis) == []

    r = _record(dev_split, "4784866019.jpg#0r1c")  # "Nobody has a shirt on"
    assert analysis.negation_words(r.hypothesis) == ["nobody"]
    assert analysis.word_overlap(r.premise, r.hypothesis) == pytest.approx(1 / 5)  # only 'a'

    r = _record(dev_split, "4603716254.jpg#2r1n")  # "He doesn't want hair to land on his neck."
    assert analysis.negation_words(r.hypothesis) == ["doesn't"]
    assert analysis.negation_words(r.hypothesis_parse_text) == ["n't"]  # parse text: "does n't"
    assert analysis.words("Not... never, NO!") == ["not", "never", "no"]
    assert analysis.negation_words("The notebook is nowhere near the piano") == ["nowhere"]
    assert analysis.word_overlap("A dog.", "") == 0.0


def test_frame_features_are_the_functions(frame):
    assert frame["overlap"].tolist() == [
        analysis.word_overlap(p, h) for p, h in zip(frame.premise, frame.hypothesis)
    ]
    assert frame["negation"].tolist() == [bool(analysis.negation_words(h)) for h in
                                          frame.hypothesis]


# -- hypothesis-only baseline --------------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline(train_split):
    _, hypotheses, labels = train_split.triple("raw")
    return analysis.fit_hypothesis_baseline(hypotheses, labels)


def test_bag_of_words_baseline_beats_chance_on_real_dev(baseline, dev_split):
    _, hypotheses, labels = dev_split.triple("raw")
    acc = baseline.accuracy(hypotheses, labels)
    # Measured 0.561 with the 1% train sample (chance: 0.33): hypotheses alone give it away.
    assert acc > 0.50
    contradiction_words = set(baseline.top_words(10)["contradiction"])
    assert contradiction_words & {"no", "nobody", "sleeping"}  # Gururangan et al.'s artifacts


def test_hard_subset_is_where_the_baseline_is_wrong(baseline, frame):
    hard = baseline.hard_mask(frame.hypothesis, frame.gold)
    assert (hard == (baseline.predict(frame.hypothesis) != frame.gold.to_numpy())).all()
    assert hard.mean() == pytest.approx(1 - baseline.accuracy(frame.hypothesis, frame.gold))
    table = analysis.easy_hard_accuracy(frame, hard)
    assert list(table.index) == ["easy", "hard"]
    assert table["count"].tolist() == [(~hard).sum(), hard.sum()]
    assert table.loc["hard", "accuracy"] == pytest.approx(frame.correct[hard].mean())
    assert table.loc["easy", "accuracy"] == pytest.approx(frame.correct[~hard].mean())
    with pytest.raises(ValueError):
        analysis.easy_hard_accuracy(frame, hard[:-1])


def test_probabilities_of_the_baseline_feed_a_frame(baseline, dev_data):
    probs = baseline.predict_proba(dev_data.hypotheses)
    frame = analysis.predictions_frame(None, dev_data, probs=probs)
    assert (frame["predicted"] == baseline.predict(dev_data.hypotheses)).all()


def test_count_vectorizer_config_and_bad_config(train_split):
    _, hypotheses, labels = train_split.sample(500, 0).triple("raw")
    config = analysis.BaselineConfig(vectorizer="count", ngram_range=(1, 1), C=0.5)
    model = analysis.fit_hypothesis_baseline(hypotheses, labels, config)
    assert model.predict_proba(hypotheses[:4]).shape == (4, 3)
    with pytest.raises(ValueError, match="vectorizer"):
        analysis.fit_hypothesis_baseline(hypotheses, labels, analysis.BaselineConfig("bow"))


def test_hypothesis_only_dataset_empties_premises_and_trains(trained, train_split):
    tokenizer = trained[1]
    pairs = train_split.sample(64, 3)
    data = analysis.hypothesis_only_dataset(pairs, tokenizer, max_len=32, cache=False)
    assert data.premises == [""] * len(pairs)
    assert data.hypotheses == [r.hypothesis for r in pairs.records]
    assert data.encoded.labels.tolist() == [r.label for r in pairs.records]
    assert (data.encoded.premise_lens == 0).all()
    hyp = tokenizer.tokenize(pairs.records[0].hypothesis)[:32 - 3]
    assert data.tokens_of(0) == ["[CLS]", "[SEP]", *hyp, "[SEP]"]
    assert data.segments_of(0) == [0, 0] + [1] * (len(hyp) + 1)
    triple = pairs.triple("raw")
    again = analysis.hypothesis_only_dataset(triple, tokenizer, max_len=32, cache=False)
    assert np.array_equal(again.encoded.ids, data.encoded.ids)
    bert, _ = load_pretrained("scratch", config=BertConfig(**TINY), tokenizer=tokenizer)
    result = fine_tune(BERTClassifier(bert), data, data,
                       TrainConfig(epochs=1, batch_size=32, lr=1e-3, device="cpu"))
    assert result.steps == 2 and 0 <= result.best_dev_accuracy <= 1


# -- attention ----------------------------------------------------------------------------------
def test_attention_for_pair_rows_sum_to_one_and_tokens_match(trained, dev_data):
    net = trained[0]
    net.train()  # the mode must be restored, and dropout must not touch the maps
    tokens, maps = analysis.attention_for_pair(net, dev_data, 7)
    assert net.training
    assert tokens == dev_data.tokens_of(7)
    n = len(tokens)
    assert maps.shape == (TINY["num_layers"], TINY["num_heads"], n, n)
    assert (maps >= 0).all()
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    again = analysis.attention_for_pair(net, dev_data, 7)[1]
    np.testing.assert_array_equal(maps, again)  # eval mode: deterministic


def test_attention_of_a_pair_is_the_same_inside_a_padded_batch(trained, dev_data):
    net = trained[0].eval()
    lengths = dev_data.lengths
    short, long = int(np.argmin(lengths)), int(np.argmax(lengths))
    assert lengths[short] < lengths[long]
    (tokens, segments, valid), _ = dev_data.batch([short, long])
    batch_maps = net.encoder.attention_maps(tokens, segments, valid)[:, 0].numpy()
    n = int(lengths[short])
    single = analysis.attention_for_pair(net, dev_data, short)[1]
    np.testing.assert_allclose(batch_maps[..., :n, :n], single, atol=1e-5)
    assert np.allclose(batch_maps[..., :n, n:], 0.0)  # padding is never attended to
    with pytest.raises(IndexError):
        analysis.attention_for_pair(net, dev_data, len(dev_data))


def test_uniform_attention_crosses_by_the_sides_sizes_and_heads_are_measured_against_it(
        trained, dev_data):
    segments = np.array([0, 0, 0, 1, 1])
    assert analysis.uniform_cross_share(segments) == pytest.approx(2 * 3 * 2 / 25)
    uniform = np.full((2, 3, 5, 5), 1 / 5)
    np.testing.assert_allclose(analysis.cross_attention_share(uniform, segments),
                               analysis.uniform_cross_share(segments))
    within = np.zeros((1, 1, 5, 5))
    within[..., :3, :3], within[..., 3:, 3:] = 1 / 3, 1 / 2  # every query stays on its side
    assert analysis.cross_attention_share(within, segments)[0, 0] == 0.0
    with pytest.raises(ValueError, match="segments"):
        analysis.cross_attention_share(uniform, segments[:4])
    net = trained[0].eval()
    table = analysis.heads_against_uniform(net, dev_data, range(12))
    assert len(table) == TINY["num_layers"] * TINY["num_heads"] and (table["pairs"] == 12).all()
    assert (table["low"] <= table["excess"]).all() and (table["excess"] <= table["high"]).all()
    assert set(table["verdict"]) <= {"more than uniform", "less than uniform", "within noise"}
    _, maps = analysis.attention_for_pair(net, dev_data, 3)
    segments = np.asarray(dev_data.segments_of(3))
    first = table.loc[(0, 0)]
    one = analysis.heads_against_uniform(net, dev_data, [3])
    assert one.loc[(0, 0), "excess"] == pytest.approx(
        analysis.cross_attention_share(maps, segments)[0, 0]
        - analysis.uniform_cross_share(segments))
    assert (one["verdict"] == "within noise").all() and np.isfinite(first["excess"])
