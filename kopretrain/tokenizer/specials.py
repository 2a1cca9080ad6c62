"""Token strings every vocabulary kopretrain builds shares, and the slang its reports follow."""

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SLANG = ["ㅋㅋ", "ㅋㅋㅋㅋ", "ㅎㅎ", "ㅠㅠ", "ㅜㅜ", "^^", "ㄷㄷ", "존잼", "갓띵작", "노잼", "핵꿀잼",
         "개노잼", "꿀잼", "레전드", "ㄹㅇ", "킹갓", "재밌어욬ㅋㅋ", "[URL]", "[EMOJI]"]
