"""Put this folder on PYTHONPATH to run digitd as if TensorFlow and Keras were not
installed: importing them raises ModuleNotFoundError, as on a service-only install."""

import sys

BLOCKED = ("tensorflow", "keras", "tf_keras")


class NoTensorFlow:
    """A meta path finder that refuses the blocked packages before any other finder."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoTensorFlow())
