"""One error tree: every loravault error class maps to a gRPC status code, and the SDK maps each code back."""

import inspect

import grpc
import pytest

from loravault.core import errors
from loravault.proto import errors as proto_errors
from loravault.proto.status import STATUS_BY_ERROR, code_for, error_class_for

ERROR_CLASSES = [cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.LoravaultError)]
TABLE = dict(STATUS_BY_ERROR)

# the code each class is documented to answer (proto/errors.py draws the tree)
EXPECTED = {
    "InvalidArgumentError": "INVALID_ARGUMENT", "DeserializationError": "INVALID_ARGUMENT",
    "MalformedEnvelopeError": "INVALID_ARGUMENT", "MalformedKeyError": "INVALID_ARGUMENT",
    "ManifestError": "INVALID_ARGUMENT", "TimeWindowError": "INVALID_ARGUMENT", "CommitmentError": "INVALID_ARGUMENT",
    "EnvelopeError": "INTERNAL", "NotFoundError": "NOT_FOUND", "AlreadyExistsError": "ALREADY_EXISTS",
    "PermissionDeniedError": "PERMISSION_DENIED", "UnauthenticatedError": "UNAUTHENTICATED",
    "SignatureError": "UNAUTHENTICATED", "FailedPreconditionError": "FAILED_PRECONDITION",
    "AbortedError": "ABORTED", "ResourceExhaustedError": "RESOURCE_EXHAUSTED", "UnavailableError": "UNAVAILABLE",
    "DeadlineExceededError": "DEADLINE_EXCEEDED",
    "DataLossError": "DATA_LOSS", "LoravaultError": "INTERNAL",
}


def test_core_and_proto_export_one_tree():
    assert errors.__all__ == proto_errors.__all__
    assert all(getattr(errors, name) is getattr(proto_errors, name) for name in errors.__all__)
    assert {cls.__name__ for cls in ERROR_CLASSES} == set(EXPECTED)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_has_its_code(cls):
    assert code_for(cls("x")).name == EXPECTED[cls.__name__]


def test_table_is_keyed_by_classes_most_specific_first():
    classes = [cls for cls, _ in STATUS_BY_ERROR]
    for i, cls in enumerate(classes):
        assert not any(issubclass(later, cls) and later is not cls for later in classes[i + 1:]), cls


def test_most_specific_class_wins():
    class Custom(errors.NotFoundError):
        pass

    assert code_for(Custom("x")) == grpc.StatusCode.NOT_FOUND
    assert code_for(errors.SignatureError("x")) == grpc.StatusCode.UNAUTHENTICATED


def test_foreign_exceptions_have_no_code():
    assert code_for(ValueError("x")) is None


@pytest.mark.parametrize("cls", [c for c in ERROR_CLASSES if c.__bases__ == (errors.LoravaultError,)
                                 and c is not errors.EnvelopeError], ids=lambda c: c.__name__)
def test_sdk_raises_the_class_of_each_code(cls):
    assert error_class_for(code_for(cls("x"))) is cls
    assert TABLE[cls] == code_for(cls("x"))
