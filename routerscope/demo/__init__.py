"""The reference router and the loopback provider behind ``routerscope demo``."""
