"""HTTP for statelang: the AWS Step Functions and EventBridge JSON APIs, the seeds' GraphQL
operations, health and metrics, and a web console, served by one process (`statelang serve`)."""

from .app import App
from .graph import render, to_dot, to_mermaid, to_svg
from .security import Guard
from .serving import Limits, Server

__all__ = ["App", "Server", "Limits", "Guard", "render", "to_dot", "to_mermaid", "to_svg"]
