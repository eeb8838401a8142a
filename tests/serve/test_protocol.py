"""TF Serving's JSON semantics where the tiny classifier cannot show them: one-output signatures,
binary values, several inputs, integer ranges."""

import numpy as np
import pytest

from tfft.serve.backend import TensorInfo
from tfft.serve.limits import Limits
from tfft.serve.protocol import RequestError, parse_predict, predict_response

TEXT = TensorInfo("string", (None,))
SIGNATURES = {"serving_default": {"inputs": {"text": TEXT, "text_pair": TEXT},
                            "outputs": {"scores": TensorInfo("float32", (None, 2))}},
        "serve_bytes": {"inputs": {"blob": TensorInfo("string", (None,))},
                        "outputs": {"image_bytes": TensorInfo("string", (None,)), "n": TensorInfo("int32", (None,))}},
        "serve_ids": {"inputs": {"input_ids": TensorInfo("int32", (None, None))},
                      "outputs": {"logits": TensorInfo("float32", (None, 2))}}}


def test_rows_of_several_inputs_and_a_single_output():
    body = {"instances": [{"text": "a", "text_pair": "b"}, {"text": "c", "text_pair": "d"}]}
    request = parse_predict(body, SIGNATURES, Limits())
    assert request.batch_size == 2 and not request.columnar
    assert request.inputs["text_pair"].tolist() == [b"b", b"d"] and request.inputs["text"].dtype == object
    scores = np.array([[0.25, 0.75], [0.5, 0.5]], np.float32)
    assert predict_response({"scores": scores}, request) == {"predictions": [[0.25, 0.75], [0.5, 0.5]]}
    columnar = parse_predict({"inputs": {"text": ["a"], "text_pair": ["b"]}}, SIGNATURES, Limits())
    assert predict_response({"scores": scores[:1]}, columnar) == {"outputs": [[0.25, 0.75]]}
    with pytest.raises(RequestError, match=r"instances\[0\] must be an object with the inputs text, text_pair"):
        parse_predict({"instances": ["a"]}, SIGNATURES, Limits())


def test_binary_values_in_and_out():
    body = {"signature_name": "serve_bytes", "instances": [{"b64": "AAEC"}, "text"]}
    request = parse_predict(body, SIGNATURES, Limits(max_text_chars=4))
    assert request.inputs["blob"].tolist() == [b"\x00\x01\x02", b"text"]
    outputs = {"image_bytes": np.array([b"\xff", b"ok"], dtype=object), "n": np.array([1, 2], np.int32)}
    assert predict_response(outputs, request) == {"predictions": [{"image_bytes": {"b64": "/w=="}, "n": 1},
                                                                   {"image_bytes": {"b64": "b2s="}, "n": 2}]}
    with pytest.raises(RequestError, match="not valid base64"):
        parse_predict({"signature_name": "serve_bytes", "instances": [{"b64": "@@"}]}, SIGNATURES, Limits())
    with pytest.raises(RequestError, match=r"instances\[1\] is a text of 5 characters; the limit is 4"):
        parse_predict({"signature_name": "serve_bytes", "instances": ["four", "five!"]}, SIGNATURES, Limits(max_text_chars=4))


def test_integer_inputs_are_checked():
    def ids(rows):
        return parse_predict({"signature_name": "serve_ids", "inputs": {"input_ids": rows}}, SIGNATURES, Limits())

    assert ids([[1, 2], [3, 4]]).inputs["input_ids"].dtype == np.int32
    for rows, message in (([[1, True]], "must hold integers, not a boolean"), ([[2**31]], "outside the range"),
                          ([[1, 2], [3]], "one shape"), ([[[1]]], "has shape [1, 1]")):
        with pytest.raises(RequestError, match=message.replace("[", r"\[")):
            ids(rows)
    with pytest.raises(RequestError, match="at most 4") as error:
        parse_predict({"signature_name": "serve_ids", "inputs": {"input_ids": [[1] * 5]}}, SIGNATURES,
                      Limits(max_sequence_length=4))
    assert error.value.status == 400
