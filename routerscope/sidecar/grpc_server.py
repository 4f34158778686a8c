"""OTLP/gRPC receiver: the three collector services on grpcio, into the same spool.

The services are opentelemetry-proto's generated stubs
(``opentelemetry.proto.collector.{trace,metrics,logs}.v1.*_service_pb2_grpc``).
One interceptor runs before any request is handled:

* it checks the ``authorization`` metadata against the token (``Bearer``, any
  case): ``UNAUTHENTICATED`` otherwise, without reading the message;
* it hands the servicer the request's raw bytes, so the servicer parses them
  itself and answers ``INVALID_ARGUMENT`` with the reason for a malformed
  message (grpcio's own deserializer would answer ``INTERNAL``).

A message over ``--max-body-mb`` (after decompression) gets grpcio's
``RESOURCE_EXHAUSTED``, and so do calls past the concurrency cap. A full spool,
a failed write or a stopping sidecar is ``UNAVAILABLE`` with a ``RetryInfo``
(both as ``grpc-status-details-bin`` and as the ``google.rpc.retryinfo-bin``
trailer that the OTel Python exporter reads): retryable, so SDKs retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import grpc

from routerscope.otlp_json import response_class
from routerscope.sidecar import defaults
from routerscope.sidecar.ingest import BodyRejected, parse
from routerscope.sidecar.server import split_host_port

if TYPE_CHECKING:
    from routerscope.sidecar.server import Sidecar

__all__ = ["GrpcReceiver"]

_log = logging.getLogger("routerscope.sidecar")

GRPC_THREADS: Final = 8
_SERVICES: Final = {
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export": "traces",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export": "metrics",
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export": "logs",
}


@dataclass(frozen=True)
class _Status(grpc.Status):  # type: ignore[misc]  # grpcio ships no types
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, bytes], ...]


def _unavailable(message: str) -> _Status:
    from google.protobuf.any_pb2 import Any as AnyPb
    from google.protobuf.duration_pb2 import Duration
    from google.rpc.error_details_pb2 import RetryInfo
    from google.rpc.status_pb2 import Status

    info = RetryInfo(retry_delay=Duration(seconds=defaults.RETRY_AFTER_S))
    detail = AnyPb()
    detail.Pack(info)
    status = Status(code=grpc.StatusCode.UNAVAILABLE.value[0], message=message, details=[detail])
    return _Status(grpc.StatusCode.UNAVAILABLE, message,
                   (("grpc-status-details-bin", status.SerializeToString()),
                    ("google.rpc.retryinfo-bin", info.SerializeToString())))


class _Interceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, receiver: GrpcReceiver) -> None:
        self.rx = receiver

    def intercept_service(self, continuation: Callable[[Any], Any],
                          details: grpc.HandlerCallDetails) -> Any:
        signal_name = _SERVICES.get(details.method)
        handler = continuation(details)
        if signal_name is None or handler is None:
            return handler
        auth = next((v for k, v in details.invocation_metadata if k == "authorization"), None)
        if not self.rx.sc.authorized(auth if isinstance(auth, str) else None):
            self.rx.sc.counters.refuse("grpc_unauthenticated")

            def deny(_requests: Any, ctx: grpc.ServicerContext) -> None:
                ctx.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token in "
                                                           "the 'authorization' metadata")
            # as a client-streaming handler that never reads its requests: the refused
            # message is not received into memory (the wire format is the same as unary)
            return grpc.stream_unary_rpc_method_handler(deny)

        def export(raw: bytes, ctx: grpc.ServicerContext) -> Any:
            return self.rx.export(signal_name, raw, ctx)

        return grpc.unary_unary_rpc_method_handler(
            export, response_serializer=handler.response_serializer)


class GrpcReceiver:
    """grpcio server for the three OTLP services, bound at construction."""

    def __init__(self, sc: Sidecar, listen: str) -> None:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as logs_grpc
        from opentelemetry.proto.collector.metrics.v1 import (
            metrics_service_pb2_grpc as metrics_grpc,
        )
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as trace_grpc

        self.sc = sc
        host, port = split_host_port(listen, "--grpc-listen")
        self.server = grpc.server(
            futures.ThreadPoolExecutor(GRPC_THREADS, thread_name_prefix="routerscope-grpc"),
            interceptors=[_Interceptor(self)],
            maximum_concurrent_rpcs=defaults.MAX_GRPC_CALLS,
            options=[("grpc.so_reuseport", 0),
                     ("grpc.max_receive_message_length", sc.max_body),
                     ("grpc.max_send_message_length", 1024 * 1024),
                     ("grpc.max_connection_idle_ms", int(sc.config.idle_timeout * 1000))])
        # the generated stubs register the services; the interceptor supplies the behaviour
        for add, servicer in ((trace_grpc.add_TraceServiceServicer_to_server,
                               trace_grpc.TraceServiceServicer),
                              (metrics_grpc.add_MetricsServiceServicer_to_server,
                               metrics_grpc.MetricsServiceServicer),
                              (logs_grpc.add_LogsServiceServicer_to_server,
                               logs_grpc.LogsServiceServicer)):
            add(servicer(), self.server)  # type: ignore[no-untyped-call]
        bracket = f"[{host}]" if ":" in host else host
        try:
            bound = self.server.add_insecure_port(f"{bracket}:{port}")
        except RuntimeError as exc:
            raise OSError(f"cannot listen for OTLP/gRPC on {listen}: {exc}") from None
        if not bound:
            raise OSError(f"cannot listen for OTLP/gRPC on {listen} (address in use?)")
        self.address = f"{host}:{bound}"

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=2.0).wait(5)

    def export(self, signal_name: str, raw: bytes, ctx: grpc.ServicerContext) -> Any:
        sc = self.sc
        if raw:
            try:
                parse(signal_name, raw, json=False)
            except BodyRejected as exc:
                sc.counters.refuse("grpc_invalid_argument")
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
            status, message = sc.store(signal_name, raw, len(raw))
            if status != 200:
                sc.counters.refuse("grpc_unavailable")
                ctx.abort_with_status(_unavailable(message))
        return response_class(signal_name)()
