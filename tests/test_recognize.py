"""The recognizer: one batched model call for many scans, statuses, confidence rules, real digits."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import draw_digits
from digitd.imageio import to_scan
from digitd.recognize import BUCKETS, Recognizer, model_name


def scan_of(text: str, **kw):
    return to_scan(draw_digits(text, **kw)) if text else to_scan(np.full((120, 90), 255, np.uint8))


@pytest.fixture(scope="module")
def small(small_model):
    return Recognizer(small_model)


def test_statuses_and_shapes(small):
    blank, one, three = small.read([scan_of(""), scan_of("4"), scan_of("307", height=120)])
    assert (blank.status, blank.number, blank.digits, blank.confidence) == ("blank", None, (), None)

    assert one.status in ("ok", "uncertain") and len(one.digits) == 1 and len(one.number) == 1
    d = one.digits[0]
    assert len(d.probabilities) == 10 and sum(d.probabilities) == pytest.approx(1.0, abs=1e-4)
    assert d.confidence == max(d.probabilities) and d.digit == int(np.argmax(d.probabilities))
    assert one.number == str(d.digit) and one.confidence == d.confidence
    assert d.pixels.shape == (28, 28)

    assert len(three.digits) == 3 and len(three.number) == 3
    xs = [dg.box[0] for dg in three.digits]
    assert xs == sorted(xs)
    assert three.number == "".join(str(dg.digit) for dg in three.digits)


@pytest.mark.parametrize("rule", ["min", "product"])
def test_number_confidence_rule_and_threshold(small_model, rule):
    scans = [scan_of("2024", height=100)]
    probe = Recognizer(small_model, number_confidence=rule).read(scans)[0]
    confs = [d.confidence for d in probe.digits]
    expected = min(confs) if rule == "min" else float(np.prod(confs))
    assert probe.confidence == pytest.approx(expected, rel=1e-6)
    # The threshold is inclusive: at the confidence itself ok, just above it uncertain.
    at = Recognizer(small_model, number_confidence=rule, confidence_threshold=probe.confidence).read(scans)[0]
    above = Recognizer(small_model, number_confidence=rule,
                       confidence_threshold=min(1.0, probe.confidence + 1e-6)).read(scans)[0]
    assert at.status == "ok"
    assert above.status == ("uncertain" if probe.confidence + 1e-6 <= 1.0 else "ok")
    assert above.number == probe.number  # uncertain still says what it read


def test_one_compiled_call_per_batch_and_same_answers(small):
    scans = [scan_of(str(i % 10), height=60 + (i % 5) * 10) for i in range(300)]
    calls = []
    real = small._call

    def counting(batch):
        calls.append(int(batch.shape[0]))
        return real(batch)

    small._call = counting
    try:
        together = small.read(scans)
    finally:
        small._call = real
    assert sum(len(r.digits) for r in together) == 300
    assert calls == [256, 64]  # 300 digits: one full batch, then 44 padded up to a bucket
    assert set(calls) <= set(BUCKETS)
    alone = [small.read([s])[0] for s in scans[:20]]
    for a, b in zip(alone, together[:20]):
        assert a.number == b.number
        np.testing.assert_allclose(a.digits[0].probabilities, b.digits[0].probabilities, rtol=1e-4, atol=1e-6)


def test_model_name_from_card_or_stem(tmp_path, small_model):
    assert model_name(small_model) == "tiny-test-mlp"
    assert model_name(tmp_path / "lonely.keras") == "lonely"


def test_shipped_model_reads_clear_digits_and_numbers(shipped_model):
    rec = Recognizer(shipped_model)
    texts = [str(d) for d in range(10)] + ["2024", "31", "907"]
    scans = [scan_of(t, height=200) for t in texts]
    scans += [to_scan(255 - draw_digits(t, height=200)) for t in ("5", "86")]  # light on dark
    readings = rec.read(scans)
    assert [r.number for r in readings] == texts + ["5", "86"]
    assert [r.polarity for r in readings[-2:]] == ["light_on_dark"] * 2
