"""Tests for tensorflow_import: TensorFlow's import-time lines, filtered as the stock server prints them."""

import unittest

from tensorflow_serving.util import tensorflow_import

NOTICE = tensorflow_import.ABSL_NOTICE + " are written to STDERR\n"
ONEDNN = "I0000 00:00:{t}   12828 port.cc:153] oneDNN custom operations are on.\n"
GUARD = "I0000 00:00:1.5   12828 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.\n"
GUARD_MORE = "To enable the following instructions: AVX2, rebuild TensorFlow.\n"
ERROR = "E0000 00:00:3.0   12828 cuda.cc:10] no CUDA device\n"
# What importing TensorFlow 2.21 prints: two shared libraries each log the notice
# and the oneDNN record.
IMPORT_TEXT = (
    NOTICE + ONEDNN.format(t="1.1") + GUARD + GUARD_MORE + NOTICE + ONEDNN.format(t="2.2") + ERROR
)


class VisibleLinesTest(unittest.TestCase):
    def test_each_message_shows_once_at_level_0(self):
        self.assertEqual(
            tensorflow_import.visible_lines(IMPORT_TEXT, 0),
            NOTICE + ONEDNN.format(t="1.1") + GUARD + GUARD_MORE + ERROR,
        )

    def test_the_level_hides_lower_records_with_their_continuation_lines(self):
        self.assertEqual(tensorflow_import.visible_lines(IMPORT_TEXT, 1), ERROR)
        self.assertEqual(tensorflow_import.visible_lines(IMPORT_TEXT, 3), "")

    def test_a_fatal_record_always_shows(self):
        fatal = "F0000 00:00:4.0   1 x.cc:1] fatal\n"
        self.assertEqual(tensorflow_import.visible_lines(fatal, 5), fatal)


class MinLogLevelTest(unittest.TestCase):
    def test_as_tensorflow_reads_the_variable(self):
        self.assertEqual(tensorflow_import.min_log_level(None), 0)
        self.assertEqual(tensorflow_import.min_log_level(" ", 1), 1)
        self.assertEqual(tensorflow_import.min_log_level("2"), 2)
        self.assertEqual(tensorflow_import.min_log_level("lots", 1), 0)


if __name__ == "__main__":
    unittest.main()
