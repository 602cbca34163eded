"""Helpers the twin builders share: published tokenizer folders, zero-convolution filling, file sizes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..testing import TOKENIZER_DIR

#: Token ids of the byte-level CLIP tokenizer in ``assets/tiny/tokenizer`` (256 bytes, the same with
#: ``</w>``, then the two specials): the text encoders' vocabulary must match it.
CLIP_VOCAB, CLIP_BOS, CLIP_EOS = 514, 512, 513


def write_clip_tokenizer(directory: Path, *, pad_token: str = "<|endoftext|>", max_length: int = 77) -> None:
    """A CLIP tokenizer folder with the published file names (vocab.json, merges.txt, two configs)."""
    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    shutil.copy(TOKENIZER_DIR / "vocab.json", directory / "vocab.json")
    shutil.copy(TOKENIZER_DIR / "merges.txt", directory / "merges.txt")
    special = {
        "bos_token": {"content": "<|startoftext|>", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
        "eos_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
        "pad_token": pad_token,
        "unk_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
    }
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        "add_prefix_space": False,
        "bos_token": "<|startoftext|>",
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": max_length,
        "pad_token": pad_token,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": "<|endoftext|>",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def write_t5_tokenizer(directory: Path, *, max_length: int = 512) -> int:
    """A tiny T5 (SentencePiece Unigram) tokenizer made offline with the tokenizers library.

    Pieces are single characters, with and without the word-start marker, so any ASCII prompt
    tokenizes; ``</s>`` closes every sequence as T5's does. Written as ``tokenizer.json`` with
    ``tokenizer_config.json`` and ``special_tokens_map.json`` (the published folder also has a
    ``spiece.model``, which needs the sentencepiece package to write; the fast tokenizer does not
    read it). Returns the vocabulary size.
    """
    import string

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    for ch in string.ascii_letters + string.digits + string.punctuation:
        pieces += [("\u2581" + ch, -4.0), (ch, -5.0)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    tok.save(str(directory / "tokenizer.json"))
    special = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "additional_special_tokens": []}
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        "additional_special_tokens": [],
        "clean_up_tokenization_spaces": True,
        "eos_token": "</s>",
        "extra_ids": 0,
        "legacy": True,
        "model_max_length": max_length,
        "pad_token": "<pad>",
        "sp_model_kwargs": {},
        "tokenizer_class": "T5Tokenizer",
        "unk_token": "<unk>",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return len(pieces)


def fill_zero_convolutions(controlnet, seed: int, scale: float = 0.5) -> None:
    """A fresh ControlNet's output convolutions are zero (a no-op); give them small random weights
    so a test can see the sketch change the image."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        convs = list(controlnet.controlnet_down_blocks) + [controlnet.controlnet_mid_block,
                                                           controlnet.controlnet_cond_embedding.conv_out]
        for conv in convs:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * scale)


def folder_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


def fresh(directory: Path) -> Path:
    """An empty directory at ``directory`` (a previous build there is replaced)."""
    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return directory
