"""Writes a small TF2 SavedModel that uses TF Text's ops, as a BERT preprocessor would.

Its one input `text` (string [-1]) feeds three outputs of the
`serving_default` signature:

    tokens         WhitespaceTokenizer's words, padded with b"" ([-1, -1] string);
    token_count    words per input (int64 [-1]);
    wordpiece_ids  FastWordpieceTokenizer's ids of those words over VOCAB,
                   padded with -1 ([-1, -1] int64).

Loading it needs TF Text's ops registered in the loading process.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as text

VOCAB = ("[UNK]", "the", "serv", "##ing", "model", "##s", "tensor", "##flow")


class _TextModel(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self._words = text.WhitespaceTokenizer()
        self._pieces = text.FastWordpieceTokenizer(
            vocab=list(VOCAB), token_out_type=tf.int64, unknown_token="[UNK]"
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text_input: tf.Tensor) -> dict[str, tf.Tensor]:
        words = self._words.tokenize(text_input)
        ids = self._pieces.tokenize(words).merge_dims(-2, -1)
        return {
            "tokens": words.to_tensor(default_value=b""),
            "token_count": words.row_lengths(),
            "wordpiece_ids": ids.to_tensor(default_value=-1),
        }


def export_text_model(export_dir: str) -> str:
    """Writes the model to `export_dir` (a version directory); returns it. Needs eager mode."""
    module = _TextModel()
    tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})
    return export_dir
