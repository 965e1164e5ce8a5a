"""The brushwork studio: a web page and a JSON API over the methods (``brushwork serve``).

``create_app(Settings(...))`` in :mod:`brushwork.web.app` builds the FastAPI application; FastAPI and uvicorn are
the ``studio`` extra (``pip install brushwork[studio]``).
"""
