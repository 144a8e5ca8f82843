from itertools import pairwise

import pytest

from supernet.counting import legal_count, legal_width_combos, table1_count
from supernet.space import ELASTICVIT, TINY, CNNStageSpace, SearchSpace, StemSpace, TransformerStageSpace, get_space

from .conftest import MICRO


def test_paper_count_is_the_plain_table1_product():
    assert table1_count(ELASTICVIT) == 108_974_561_034_240_000


def test_legal_count_under_the_code_constraints():
    assert len(legal_width_combos(ELASTICVIT)) == 31_502
    assert legal_count(ELASTICVIT) == 21_672_453_419_827_200


def test_legal_width_combos_are_tied_and_non_decreasing():
    combos = legal_width_combos(TINY)
    assert (combos[:, 1:] >= combos[:, :-1]).all()
    brute = 0
    import itertools
    for ws in itertools.product(TINY.first_conv_widths, *(s.widths for s in TINY.stages)):
        brute += all(b >= a for a, b in pairwise(ws))
    assert brute == len(combos)


def test_table1_matches_the_per_stage_factors():
    assert 6 * 2 * 8 * 96 * 200 * 240 * 432 * 720 * 792 == table1_count(ELASTICVIT)


def test_registry_and_fingerprints():
    assert get_space("elasticvit") is ELASTICVIT
    assert get_space("tiny") is TINY
    with pytest.raises(KeyError, match="known: elasticvit, tiny"):
        get_space("nope")
    assert ELASTICVIT.fingerprint != TINY.fingerprint != MICRO.fingerprint
    assert ELASTICVIT.fingerprint == get_space("elasticvit").fingerprint


def test_small_spaces_share_the_structure():
    for sp in (TINY, MICRO):
        assert [s.is_transformer for s in sp.stages] == [s.is_transformer for s in ELASTICVIT.stages]
        assert sp.num_classes == 10


def test_space_definition_is_checked():
    stem = StemSpace((1,), (3,))
    with pytest.raises(ValueError, match="precede"):
        SearchSpace("bad", (32,), (8,), stem, (TransformerStageSpace("T0", 2, (32,), (1,), (2,), (2,)),
                                                CNNStageSpace("C0", "mbv2", 2, (16,), (1,), (3,), (3,))), 10, 32, 64)
    with pytest.raises(ValueError, match="multiples of head_dim"):
        SearchSpace("bad", (32,), (8,), stem, (TransformerStageSpace("T0", 2, (40,), (1,), (2,), (2,)),), 10, 32, 64)
