import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernet.arch import Arch, ArchError, CNNStageConfig, parse_arch
from supernet.encoding import decode, encode
from supernet.sampling import archs, sample_uniform
from supernet.space import ELASTICVIT, TINY
from supernet.validation import check_arch, validate

MIN_OFFICIAL = [128, [16, 16, 16, 48, 80, 144, 160], [1, 2, 2, 1, 1, 1, 1], [1, 3, 3, 3, 3], [3, 3, 3, 3, 3],
                [2, 2, 2, 2], [3, 5, 9, 10], [1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 2, 2]]


def test_official_min_arch_loads_and_round_trips():
    arch = Arch.from_official(MIN_OFFICIAL, ELASTICVIT)
    assert arch.resolution == 128 and arch.widths == (16, 16, 16, 48, 80, 144, 160)
    assert arch.stages[0] == CNNStageConfig(16, 2, 3, 3)
    assert arch.to_official(ELASTICVIT) == MIN_OFFICIAL
    assert validate(arch, ELASTICVIT) == []


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), space=st.sampled_from([ELASTICVIT, TINY]))
def test_json_tuple_and_row_round_trips(seed, space):
    arch = archs(sample_uniform(space, 1, seed), space)[0]
    assert Arch.from_dict(json.loads(arch.to_json())) == arch
    assert Arch.from_json(arch.to_json()) == arch
    official = json.loads(json.dumps(arch.to_official(space)))
    assert Arch.from_official(official, space) == arch
    assert parse_arch(official, space) == arch
    assert decode(encode(arch), space) == arch
    assert check_arch(arch, space) is arch


def _err(fn):
    with pytest.raises(ArchError) as e:
        fn()
    return str(e.value)


def test_parse_errors_name_the_field():
    good = Arch.from_official(MIN_OFFICIAL, ELASTICVIT).to_dict()
    assert "is not a JSON object" in _err(lambda: Arch.from_dict([1]))
    bad = dict(good, colour=3)
    assert "colour: 3 is an unknown field" in _err(lambda: Arch.from_dict(bad))
    bad = dict(good, stages=[dict(good["stages"][0], kernal=3)] + good["stages"][1:])
    assert "stages[0].kernal" in _err(lambda: Arch.from_dict(bad))
    bad = dict(good, resolution="224")
    assert "resolution: '224' must be an integer" in _err(lambda: Arch.from_dict(bad))
    bad = {k: v for k, v in good.items() if k != "stem"}
    assert "stem is missing" in _err(lambda: Arch.from_dict(bad))
    bad = dict(good, stages=[{"width": 16, "depth": 2, "kernel": 3, "mlp_ratio": 2}])
    assert "mixes CNN keys" in _err(lambda: Arch.from_dict(bad))
    assert "malformed JSON" in _err(lambda: Arch.from_json("{oops"))


def test_official_encoding_errors():
    t = json.loads(json.dumps(MIN_OFFICIAL))
    t[3] = [1, 3, 3, 3]  # conv_ratio shorter than the CNN depths need
    msg = _err(lambda: Arch.from_official(t, ELASTICVIT))
    assert "conv_ratio" in msg and "need 5" in msg
    t = json.loads(json.dumps(MIN_OFFICIAL))
    t[4] = [3, 3, 5, 3, 3]  # C0's two layers disagree on the kernel
    assert "kernel[C0]: [3, 5] mixes values inside one stage" in _err(lambda: Arch.from_official(t, ELASTICVIT))
    t = json.loads(json.dumps(MIN_OFFICIAL))
    t[6] = [3, 5, 9, 11]
    assert "heads[T3]: 11 must be width/16 = 10" in _err(lambda: Arch.from_official(t, ELASTICVIT))
    t = json.loads(json.dumps(MIN_OFFICIAL))
    t[7] = [1, 1, 7, 1]
    assert "window[T2]: 7 must be 1" in _err(lambda: Arch.from_official(t, ELASTICVIT))
    t = json.loads(json.dumps(MIN_OFFICIAL))
    t[1] = t[1][:6]
    assert "channels" in _err(lambda: Arch.from_official(t, ELASTICVIT))
    assert "10 elements" in _err(lambda: Arch.from_official([1, 2], ELASTICVIT))


def test_validation_reports_field_value_and_choices():
    arch = Arch.from_official(MIN_OFFICIAL, ELASTICVIT)
    d = arch.to_dict()
    d["resolution"] = 100
    d["stem"]["width"] = 24
    d["stages"][0]["width"] = 20
    d["stages"][1]["depth"] = 9
    d["stages"][2]["v_scale"] = 5
    d["stages"][4]["width"] = 288
    d["stages"][5]["width"] = 176
    msgs = [str(v) for v in validate(Arch.from_dict(d), ELASTICVIT)]
    assert "resolution: 100 is not one of [128, 160, 176, 192, 224, 256]" in msgs
    assert any(m.startswith("stem.width: 24 must equal first_conv (16)") for m in msgs)
    assert "stages[0] (C0).width: 20 is not one of [16, 24, 32]" in msgs
    assert "stages[1] (C1).depth: 9 is not one of [2, 3, 4, 5, 6]" in msgs
    assert "stages[2] (T0).v_scale: 5 is not one of [2, 3, 4]" in msgs
    assert "stages[5] (T3).width: 176 is smaller than T2's width 288 (widths must not decrease)" in msgs


def test_validation_of_stage_count_and_kinds():
    arch = Arch.from_official(MIN_OFFICIAL, ELASTICVIT)
    short = Arch(arch.resolution, arch.first_conv, arch.stem, arch.stages[:5])
    assert "space 'elasticvit' has 6" in str(validate(short, ELASTICVIT)[0])
    swapped = Arch(arch.resolution, arch.first_conv, arch.stem, (arch.stages[2],) + arch.stages[1:])
    assert "must be a CNN stage" in str(validate(swapped, ELASTICVIT)[0])
