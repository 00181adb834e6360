"""Python TensorFlow Serving.

The pip package tensorflow-serving-api also installs a package named
tensorflow_serving (with .apis and .config). Extending __path__ lets both
live under one name: the generated protos come from pip, the rest from here.
"""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
