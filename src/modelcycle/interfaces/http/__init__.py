"""The management API over HTTP: ``create_app(workspace)``, served by ``modelcycle server``."""

from modelcycle.interfaces.http.app import PREFIX, ApiSettings, create_app

__all__ = ["PREFIX", "ApiSettings", "create_app"]
