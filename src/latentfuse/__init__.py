"""latentfuse: multimodal joint embedding spaces from frozen encoders, cheaply.

    import latentfuse
    model = latentfuse.load("runs/demo")
    model.encode_image(["photo.jpg"]); model.encode_text(["a dog"]); model.similarity(...)
    index = latentfuse.open_index("runs/photos-index")      # built by `latentfuse index`
    index.search(text="a dog on the beach", k=10)
"""
from .model import JointModel, load
from .version import __version__


def open_index(directory, model=None):
    """Open a search index built by ``latentfuse index`` (see ``latentfuse.index.Index``)."""
    from .index import open_index as _open

    return _open(directory, model)


__all__ = ["JointModel", "load", "open_index", "__version__"]
