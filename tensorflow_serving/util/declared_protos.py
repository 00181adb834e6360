"""Message classes declared from a table, for protos the installed packages lack.

We declare such messages with upstream's package, names and field numbers,
so the text and binary forms upstream's tools write parse here, with no
generated code to keep in step with the protobuf runtime.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# (field name, number, type, label, type_name or None) in FieldDescriptorProto's terms.
Field = tuple[str, int, int, int, str | None]
FIELD = descriptor_pb2.FieldDescriptorProto


def declare_messages(
    file_name: str,
    package: str,
    dependencies: Iterable[str],
    messages: Mapping[str, Sequence[Field]],
    pool: descriptor_pool.DescriptorPool | None = None,
) -> dict[str, type]:
    """The classes of `messages`, declared as the proto3 file `file_name` in `pool`.

    `dependencies` are the files already in `pool` that the fields' types
    come from. Declaring the same file twice in one pool (a module imported
    under two names) returns the classes of the first declaration.
    `pool` defaults to protobuf's default pool.
    """
    file_proto = descriptor_pb2.FileDescriptorProto(
        name=file_name, package=package, syntax="proto3", dependency=list(dependencies)
    )
    for name, fields in messages.items():
        message = file_proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
    pool = pool or descriptor_pool.Default()
    try:
        file_descriptor = pool.FindFileByName(file_name)
    except KeyError:
        pool.Add(file_proto)
        file_descriptor = pool.FindFileByName(file_name)
    return {
        name: message_factory.GetMessageClass(file_descriptor.message_types_by_name[name])
        for name in messages
    }
