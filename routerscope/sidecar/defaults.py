"""Every default of the sidecar, in one place: the CLI's help, the config and the spool read them."""

from __future__ import annotations

from typing import Final

#: OTLP/HTTP listen address (the port apps' SDKs use by default for http/protobuf)
LISTEN: Final = "127.0.0.1:4318"
#: OTLP/gRPC listen address (the SDKs' default gRPC port)
GRPC_LISTEN: Final = "127.0.0.1:4317"
#: the value of ``--grpc-listen`` that turns the gRPC receiver off
GRPC_OFF: Final = "off"
#: largest request body, compressed or not (MiB)
MAX_BODY_MB: Final = 64.0
#: spool size limit (MiB of queued records)
MAX_SPOOL_MB: Final = 1024.0
#: what a full spool does with a new request
ON_FULL: Final = "reject"
ON_FULL_POLICIES: Final = ("reject", "drop-oldest")
#: when the spool fsyncs
FSYNC: Final = "always"
FSYNC_POLICIES: Final = ("always", "interval", "never")
#: seconds per upstream attempt
SEND_TIMEOUT: Final = 10.0
#: seconds between self-metric collections (0 = off)
SELF_METRICS_INTERVAL: Final = 10.0
#: seconds a connection may sit idle (between requests, or before its headers are complete)
IDLE_TIMEOUT: Final = 15.0
#: seconds allowed for reading one request body
BODY_TIMEOUT: Final = 30.0
#: open client connections served at once (HTTP; about 6 KB each when idle); more are
#: answered 503 and closed
MAX_CONNECTIONS: Final = 1024
#: concurrent gRPC calls served at once (each may hold a message of up to --max-body-mb);
#: more get RESOURCE_EXHAUSTED
MAX_GRPC_CALLS: Final = 16
#: ``Retry-After`` seconds sent with a 503 (spool full, write failed, shutting down)
RETRY_AFTER_S: Final = 5
#: largest size of the dead-letter file (MiB); past it, isolated records are only counted
DEAD_LETTER_MB: Final = 64.0
#: attempts at a record that fails locally (cannot be read or encoded) before it is isolated
LOCAL_ATTEMPTS: Final = 3
#: spool segment size: a segment is deleted once every record in it is delivered
SEGMENT_BYTES: Final = 16 * 1024 * 1024
#: the shipper's backoff: first step, cap, and the longest Retry-After it honours (s)
BACKOFF_BASE: Final = 0.5
BACKOFF_MAX: Final = 30.0
RETRY_AFTER_MAX: Final = 60.0
#: how many queued requests (and body bytes) go up as one upstream request
BATCH_RECORDS: Final = 64
BATCH_BYTES: Final = 4 * 1024 * 1024
#: environment variable holding the bearer token (safer than ``--token``: not in ps output)
TOKEN_ENV: Final = "ROUTERSCOPE_SIDECAR_TOKEN"
