"""The KServe predictor behind `tfft serve`: TF Serving's REST API (KServe V1) and KServe V2.

    POST /v1/models/NAME[/versions/V]:predict   TF Serving predict: {"instances": ...} or {"inputs": ...}
    GET  /v1/models/NAME[/versions/V]           status: TF Serving's model_version_status, KServe's name and ready
    GET  /v1/models/NAME[/versions/V]/metadata  TF Serving's signature_def map
    GET  /v1/models                             KServe: {"models": [NAME]}
    POST /v2/models/NAME/infer                  V2 inference; "parameters": {"signature_name": ...} picks one
    GET  /v2/models/NAME, /v2/models/NAME/ready, /v2/health/live, /v2/health/ready, /v2, /metrics

kserve's own app, data plane and REST server answer; tfft adds the TF Serving routes kserve lacks
(status and metadata bodies, versioned paths), the request guard (tfft.serve.middleware) and JSON
`{"error": ...}` bodies for every refusal. Predictions run in a thread pool of their own, so the
event loop keeps answering other clients while TensorFlow works.
"""

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import os
import socket
import sys
import uuid

import numpy as np

from tfft.errors import TfftError
from tfft.serve import protocol
from tfft.serve.backend import ModelInputError
from tfft.serve.limits import Limits
from tfft.serve.middleware import RequestGuard
from tfft.serve.protocol import DEFAULT_SIGNATURE, V2_DATATYPES, RequestError


@contextlib.contextmanager
def _argv_for_kserve():
    """kserve.model_server parses sys.argv when first imported (its own --http_port, ...), and
    argparse's prefix matching would read tfft's `--timeout 5` as its --timeout-keep-alive."""
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        yield
    finally:
        sys.argv = argv


with _argv_for_kserve():
    import kserve
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from kserve import model_server
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
    from kserve.protocol.rest.server import RESTServer
    from kserve.protocol.rest.v1_endpoints import V1Endpoints
    from kserve.utils.numpy_codec import from_np_dtype
    from starlette.exceptions import HTTPException

def default_threads():
    """Predictions that may run at once: TensorFlow spreads each over the cores already."""
    return max(1, min(4, os.cpu_count() or 1))


class TfftModel(kserve.Model):
    """A kserve Model answering TF Serving predict bodies (V1) and V2 InferRequests with a backend.

        >>> model = TfftModel("sentiment", SavedModelBackend("runs/sentiment/export/1"))
        >>> kserve.ModelServer().start([model])  # kserve's plain server: every interface, no guard

    `serve` adds the token, the limits and TF Serving's status and metadata routes around it.

    Args:
        name: the model's name in the URLs.
        backend: a tfft.serve.backend.Backend (SavedModelBackend).
        limits: tfft.serve.limits.Limits; max_sequence_length defaults to max_length of the export's metadata.
        threads: predictions that run at once; more requests wait for a free thread.
    """

    def __init__(self, name, backend, limits=None, threads=None):
        super().__init__(name)
        self.backend = backend
        limits = limits or Limits()
        if limits.max_sequence_length is None and isinstance(backend.metadata.get("max_length"), int):
            limits = dataclasses.replace(limits, max_sequence_length=backend.metadata["max_length"])
        self.limits = limits
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads or default_threads(),
                                                               thread_name_prefix="tfft-predict")
        self.ready = True  # the backend is loaded already

    def load(self):
        self.ready = True
        return self.ready

    def stop(self):
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().stop()

    async def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):
            return await self._infer_v2(payload)
        if isinstance(payload, (bytes, bytearray, str)):  # a body sent without a JSON content type
            payload = protocol.decode_json(payload)
        request = protocol.parse_predict(payload, self.backend.signatures, self.limits)
        outputs = await self._run(request.signature_name, request.inputs)
        return protocol.predict_response(outputs, request)

    async def _run(self, signature_name, inputs):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self.backend.predict, signature_name, inputs)
        except ModelInputError as e:
            raise RequestError(f"the model rejected the inputs: {e}") from None

    async def _infer_v2(self, request):
        parameters = request.parameters or {}
        signature_name = parameters.get("signature_name", DEFAULT_SIGNATURE)
        signatures = self.backend.signatures
        spec = protocol.signature_inputs(signatures, signature_name)
        given = {}
        for tensor in request.inputs:
            if tensor.name in given:
                raise RequestError(f"input {tensor.name!r} is given twice")
            given[tensor.name] = tensor
        protocol.check_names(given, signature_name, spec, signatures, "inputs",
                             choose='"parameters": {{"signature_name": "{}"}}')
        inputs = {name: _v2_array(tensor, spec[name], self.limits) for name, tensor in given.items()}
        protocol.check_batch(inputs, spec, self.limits)
        outputs = await self._run(signature_name, inputs)
        infer_outputs = [InferOutput(name=name, shape=list(array.shape), datatype=from_np_dtype(array.dtype),
                                     data=array) for name, array in sorted(outputs.items())]
        return InferResponse(response_id=request.id or str(uuid.uuid4()), model_name=self.name,
                             model_version=self.backend.version, infer_outputs=infer_outputs,
                             use_binary_outputs=request.use_binary_outputs, requested_outputs=request.request_outputs)

    def get_input_types(self):
        return protocol.v2_tensors(self._default_signature()["inputs"])

    def get_output_types(self):
        return protocol.v2_tensors(self._default_signature()["outputs"])

    def _default_signature(self):
        signatures = self.backend.signatures
        return signatures.get(DEFAULT_SIGNATURE) or next(iter(signatures.values()))


def _v2_array(tensor, info, limits):
    """The numpy array of a V2 input tensor, checked against the signature's TensorInfo."""
    name, datatype = tensor.name, tensor.datatype
    want = V2_DATATYPES.get(info.dtype, info.dtype.upper())
    integers = info.dtype.startswith(("int", "uint")) and datatype.startswith(("INT", "UINT"))
    if datatype != want and not integers:
        raise RequestError(f"input {name} is {datatype}; the signature takes {want}")
    if tensor.shape:
        protocol.check_batch_size(tensor.shape[0], limits)  # before numpy allocates it
    try:
        array = tensor.as_numpy()
    except (ValueError, TypeError, OverflowError, InvalidInput) as e:
        raise RequestError(f"input {name}: its data does not make a {datatype} tensor of shape {tensor.shape}: "
                           f"{e}") from None
    if info.dtype == "string":
        def encode(value):
            if isinstance(value, bytes):
                return value  # binary data: bounded by the body size only
            if isinstance(value, str):
                return protocol.check_text(value, f"input {name}", limits).encode("utf-8", "surrogatepass")
            raise RequestError(f"input {name} must hold strings, not {type(value).__name__}")

        array = np.array([encode(v) for v in array.reshape(-1).tolist()], dtype=object).reshape(array.shape)
    elif integers:
        bounds = np.iinfo(info.dtype)
        if array.size and (array.min() < bounds.min or array.max() > bounds.max):
            raise RequestError(f"input {name} holds values outside the range of {info.dtype}")
        array = array.astype(info.dtype)
    protocol.check_array(f"input {name}", array, info)
    return array


def _add_routes(app, model, v1):
    """TF Serving's status, metadata and versioned routes, ahead of kserve's own (the first match answers)."""
    backend = model.backend

    def check(model_name, version=None):
        if model_name != model.name:
            raise RequestError(f"Servable not found for request: no model {model_name!r} (this server serves "
                               f"{model.name!r})", status=404)
        if version is not None and version != backend.version:
            raise RequestError(f"Servable not found for request: model {model_name} has no version {version} "
                               f"(it serves version {backend.version})", status=404)

    async def status(model_name: str, version: str | None = None):
        check(model_name, version)
        return {"name": model.name, "ready": model.ready, **protocol.model_status(backend.version)}

    async def metadata(model_name: str, version: str | None = None):
        check(model_name, version)
        return protocol.model_metadata(model.name, backend.version, backend.signatures)

    async def predict(model_name: str, version: str, request: Request):
        check(model_name, version)
        return await v1.predict(model_name, request)

    app.add_api_route("/v1/models/{model_name}", status, methods=["GET"])
    app.add_api_route("/v1/models/{model_name}/versions/{version}", status, methods=["GET"])
    app.add_api_route("/v1/models/{model_name}/metadata", metadata, methods=["GET"])
    app.add_api_route("/v1/models/{model_name}/versions/{version}/metadata", metadata, methods=["GET"])
    app.add_api_route("/v1/models/{model_name}/versions/{version}:predict", predict, methods=["POST"],
                      response_model=None)


async def _request_error(request, error):
    return JSONResponse({"error": str(error)}, status_code=error.status)


async def _validation_error(request, error):
    """400 for a V2 body FastAPI could not read into kserve's InferenceRequest (422 in FastAPI)."""
    problems = [p for p in error.errors() if "bytes" not in p["loc"][1:2]]  # the raw-bytes alternative's
    for problem in problems:
        if problem["type"] == "json_invalid":
            return JSONResponse({"error": f"the request body is not valid JSON: {problem['msg']} at character "
                                          f"{problem['loc'][-1]}"}, status_code=400)
    text = "; ".join(".".join(str(part) for part in problem["loc"] if part not in ("body", "InferenceRequest"))
                     + f": {problem['msg']}" for problem in problems[:5])
    return JSONResponse({"error": f"malformed V2 inference request: {text or error}"}, status_code=400)


async def _http_error(request, error):
    return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)


def listen(host, port):
    """A socket bound to host:port (port 0: any free one), or a TfftError saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        raise TfftError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def serve(backend, name, sock, token=None, limits=None, threads=None, on_start=None):
    """Serves `backend` as model `name` on `sock` until interrupted (SIGINT or SIGTERM).

        >>> serve(SavedModelBackend("runs/sentiment/export/1"), "sentiment", listen("127.0.0.1", 8080))

    kserve's ModelServer holds the model registry and data plane; its REST server (kserve's
    FastAPI app, uvicorn) runs on `sock`, since ModelServer.start() binds every interface. No
    gRPC server: kserve's would bypass the token and the host, and it speaks V2 gRPC, not TF
    Serving's PredictionService, so TF Serving's gRPC clients could not use it anyway.

    Args:
        backend: a loaded tfft.serve.backend.Backend.
        name: the model's name in the URLs.
        sock: a listening socket, from `listen(host, port)`.
        token: a bearer token every request but the health checks must carry (None: no check).
        limits: tfft.serve.limits.Limits.
        threads: predictions that run at once (default: up to 4).
        on_start: called with the base URL once the socket listens, before requests are served.
    """
    limits = limits or Limits()
    model = TfftModel(name, backend, limits, threads)
    server = kserve.ModelServer(http_port=sock.getsockname()[1], enable_grpc=False, workers=1)
    server.register_model(model)
    model.enable_latency_logging = server.enable_latency_logging
    app = model_server.app
    app.add_middleware(RequestGuard, token=token, max_body_bytes=limits.max_body_bytes, timeout=limits.timeout)
    _add_routes(app, model, V1Endpoints(server.dataplane, server.model_repository_extension))
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    rest = RESTServer(FASTAPI_APP_IMPORT_STRING, server.dataplane, server.model_repository_extension,
                      sock.getsockname()[1], workers=1, grace_period=server.grace_period)
    if on_start is not None:
        bound_host, bound_port = sock.getsockname()[:2]
        on_start(f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}")
    try:
        rest.run(sockets=[sock])
    finally:
        model.stop()
        sock.close()
