"""Plain torch networks and layers used to build actors and critics (TorchRL's ``modules.models``)."""
from tdrl.modules.models.models import MLP

__all__ = ["MLP"]
