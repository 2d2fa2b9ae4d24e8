from dubcli.text import phonemes as ph


def test_ids_are_stable():
    # These ids are stored in checkpoints and manifests: changing them breaks every model.
    assert ph.SYMBOLS[:5] == ["<pad>", "<blank>", "<unk>", "<wb>", "<sil>"]
    assert ph.SYMBOL_TO_ID["AA0"] == 8
    assert ph.SYMBOL_TO_ID["ZH"] == ph.VOCAB_SIZE - 1
    assert ph.VOCAB_SIZE == 8 + 45 + 24
    assert len(set(ph.SYMBOLS)) == ph.VOCAB_SIZE


def test_roundtrip_and_unknown():
    ids = ph.encode(["HH", "AH0", "L", "OW1", "<wb>", "XX"])
    assert ph.decode(ids[:5]) == ["HH", "AH0", "L", "OW1", "<wb>"]
    assert ids[-1] == ph.UNK_ID


def test_normalize_symbol():
    assert ph.normalize_symbol("sil") == ph.SILENCE
    assert ph.normalize_symbol("ah") == "AH1"
    assert ph.normalize_symbol("AH0") == "AH0"
    assert ph.normalize_symbol("t") == "T"
    assert ph.normalize_symbol("QQ") == ph.UNK
    assert ph.is_vowel("ER2") and not ph.is_vowel("R")
