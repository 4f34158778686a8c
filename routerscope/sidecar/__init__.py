"""``routerscope sidecar``: a durable, bounded, observable OTLP forwarder."""

from routerscope.sidecar.server import Sidecar, SidecarConfig, default_spool_dir

__all__ = ["Sidecar", "SidecarConfig", "default_spool_dir"]
