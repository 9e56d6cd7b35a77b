"""latentfuse: multimodal joint embedding spaces from frozen encoders, cheaply.

    import latentfuse
    model = latentfuse.load("runs/demo")
    model.encode_image(["photo.jpg"]); model.encode_text(["a dog"]); model.similarity(...)
"""
__version__ = "0.1.0"

from .model import JointModel, load  # noqa: E402

__all__ = ["JointModel", "load", "__version__"]
