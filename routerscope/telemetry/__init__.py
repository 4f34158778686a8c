"""Turns routerscope's signals into data: SDK set-up, exporters, sidecar, report."""
