"""Every loravault error class maps to a gRPC status code, and the SDK maps each code back to its class."""

import inspect

import grpc
import pytest

from loravault.core import errors
from loravault.proto.status import STATUS_BY_ERROR, code_for, error_name_for

ERROR_CLASSES = [cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.LoravaultError)]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_has_its_own_code(cls):
    assert cls.__name__ in STATUS_BY_ERROR
    assert code_for(cls("x")) == STATUS_BY_ERROR[cls.__name__]


def test_most_specific_class_wins():
    class Custom(errors.NotFoundError):
        pass

    assert code_for(Custom("x")) == grpc.StatusCode.NOT_FOUND
    assert code_for(errors.DeserializationError("x")) == grpc.StatusCode.INVALID_ARGUMENT


def test_foreign_exceptions_have_no_code():
    assert code_for(ValueError("x")) is None


@pytest.mark.parametrize("cls", [c for c in ERROR_CLASSES if c.__bases__ == (errors.LoravaultError,)],
                         ids=lambda c: c.__name__)
def test_sdk_raises_the_class_of_each_code(cls):
    assert error_name_for(code_for(cls("x"))) == cls.__name__
