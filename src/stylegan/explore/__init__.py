"""`stylegan explore`: a local web app to play with a network (seeds, truncation, style mixing,
noise, loops, projection), rendering on the server's device, answering only the newest request.

    from stylegan.explore import create_app
    app = create_app("network.safetensors", device="auto")   # any ASGI server, or a TestClient

Needs the `explore` extra (starlette, uvicorn): pip install "stylegan[explore]".
"""
from .app import ExploreConfig, create_app

__all__ = ["create_app", "ExploreConfig"]
