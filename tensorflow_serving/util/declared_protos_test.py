"""Tests for declare_messages: classes that parse what upstream's messages write."""

import unittest

from google.protobuf import descriptor_pool, text_format

from tensorflow_serving.util.declared_protos import FIELD, declare_messages

_MESSAGES = {
    "Inner": [("label", 1, FIELD.TYPE_STRING, FIELD.LABEL_OPTIONAL, None)],
    "Outer": [
        ("count", 3, FIELD.TYPE_INT64, FIELD.LABEL_OPTIONAL, None),
        ("inner", 5, FIELD.TYPE_MESSAGE, FIELD.LABEL_REPEATED, ".test.declared.Inner"),
    ],
}


class DeclareMessagesTest(unittest.TestCase):
    def test_the_classes_read_text_and_keep_the_field_numbers(self):
        classes = declare_messages("test/declared.proto", "test.declared", [], _MESSAGES)
        outer = text_format.Parse('count: 7 inner { label: "a" }', classes["Outer"]())
        self.assertEqual(outer.count, 7)
        self.assertEqual(outer.inner[0].label, "a")
        self.assertEqual(classes["Outer"].DESCRIPTOR.fields_by_name["inner"].number, 5)

    def test_declaring_the_same_file_again_gives_the_same_classes(self):
        first = declare_messages("test/again.proto", "test.again", [], {"M": []})
        second = declare_messages("test/again.proto", "test.again", [], {"M": []})
        self.assertIs(first["M"].DESCRIPTOR, second["M"].DESCRIPTOR)

    def test_a_private_pool_keeps_the_default_pool_clean(self):
        pool = descriptor_pool.DescriptorPool()
        classes = declare_messages("test/private.proto", "test.private", [], {"P": []}, pool)
        self.assertEqual(classes["P"].DESCRIPTOR.full_name, "test.private.P")
        with self.assertRaises(KeyError):
            descriptor_pool.Default().FindMessageTypeByName("test.private.P")


if __name__ == "__main__":
    unittest.main()
