"""The HTTP gateway's request checks without a server (the server tests send the same kinds of
requests through a real tritonserver)."""

import json

import numpy as np
import pytest

from onerec_trt.triton.gateway import Limits, Rejected, check_infer

S, MAX_BATCH = 20, 16
CONTRACT = {"inputs": [{"name": "history", "dtype": "int64", "dims": [S]}]}
LIMITS = Limits.for_contract(["onerec"], CONTRACT, MAX_BATCH)


def _json(*inputs, **extra) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def _tensor(shape, data=None, datatype="INT64", **params):
    tensor = {"name": "history", "shape": shape, "datatype": datatype}
    if data is not None:
        tensor["data"] = data
    if params:
        tensor["parameters"] = params
    return tensor


def test_limits_follow_the_contract():
    assert LIMITS.max_elements == 2 * MAX_BATCH * S
    assert LIMITS.public == frozenset({"onerec"})


@pytest.mark.parametrize("body, header", [
    (_json(_tensor([2, S], [[1] * S, [2] * S])), None),  # nested rows
    (_json(_tensor([1, S], [3] * S)), None),
    (_json(_tensor([MAX_BATCH + 1, S], [1] * ((MAX_BATCH + 1) * S))), None),  # Triton names it
    (_json(_tensor([1, S], [1.5] * S, "FP32")), None),
    (_json(_tensor([1, 2], [True, False], "BOOL")), None),
    (_json(_tensor([1, 1], ["a"], "BYTES")), None),
    (_json(_tensor([1, S], [3] * S), outputs=[{"name": "items"}]), None),
])
def test_plausible_requests_pass(body, header):
    check_infer(body, header, LIMITS)


def test_binary_requests_pass_when_sizes_agree():
    data = np.ones((3, S), dtype=np.int64).tobytes()
    head = _json(_tensor([3, S], binary_data_size=len(data)))
    check_infer(head + data, str(len(head)), LIMITS)


@pytest.mark.parametrize("body, header, message", [
    (_json(_tensor([1, S], [3] * S), _tensor([1, S], [3] * S)), None, "given twice"),
    (_json(_tensor([1, S], [3] * S, binary_data_size=8)), None, "both 'data' and"),
    (_json(_tensor([1, S])), None, "no 'data' and no binary_data_size"),
    (_json(_tensor([1, S], [3] * S, "INT128")), None, "unknown datatype"),
    (_json(_tensor([1, "20"], [3] * S)), None, "shape must be a list of integers"),
    (_json(_tensor([1, True], [3])), None, "shape must be a list of integers"),
    (_json(_tensor([0, 10 ** 12], [])), None, "declares more elements"),
    (_json(_tensor([1, S], [True] * S)), None, "INT64 data holds JSON bool values"),
    (_json(_tensor([1, 1], [None])), None, "NoneType"),
    (_json(_tensor([1, 1], [{"a": 1}])), None, "dict"),
    (_json(_tensor([1, 1], 5)), None, None),  # a bare scalar for one element is what JSON allows
    (_json(_tensor([1, S], [3] * S), outputs={"name": "items"}), None, "'outputs' must be"),
    (b'{"inputs": "history"}', None, "list 'inputs'"),
    (b"\xff\xfe", None, "not valid JSON"),
    (_json(_tensor([1, 1], [1])), "x1", "does not fit"),
    (_json(_tensor([1, S], binary_data_size=-1)), None, "binary_data_size must be"),
    (_json(_tensor([1, 1], [[[[[[[[[[1]]]]]]]]]])), None, "nested deeper"),
])
def test_implausible_requests_are_rejected(body, header, message):
    if message is None:
        check_infer(body, header, LIMITS)
        return
    with pytest.raises(Rejected, match=message) as err:
        check_infer(body, header, LIMITS)
    assert err.value.status == 400


ROW = ", ".join(["3"] * S)


@pytest.mark.parametrize("shapes", [(f"[1000000000, {S}]", f"[1, {S}]"),
                                    (f"[1, {S}]", f"[1000000000, {S}]")])
def test_gateway_refuses_duplicate_keys(shapes):
    """Python's json keeps the last of two equal keys, tritonserver the first: a huge shape
    first passed the check with the small one and aborted tritonserver. Both orders refused."""
    first, second = shapes
    body = (f'{{"inputs": [{{"name": "history", "shape": {first}, "shape": {second}, '
            f'"datatype": "INT64", "data": [{ROW}]}}]}}').encode()
    with pytest.raises(Rejected, match="'shape' appears twice") as err:
        check_infer(body, None, LIMITS)
    assert err.value.status == 400


@pytest.mark.parametrize("body, message", [
    (b'{"inputs": [], "inputs": []}', "'inputs' appears twice"),
    (f'{{"inputs": [{{"name": "history", "shape": [1, {S}], "datatype": "INT64", '
     f'"parameters": {{"binary_data_size": 8, "binary_data_size": 160}}}}]}}'.encode(),
     "'binary_data_size' appears twice"),
    (f'{{"inputs": [{{"name": "history", "name": "x", "shape": [1, {S}], '
     f'"datatype": "INT64", "data": [{ROW}]}}]}}'.encode(), "'name' appears twice"),
])
def test_gateway_refuses_duplicate_keys_at_any_depth(body, message):
    with pytest.raises(Rejected, match=message):
        check_infer(body, None, LIMITS)


@pytest.mark.parametrize("datatype, value, message", [
    ("INT64", 2 ** 63, f"INT64 value {2 ** 63} is outside"),
    ("INT64", -(2 ** 63) - 1, "is outside -9223372036854775808..9223372036854775807"),
    ("INT64", 10 ** 30, "is outside"),
    ("INT32", 2 ** 31, "INT32 value 2147483648 is outside"),
    ("UINT8", -1, "UINT8 value -1 is outside 0..255"),
])
def test_gateway_refuses_integers_past_their_datatype(datatype, value, message):
    """tritonserver answered 500 "Unable to parse 'data'" to these: a 400 naming the value."""
    body = _json(_tensor([1, S], [3] * (S - 1) + [value], datatype))
    with pytest.raises(Rejected, match=message) as err:
        check_infer(body, None, LIMITS)
    assert err.value.status == 400


def test_integers_at_the_ends_of_int64_pass():
    check_infer(_json(_tensor([1, 2], [2 ** 63 - 1, -(2 ** 63)])), None, LIMITS)


@pytest.mark.parametrize("body, message", [
    (b'{"inputs": [{"name": "history", "shape": [1, 1], "datatype": "FP32", "data": [NaN]}]}',
     "NaN, which JSON does not allow"),
    (_json(_tensor([1, S], [3] * S)).decode().encode("utf-16"), "not valid JSON"),
])
def test_gateway_parses_json_as_strictly_as_tritonserver(body, message):
    """No NaN/Infinity and UTF-8 only: what Python's json also accepts, tritonserver does not."""
    with pytest.raises(Rejected, match=message):
        check_infer(body, None, LIMITS)
