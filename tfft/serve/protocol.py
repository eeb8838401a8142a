"""TF Serving's REST protocol (KServe V1) between JSON and numpy, and the checks every request gets.

Requests follow https://www.tensorflow.org/tfx/serving/api_rest: `{"instances": [...]}` (row
format: one value, or one object of named inputs, per example) or `{"inputs": ...}` (columnar: a
list for a single input, or an object of input name -> list), and an optional "signature_name"
(default "serving_default"). A string may be sent as `{"b64": ...}` (binary, e.g. a serialized
tf.Example); an output whose name ends in "_bytes" comes back that way. Responses are
`{"predictions": [...]}` (a dict of outputs per example, or the bare value where the signature
has one output) or `{"outputs": ...}` for columnar requests.

Only plain Python and numpy here: the server calls it, and so may a test or another front end.
"""

import base64
import binascii
import json
from dataclasses import dataclass

import numpy as np

DEFAULT_SIGNATURE = "serving_default"
TF_DTYPES = {"string": "DT_STRING", "bool": "DT_BOOL", "int8": "DT_INT8", "int16": "DT_INT16", "int32": "DT_INT32",
             "int64": "DT_INT64", "uint8": "DT_UINT8", "float16": "DT_HALF", "float32": "DT_FLOAT",
             "float64": "DT_DOUBLE"}
V2_DATATYPES = {"string": "BYTES", "bool": "BOOL", "int8": "INT8", "int16": "INT16", "int32": "INT32",
                "int64": "INT64", "uint8": "UINT8", "float16": "FP16", "float32": "FP32", "float64": "FP64"}


class RequestError(Exception):
    """A request the server refuses; `status` is the HTTP status, the message the `{"error": ...}`."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


@dataclass
class PredictRequest:
    """A checked predict request: the signature, its inputs as numpy arrays, and how to answer."""

    signature_name: str
    inputs: dict
    columnar: bool
    batch_size: int


def decode_json(body):
    """The JSON value of a request body (bytes); a RequestError where it is not JSON."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise RequestError(f"the request body is not valid JSON: {e}") from None


def signature_inputs(signatures, name):
    """The inputs {name: TensorInfo} of signature `name`; a RequestError naming the known ones."""
    if not isinstance(name, str):
        raise RequestError(f'"signature_name" must be a string, not {_json_type(name)}')
    if name not in signatures:
        raise RequestError(f"unknown signature {name!r}; this model has: {', '.join(signatures)}")
    return signatures[name]["inputs"]


def parse_predict(body, signatures, limits):
    """The PredictRequest of a TF Serving predict body (a decoded JSON value); a RequestError
    (400, or 413 for too many examples) naming the field at fault otherwise."""
    if not isinstance(body, dict):
        raise RequestError('the request body must be a JSON object with "instances" (row format) or "inputs" '
                           f"(columnar format), not {_json_type(body)}")
    name = body.get("signature_name", DEFAULT_SIGNATURE)
    spec = signature_inputs(signatures, name)
    if "instances" in body and "inputs" in body:
        raise RequestError('give either "instances" (row format) or "inputs" (columnar format), not both')
    if "instances" in body:
        inputs, columnar = _rows(body["instances"], name, spec, signatures, limits), False
    elif "inputs" in body:
        inputs, columnar = _columns(body["inputs"], name, spec, signatures, limits), True
    else:
        raise RequestError('the request has neither "instances" (row format) nor "inputs" (columnar format)')
    return PredictRequest(name, inputs, columnar, check_batch(inputs, spec, limits))


def _is_named(value):
    """Whether a JSON value is an object of named inputs (and not a binary value {"b64": ...})."""
    return isinstance(value, dict) and not _is_b64(value)


def _is_b64(value):
    return isinstance(value, dict) and list(value) == ["b64"]


def check_names(given, name, spec, signatures, where, choose='"signature_name": "{}"'):
    """A RequestError unless the input names `given` are those of signature `name` (`spec`);
    an unknown name that another signature takes gets a hint: `choose` with that signature."""
    missing = [n for n in spec if n not in given]
    unknown = [n for n in given if n not in spec]
    if unknown:
        owners = [s for s, sig in signatures.items() if s != name and unknown[0] in sig["inputs"]]
        hint = f" (an input of {owners[0]}: send {choose.format(owners[0])})" if owners else ""
        raise RequestError(f"{where}: unknown input {unknown[0]!r}{hint}; signature {name} takes "
                           f"{', '.join(spec)}")
    if missing:
        raise RequestError(f"{where}: missing input {missing[0]!r}; signature {name} takes {', '.join(spec)}")


def _rows(instances, name, spec, signatures, limits):
    if not isinstance(instances, list):
        raise RequestError(f'"instances" must be a list with one item per example, not {_json_type(instances)}')
    if not instances:
        raise RequestError('"instances" is empty: send at least one example')
    check_batch_size(len(instances), limits)
    names = list(spec)
    where = [f"instances[{i}]" for i in range(len(instances))]
    named = [_is_named(item) for item in instances]
    if not any(named) and len(names) == 1:  # one input: each instance is its value
        return {names[0]: _to_array(instances, spec[names[0]], where, limits)}
    for item, is_named, location in zip(instances, named, where):
        if not is_named:
            raise RequestError(f"{location} must be an object with the inputs {', '.join(names)} of signature "
                               f"{name}, not {_json_type(item)}")
        check_names(item, name, spec, signatures, location)
    return {n: _to_array([item[n] for item in instances], spec[n], [f"{w}.{n}" for w in where], limits)
            for n in names}


def _columns(inputs, name, spec, signatures, limits):
    names = list(spec)
    if not _is_named(inputs):
        if len(names) > 1:
            raise RequestError(f'"inputs" must be an object with the inputs {", ".join(names)} of signature {name}, '
                               f"not {_json_type(inputs)}")
        inputs = {names[0]: inputs}
    check_names(inputs, name, spec, signatures, '"inputs"')
    arrays = {}
    for n in names:
        value, info = inputs[n], spec[n]
        if info.shape is not None and len(info.shape) >= 1:
            if not isinstance(value, list):
                raise RequestError(f"inputs.{n} must be a list (a batch) of {_describe_item(info)}, "
                                   f"not {_json_type(value)}")
            if not value:
                raise RequestError(f"inputs.{n} is empty: send at least one example")
            check_batch_size(len(value), limits)
            arrays[n] = _to_array(value, info, [f"inputs.{n}[{i}]" for i in range(len(value))], limits)
        else:
            arrays[n] = _to_array([value], info, [f"inputs.{n}"], limits)[0]
    return arrays


def check_batch_size(size, limits):
    """A RequestError (413) where `size` examples are more than `limits.max_batch_size`."""
    if size > limits.max_batch_size:
        raise RequestError(f"{size} examples in one request; the limit is {limits.max_batch_size} "
                           "(--max-batch-size): split the request", status=413)


def check_batch(inputs, spec, limits):
    """The batch size of checked inputs (numpy arrays): the same for every batched input, at least
    one, at most `limits.max_batch_size`; integer rows no longer than `limits.max_sequence_length`."""
    sizes = {n: a.shape[0] for n, a in inputs.items() if spec[n].shape is None or len(spec[n].shape) >= 1}
    if len(set(sizes.values())) > 1:
        raise RequestError("the inputs differ in batch size: " + ", ".join(f"{n} {s}" for n, s in sizes.items()))
    size = next(iter(sizes.values()), 1)
    if size == 0:
        raise RequestError("the batch is empty: send at least one example")
    check_batch_size(size, limits)
    for n, array in inputs.items():
        if (limits.max_sequence_length and array.ndim == 2 and np.issubdtype(array.dtype, np.integer)
                and array.shape[1] > limits.max_sequence_length):
            raise RequestError(f"{n} has rows of {array.shape[1]} values; the model takes at most "
                               f"{limits.max_sequence_length} (max_length of the export)")
    return size


def check_array(name, array, info):
    """A RequestError unless numpy `array` has the rank and fixed sizes of `info` (V2 inputs)."""
    if info.shape is None:
        return
    if array.ndim != len(info.shape) or any(want is not None and want != got
                                            for want, got in zip(info.shape, array.shape)):
        raise RequestError(f"{name} has shape {list(array.shape)}; the signature takes {_shape_text(info.shape)}")


def check_text(value, where, limits):
    """`value` (a str) unless it is longer than `limits.max_text_chars`."""
    if len(value) > limits.max_text_chars:
        raise RequestError(f"{where} is a text of {len(value)} characters; the limit is {limits.max_text_chars} "
                           "(--max-text-chars)")
    return value


_KINDS = {"string": ("a string", "strings"), "bool": ("a boolean", "booleans")}


def _kind(dtype, plural=False):
    """How a value of `dtype` reads in a message: "a string", "integers", ..."""
    names = _KINDS.get(dtype) or (("an integer", "integers") if "int" in dtype else ("a number", "numbers"))
    return names[plural]


def _shape_text(shape, batch=True):
    """[batch, any, 3] for (None, None, 3); with batch=False the first size reads "any" too."""
    return "[" + ", ".join("batch" if batch and i == 0 and d is None else "any" if d is None else str(d)
                           for i, d in enumerate(shape)) + "]"


def _describe_item(info):
    rank = 0 if info.shape is None else len(info.shape) - 1
    return f"{rank}-D lists of {_kind(info.dtype, True)}" if rank > 0 else _kind(info.dtype)


def _json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _nested_shape(value, where):
    """The shape of a nested JSON list; a RequestError where it is ragged."""
    if not isinstance(value, list):
        return ()
    if not value:
        return (0,)
    first = _nested_shape(value[0], f"{where}[0]")
    for i, item in enumerate(value[1:], start=1):
        shape = _nested_shape(item, f"{where}[{i}]")
        if shape != first:
            raise RequestError(f"{where} is ragged: {where}[0] has shape {list(first)} but {where}[{i}] "
                               f"{list(shape)}; pad the rows to one length")
    return (len(value),) + first


def _leaves(value):
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _to_array(items, info, where, limits):
    """The numpy array of a batch of JSON values, one per example (`where[i]` names item i)."""
    want = None if info.shape is None else info.shape[1:]
    convert = _converter(info.dtype, limits)
    first, flat = None, []
    for item, location in zip(items, where):
        shape = _nested_shape(item, location)
        if want is not None and not want and shape:
            raise RequestError(f"{location} must be {_kind(info.dtype)}, not {_json_type(item)}")
        if want is not None and (len(shape) != len(want) or any(w not in (None, s) for w, s in zip(want, shape))):
            raise RequestError(f"{location} has shape {list(shape)}; an example of this input has shape "
                               f"{_shape_text(want, batch=False)} ({_describe_item(info)})")
        if first is None:
            first = shape
        elif shape != first:
            raise RequestError(f"{location} has shape {list(shape)} but {where[0]} {list(first)}: the examples "
                               "of a batch must have one shape (pad the rows to one length)")
        flat.extend(convert(leaf, location) for leaf in _leaves(item))
    dtype = object if info.dtype == "string" else info.dtype
    return np.array(flat, dtype=dtype).reshape((len(items),) + first)


def _converter(dtype, limits):
    """A function (JSON leaf, location) -> the value numpy takes, or a RequestError."""
    if dtype == "string":
        def string(leaf, where):
            if isinstance(leaf, str):
                return check_text(leaf, where, limits).encode("utf-8", "surrogatepass")
            if _is_b64(leaf) and isinstance(leaf["b64"], str):
                try:
                    return base64.b64decode(leaf["b64"], validate=True)
                except (binascii.Error, ValueError):
                    raise RequestError(f"{where} is not valid base64") from None
            raise RequestError(f'{where} must hold strings (or {{"b64": ...}} for binary), not {_json_type(leaf)}')
        return string
    if dtype == "bool":
        def boolean(leaf, where):
            if not isinstance(leaf, bool):
                raise RequestError(f"{where} must hold booleans, not {_json_type(leaf)}")
            return leaf
        return boolean
    if "int" in dtype:
        bounds = np.iinfo(dtype)

        def integer(leaf, where):
            if not isinstance(leaf, int) or isinstance(leaf, bool):
                raise RequestError(f"{where} must hold integers, not {_json_type(leaf)}")
            if not bounds.min <= leaf <= bounds.max:
                raise RequestError(f"{where} holds {leaf}, outside the range of {dtype}")
            return leaf
        return integer

    def number(leaf, where):
        if not isinstance(leaf, (int, float)) or isinstance(leaf, bool):
            raise RequestError(f"{where} must hold numbers, not {_json_type(leaf)}")
        return leaf
    return number


def predict_response(outputs, request):
    """The TF Serving JSON response to `request` (a PredictRequest) of outputs {name: numpy array}."""
    values = {name: _jsonable(name, outputs[name]) for name in sorted(outputs)}
    if request.columnar:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != request.batch_size:
            raise RequestError(f"output {name} has shape {list(array.shape)}, not one row per example: ask in the "
                               'columnar format ("inputs") instead')
    rows = [{name: value[i] for name, value in values.items()} for i in range(request.batch_size)]
    if len(values) == 1:
        rows = [next(iter(row.values())) for row in rows]
    return {"predictions": rows}


def _jsonable(name, array):
    if array.dtype == object or array.dtype.kind == "S":
        if name.endswith("_bytes"):
            return _map(array.tolist(), lambda b: {"b64": base64.b64encode(b).decode("ascii")})
        return _map(array.tolist(), lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else b)
    return array.tolist()


def _map(value, function):
    if isinstance(value, list):
        return [_map(v, function) for v in value]
    return function(value)


def model_status(version):
    """TF Serving's GetModelStatusResponse for a loaded version, as its REST API answers."""
    return {"model_version_status": [{"version": str(version), "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}


def model_metadata(name, version, signatures):
    """TF Serving's GetModelMetadataResponse (its signature_def map) of `signatures`."""
    def tensor(info):
        if info.shape is None:
            shape = {"dim": [], "unknown_rank": True}
        else:
            shape = {"dim": [{"size": str(-1 if d is None else d), "name": ""} for d in info.shape],
                     "unknown_rank": False}
        return {"dtype": TF_DTYPES.get(info.dtype, "DT_INVALID"), "tensor_shape": shape}

    signature_def = {sig: {"inputs": {n: tensor(i) for n, i in spec["inputs"].items()},
                           "outputs": {n: tensor(i) for n, i in spec["outputs"].items()},
                           "method_name": "tensorflow/serving/predict"}
                     for sig, spec in signatures.items()}
    return {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {"signature_def": {"signature_def": signature_def}}}


def v2_tensors(spec):
    """V2 metadata tensors [{name, datatype, shape}] of a signature's inputs or outputs."""
    return [{"name": n, "datatype": V2_DATATYPES.get(i.dtype, i.dtype.upper()),
             "shape": [] if i.shape is None else [-1 if d is None else d for d in i.shape]}
            for n, i in spec.items()]
